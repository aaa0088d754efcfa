"""The training stages' checkpoint callback: Lightning's ModelCheckpoint, announcing the disk it will use."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

from synthvis.utils.checkpoints import checkpoint_bytes

log = logging.getLogger(__name__)


class StageCheckpoint(ModelCheckpoint):
    """ModelCheckpoint into <stage dir>/checkpoints (the Trainer's default_root_dir) unless `dirpath` is given,
    announcing when training starts the size of one checkpoint and how many it keeps."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Checkpoints beside the stage's weights, where resuming looks for them (not under the logger's folder)."""
        if self.dirpath is None:
            self.dirpath = str(Path(trainer.default_root_dir) / "checkpoints")
        super().setup(trainer, pl_module, stage)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Announce the checkpoints' disk use (rank 0)."""
        super().on_train_start(trainer, pl_module)
        if not trainer.is_global_zero or not self._every_n_train_steps:
            return
        size = checkpoint_bytes(pl_module, trainer.optimizers) / 2**20
        count = max(1, trainer.max_steps // self._every_n_train_steps) if trainer.max_steps > 0 else None
        if self.save_top_k == 0:
            kept = f"keeping last.ckpt only (~{size:.1f} MiB)"
        elif self.save_top_k < 0:
            total = f"~{size * (count + 1):.1f} MiB" if count else "unbounded"
            kept = f"keeping every one ({total})"
        else:
            kept = f"keeping last.ckpt and {self.save_top_k} more (~{size * (self.save_top_k + 1):.1f} MiB)"
        log.info("checkpoints: ~%.1f MiB each, every %d updates into %s, %s", size, self._every_n_train_steps,
                 self.dirpath, kept)
