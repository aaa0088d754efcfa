"""Stop a training stage at its first non-finite loss, before anything is checkpointed or exported."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from synthvis.utils.finite import NonFiniteError


class FiniteGuard(L.Callback):
    """Watch the metrics every update returns; raise `NonFiniteError` naming the first update with a NaN or inf.

    When it checks every update (the default on the CPU, where reading a value is free) it reads the values
    directly. Otherwise the check stays on the metrics' device: each update only folds "is any value non-finite"
    into a device tensor that remembers the first such update and its values. Reading that tensor back waits for
    the GPU, so it is read every `check_every_n_updates` updates (default on a GPU: the greatest common divisor of
    the intervals of logging, validation, checkpoints and the `every_n_updates` of the callbacks that act during
    training, e.g. periodic evaluation), and always before a checkpoint is written and when training ends. Each DDP
    rank checks its own metrics. Lightning runs checkpoint callbacks after every other callback, so the update that
    diverged is never saved; the stage then ends with this error, writes no weights and leaves no done.json.
    """

    def __init__(self, stage: str, lr_key: str, check_every_n_updates: int | None = None) -> None:
        if check_every_n_updates is not None and check_every_n_updates < 1:
            raise ValueError(f"check_every_n_updates must be >= 1, got {check_every_n_updates}")
        self.stage, self.lr_key = stage, lr_key
        self.check_every = check_every_n_updates
        self._names: tuple[str, ...] = ()
        self._first_bad: torch.Tensor | int | None = None  # the first diverged update (a device flag: -1 = none yet)
        self._bad_values: torch.Tensor | list[float] | None = None  # the metrics of that update

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Choose how often to read the flag back (see the class docstring)."""
        self._names, self._first_bad, self._bad_values = (), None, None
        if self.check_every is None:
            every = 1
            if pl_module.device.type != "cpu":
                # Every update on which something reads the weights or the metrics: logging, validation,
                # checkpoints (a weights-only save skips on_save_checkpoint) and periodic evaluation.
                intervals = [trainer.log_every_n_steps, trainer.val_check_batch]
                intervals += [callback._every_n_train_steps or 0 for callback in trainer.checkpoint_callbacks
                              if isinstance(callback, ModelCheckpoint)]
                intervals += [getattr(callback, "every_n_updates", 0) for callback in trainer.callbacks]
                every = math.gcd(*(int(i) for i in intervals if isinstance(i, int) and 0 < i < 2**62)) or 1
            self.check_every = every

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        """Record whether this update's metrics are finite; raise on a reading step if one was not."""
        metrics = update_metrics(outputs)
        if metrics and self.check_every == 1:  # read every update: the values themselves, no device flag
            values = [float(value) for value in metrics.values()]
            if not all(map(math.isfinite, values)):
                self._names, self._first_bad, self._bad_values = tuple(metrics), trainer.global_step, values
        elif metrics:
            if tuple(metrics) != self._names:  # the first update, or a module whose metrics change
                self.check(trainer, pl_module)
                self._names = tuple(metrics)
                self._first_bad = self._bad_values = None
            values = torch.stack([value.detach().float().reshape(()) for value in metrics.values()])
            if self._first_bad is None:
                self._first_bad = torch.full((), -1, dtype=torch.long, device=values.device)
                self._bad_values = torch.zeros_like(values)
            first = (self._first_bad < 0) & ~torch.isfinite(values).all()
            self._first_bad = torch.where(first, trainer.global_step, self._first_bad)
            self._bad_values = torch.where(first, values, self._bad_values)
        if trainer.global_step % self.check_every == 0:
            self.check(trainer, pl_module)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        """Never write a checkpoint after a diverged update."""
        self.check(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Never end a stage (export, evaluation, done.json) after a diverged update."""
        self.check(trainer, pl_module)

    def check(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Raise `NonFiniteError` if an update so far had a non-finite metric (waits for the device)."""
        if self._first_bad is None or int(self._first_bad) < 0:
            return
        bad = torch.as_tensor(self._bad_values).tolist()
        values = ", ".join(f"{name} = {value}" for name, value in zip(self._names, bad) if not math.isfinite(value))
        precision = str(trainer.precision)
        full = "" if precision.startswith("32") else f"; full precision (trainer.precision=32-true, not {precision})"
        raise NonFiniteError(
            f"[{self.stage}] training diverged at update {int(self._first_bad)}: {values}. Nothing was exported "
            f"and the stage is not marked done. Likely fixes: a lower learning rate ({self.lr_key}, now "
            f"{pl_module.hparams.get('lr', '?')}){full}; data without NaN/inf (see the data stage's summary).")


def update_metrics(outputs: Any) -> dict[str, torch.Tensor]:
    """The floating-point tensors an update returned by name (Lightning's own "loss" copy left out)."""
    if not isinstance(outputs, Mapping):
        return {}
    return {name: value for name, value in outputs.items()
            if name != "loss" and isinstance(value, torch.Tensor) and value.is_floating_point()}
