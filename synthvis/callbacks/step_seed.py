"""Per-update seeding: the update counter a checkpoint saves is the whole random state of a training stage."""

from __future__ import annotations

from typing import Any

import lightning as L

from synthvis.datamodules.augmentations.generators import SeededGenerators
from synthvis.utils.seeding import derive_seed, seed_all


class StepSeed(L.Callback):
    """Before update k, seed every random draw the update makes from (seed, k, rank).

    The global RNGs (DrQ's policy noise, EDM's noise levels, ...) and each module's own `SeededGenerators`
    stream (e.g. DrQ's random shift, keyed by the module's name) restart from a seed of their own. A stage
    resumed from a checkpoint at update k thus draws exactly what an uninterrupted run draws there, whatever
    ran in between (validation, periodic evaluation, the restart itself).
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.streams: list[tuple[str, SeededGenerators]] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Find the modules' own generator streams once (the module tree does not change during training)."""
        self.streams = [(name, module.generators) for name, module in pl_module.named_modules()
                        if isinstance(getattr(module, "generators", None), SeededGenerators)]

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        """Seed update `trainer.global_step` on this rank."""
        step, rank = trainer.global_step, trainer.global_rank
        seed_all(derive_seed(self.seed, step, rank))
        for name, generators in self.streams:
            generators.seed(derive_seed(self.seed, step, rank, name))
