"""A callback that SIGKILLs its own training process at chosen points, for the kill-and-resume tests."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import lightning as L


class SigkillAt(L.Callback):
    """Kill the process with SIGKILL where a trigger file `<folder>/<stage>-<point>` exists, deleting it first.

    Points: `start` (fit starts), `step-<k>` (after update k), `end` (training done, before the weights are
    exported and the stage is marked done). Each trigger fires once, so a resumed run passes it.
    """

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)

    def _fire(self, trainer: L.Trainer, point: str) -> None:
        trigger = self.folder / f"{Path(trainer.default_root_dir).name}-{point}"
        if trigger.exists():
            trigger.unlink()
            os.kill(os.getpid(), signal.SIGKILL)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._fire(trainer, "start")

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self._fire(trainer, f"step-{trainer.global_step}")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._fire(trainer, "end")
