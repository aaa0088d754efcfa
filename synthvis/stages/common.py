"""Pieces the stages share: completion markers, the Trainer with its loggers and callbacks, fitting with resumption,
the device of the stages without a Trainer."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig

from synthvis.callbacks.finite_guard import FiniteGuard
from synthvis.callbacks.step_seed import StepSeed
from synthvis.utils.checkpoints import AtomicCheckpointIO, resumable_checkpoint
from synthvis.utils.seeding import derive_seed
from synthvis.utils.weights import saved_updates

log = logging.getLogger(__name__)

MARKER = "done.json"


def stage_marker(run_dir: Path, stage: str) -> Path:
    """Completion marker of `stage` in `run_dir` (written last, atomically)."""
    return run_dir / stage / MARKER


def stage_result(run_dir: Path, stage: str) -> dict[str, Any] | None:
    """What a finished stage returned (from its marker); None if it has not finished in `run_dir`."""
    marker = stage_marker(run_dir, stage)
    return json.loads(marker.read_text())["result"] if marker.exists() else None


def build_callbacks(cfg: DictConfig) -> list[L.Callback]:
    """Every `_target_` entry of the `callbacks` group (a callback added there joins every training stage)."""
    return [instantiate(spec) for spec in cfg.callbacks.values() if isinstance(spec, DictConfig) and "_target_" in spec]


def build_loggers(cfg: DictConfig, stage: str) -> list[Logger]:
    """Every `_target_` entry of the `logger` group; those with a `version` key log under the stage's name."""
    return [instantiate(spec, **({"version": stage} if "version" in spec else {}))
            for spec in cfg.logger.values() if isinstance(spec, DictConfig) and "_target_" in spec]


def build_trainer(cfg: DictConfig, stage: str, stage_dir: Path, callbacks: list[L.Callback], lr_key: str,
                  **overrides: Any) -> L.Trainer:
    """The stage's Trainer (config group `trainer`) in <run_dir>/<stage>, with the configured loggers and callbacks.

    Every stage also gets per-update seeding (StepSeed), a stop at the first non-finite loss (FiniteGuard, naming
    `lr_key`), atomic checkpoint writes and the stage's own `callbacks`.
    """
    framework = [StepSeed(derive_seed(cfg.seed, stage)), FiniteGuard(stage, lr_key)]
    return instantiate(cfg.trainer, logger=build_loggers(cfg, stage),
                       callbacks=[*framework, *build_callbacks(cfg), *callbacks],
                       plugins=[AtomicCheckpointIO()], default_root_dir=str(stage_dir), **overrides)


def stage_device(cfg: DictConfig) -> torch.device:
    """The GPU when the trainer asks for one and it exists, else the CPU (for the stages without a Trainer)."""
    wants_gpu = cfg.trainer.accelerator in ("gpu", "cuda", "auto")
    return torch.device("cuda" if wants_gpu and torch.cuda.is_available() else "cpu")


def resume_checkpoint(stage_dir: Path) -> str | None:
    """The checkpoint an interrupted stage resumes from (the newest one that loads), if there is one."""
    return resumable_checkpoint(stage_dir / "checkpoints")


def fit(trainer: L.Trainer, module: L.LightningModule, datamodule: L.LightningDataModule, checkpoint: str | None,
        weights: Path) -> int:
    """Train `module` (from `checkpoint` when resuming) and return the update count it reached.

    Module and datamodule are detached from the Trainer afterwards and the module's gradients dropped, so later
    stages use them as they would loaded ones. `weights` is the file the stage's export callback wrote: a spawned
    strategy (ddp_spawn) trains in worker processes, and Lightning loads rank 0's weights back into `module` but
    not the update count.
    """
    trainer.fit(module, datamodule=datamodule, ckpt_path=checkpoint)
    module.trainer = datamodule.trainer = None
    module.zero_grad(set_to_none=True)
    return trainer.global_step or saved_updates(weights)


def trainer_metrics(trainer: L.Trainer) -> dict[str, float]:
    """The Trainer's last logged values, as plain floats for the stage's result."""
    return {name: float(value) for name, value in trainer.callback_metrics.items()}
