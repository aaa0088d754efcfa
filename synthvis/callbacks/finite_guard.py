"""Stop a training stage at its first non-finite loss, before anything is checkpointed or exported."""

from __future__ import annotations

from typing import Any

import lightning as L

from synthvis.utils.finite import NonFiniteError, non_finite_entries


class FiniteGuard(L.Callback):
    """After every update, check the metrics the module logged; raise `NonFiniteError` at the first NaN or inf.

    Lightning runs checkpoint callbacks after every other callback, so the update that diverged is never saved;
    the stage then ends with this error, writes no weights and leaves no done.json.
    """

    def __init__(self, stage: str, lr_key: str) -> None:
        self.stage, self.lr_key = stage, lr_key

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        """Raise if a logged value of this update is not finite."""
        metrics = trainer.callback_metrics
        bad = non_finite_entries(metrics)
        if bad:
            values = ", ".join(f"{name} = {float(metrics[name])}" for name in bad)
            precision = str(trainer.precision)
            full = "" if precision.startswith("32") else f"; full precision (trainer.precision=32-true, not {precision})"
            raise NonFiniteError(
                f"[{self.stage}] training diverged at update {trainer.global_step}: {values}. Nothing was exported "
                f"and the stage is not marked done. Likely fixes: a lower learning rate ({self.lr_key}, now "
                f"{pl_module.hparams.get('lr', '?')}){full}; data without NaN/inf (see the data stage's summary).")
