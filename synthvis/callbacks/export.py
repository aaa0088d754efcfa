"""Callbacks that write a training stage's portable weights when fit ends."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from omegaconf import DictConfig

from synthvis.utils.weights import save_weights


class ExportWeights(L.Callback):
    """Writes the trained module's portable weights when fit ends, from global rank 0.

    Done inside the training process so that every strategy leaves the same file with the true update count
    (DDP spawn trains in worker processes: Lightning loads rank 0's weights back into the launching process's
    module, but not the update count). On fit end rather than train end: a stage resumed from a checkpoint of its
    last update trains no more, and Lightning then skips the train hooks.
    """

    def __init__(self, path: Path, config: DictConfig) -> None:
        self.path, self.config = path, config

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Save on rank 0."""
        if trainer.is_global_zero:
            save_weights(self.path, pl_module, self.config, updates=trainer.global_step)


class FullAgentExport(ExportWeights):
    """Saves the complete agent (frozen encoder and trunks + fine-tuned heads), loadable like a base agent."""

    def on_fit_end(self, trainer, pl_module) -> None:
        """Export `full_agent()` on rank 0."""
        super().on_fit_end(trainer, pl_module.full_agent())
