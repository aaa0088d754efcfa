"""Pieces the stages share: completion markers, the Trainer, logger, callbacks, resume point, portable weights."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from synthvis.callbacks.finite_guard import FiniteGuard
from synthvis.callbacks.step_seed import StepSeed
from synthvis.utils.checkpoints import AtomicCheckpointIO, resumable_checkpoint
from synthvis.utils.files import atomic_write
from synthvis.utils.finite import NonFiniteError, non_finite_entries
from synthvis.utils.seeding import derive_seed

log = logging.getLogger(__name__)

MARKER = "done.json"
# Callbacks of the `callbacks` group that the stages build themselves, with their run-directory paths.
STAGE_BUILT_CALLBACKS = frozenset({"model_checkpoint", "evaluation"})


def stage_marker(run_dir: Path, stage: str) -> Path:
    """Completion marker of `stage` in `run_dir` (written last, atomically)."""
    return run_dir / stage / MARKER


def stage_result(run_dir: Path, stage: str) -> dict[str, Any] | None:
    """What a finished stage returned (from its marker); None if it has not finished in `run_dir`."""
    marker = stage_marker(run_dir, stage)
    return json.loads(marker.read_text())["result"] if marker.exists() else None


def config_callbacks(cfg: DictConfig) -> list[L.Callback]:
    """Every `_target_` entry of the `callbacks` group except those the stages build with their own paths."""
    return [instantiate(spec) for name, spec in cfg.callbacks.items()
            if name not in STAGE_BUILT_CALLBACKS and isinstance(spec, DictConfig) and "_target_" in spec]


def build_trainer(cfg: DictConfig, stage: str, stage_dir: Path, callbacks: list[L.Callback], lr_key: str,
                  **overrides: Any) -> L.Trainer:
    """The stage's Trainer: config group `trainer`, TensorBoard under <run_dir>/tensorboard/<stage>, checkpoints.

    Every stage also gets per-update seeding (StepSeed), a stop at the first non-finite loss (FiniteGuard, naming
    `lr_key`) and atomic checkpoint writes.
    """
    logger = instantiate(cfg.logger, version=stage)
    checkpoint = instantiate(cfg.callbacks.model_checkpoint, dirpath=str(stage_dir / "checkpoints"))
    framework = [StepSeed(derive_seed(cfg.seed, stage)), FiniteGuard(stage, lr_key)]
    return instantiate(cfg.trainer, logger=logger,
                       callbacks=[checkpoint, *framework, *config_callbacks(cfg), *callbacks],
                       plugins=[AtomicCheckpointIO()], default_root_dir=str(stage_dir), **overrides)


def resume_checkpoint(stage_dir: Path) -> str | None:
    """The checkpoint an interrupted stage resumes from (the newest one that loads), if there is one."""
    return resumable_checkpoint(stage_dir / "checkpoints")


def save_weights(path: Path, module: torch.nn.Module, config: DictConfig, **extra: Any) -> None:
    """Portable weights: the state dict plus the resolved config that rebuilds the module (loads on CPU).

    Written atomically, and refused if any weight is not finite.
    """
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    bad = non_finite_entries(state)
    if bad:
        raise NonFiniteError(f"refusing to write {path}: non-finite values in {', '.join(bad[:5])}"
                             f"{' ...' if len(bad) > 5 else ''}; the training that produced them diverged")
    payload = {"state_dict": state, "config": OmegaConf.to_container(config, resolve=True), **extra}
    atomic_write(path, lambda handle: torch.save(payload, handle))


class ExportWeights(L.Callback):
    """Writes the trained module's portable weights when fit ends, from global rank 0.

    Done inside the training process so that every strategy (including DDP spawn, whose workers' state never
    returns to the launching process) leaves the same file with the true update count. On fit end rather than
    train end: a stage resumed from a checkpoint of its last update trains no more, and Lightning then skips the
    train hooks.
    """

    def __init__(self, path: Path, config: DictConfig) -> None:
        self.path, self.config = path, config

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Save on rank 0."""
        if trainer.is_global_zero:
            save_weights(self.path, pl_module, self.config, updates=trainer.global_step)


def load_weights(path: Path, **overrides: Any) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild a module saved by `save_weights` and load its state dict (on CPU).

    Also returns the rest of the file: its `config` (as a DictConfig) and the extras saved with it.
    """
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run the stage that writes it first (see `stages=[...]`)")
    payload = torch.load(path, map_location="cpu", weights_only=False)
    bad = non_finite_entries(payload["state_dict"])
    if bad:
        raise NonFiniteError(f"{path} holds non-finite weights ({', '.join(bad[:5])}): the stage that wrote it "
                             f"diverged; delete {path.parent} and rerun that stage (e.g. with a lower learning rate)")
    payload["config"] = OmegaConf.create(payload["config"])
    module = instantiate(payload["config"], **overrides)
    module.load_state_dict(payload.pop("state_dict"))
    return module, payload
