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

log = logging.getLogger(__name__)

MARKER = "done.json"


def stage_marker(run_dir: Path, stage: str) -> Path:
    """Completion marker of `stage` in `run_dir` (written last, atomically)."""
    return run_dir / stage / MARKER


def stage_result(run_dir: Path, stage: str) -> dict[str, Any] | None:
    """What a finished stage returned (from its marker); None if it has not finished in `run_dir`."""
    marker = stage_marker(run_dir, stage)
    return json.loads(marker.read_text())["result"] if marker.exists() else None


def build_trainer(cfg: DictConfig, stage: str, stage_dir: Path, callbacks: list[L.Callback],
                  **overrides: Any) -> L.Trainer:
    """The stage's Trainer: config group `trainer`, TensorBoard under <run_dir>/tensorboard/<stage>, checkpoints."""
    logger = instantiate(cfg.logger, version=stage)
    checkpoint = instantiate(cfg.callbacks.model_checkpoint, dirpath=str(stage_dir / "checkpoints"))
    return instantiate(cfg.trainer, logger=logger, callbacks=[checkpoint, *callbacks],
                       default_root_dir=str(stage_dir), **overrides)


def resume_checkpoint(stage_dir: Path) -> str | None:
    """`last.ckpt` of an interrupted stage, if there is one."""
    last = stage_dir / "checkpoints" / "last.ckpt"
    if last.exists():
        log.info("resuming from %s", last)
        return str(last)
    return None


def save_weights(path: Path, module: torch.nn.Module, config: DictConfig, **extra: Any) -> None:
    """Portable weights: the state dict plus the resolved config that rebuilds the module (loads on CPU)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    payload = {"state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()},
               "config": OmegaConf.to_container(config, resolve=True), **extra}
    torch.save(payload, tmp)
    tmp.replace(path)


class ExportWeights(L.Callback):
    """Writes the trained module's portable weights at the end of training, from global rank 0.

    Done inside the training process so that every strategy (including DDP spawn, whose workers' state never
    returns to the launching process) leaves the same file with the true update count.
    """

    def __init__(self, path: Path, config: DictConfig) -> None:
        self.path, self.config = path, config

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
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
    payload["config"] = OmegaConf.create(payload["config"])
    module = instantiate(payload["config"], **overrides)
    module.load_state_dict(payload.pop("state_dict"))
    return module, payload
