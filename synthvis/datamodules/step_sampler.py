"""Training batches indexed by update: batch k is a pure function of (seed, k), so a resumed stage sees the same data."""

from __future__ import annotations

from collections.abc import Iterator

import lightning as L
import numpy as np
from torch.utils.data import Sampler

from synthvis.utils.seeding import derive_seed


class StepBatchSampler(Sampler[list[int]]):
    """An endless stream of index batches, starting at update `start`; each rank takes its own share.

    Sampling is without replacement within an epoch, as shuffle + drop_last: epoch e is a permutation seeded by
    (seed, e), cut into world_size * batch_size slices, and rank r's batch k is slice (k mod per_epoch) * world_size
    + r of epoch k // per_epoch. The DataLoader is built when a stage starts or resumes, with `start` = the
    update counter it resumes from, so no sampler state has to be saved.
    """

    def __init__(self, num_items: int, batch_size: int, seed: int, start: int = 0, rank: int = 0,
                 world_size: int = 1) -> None:
        super().__init__()
        self.per_epoch = num_items // (batch_size * world_size)
        if self.per_epoch < 1:
            raise ValueError(f"{num_items} items cannot fill one batch of {batch_size} on each of {world_size} "
                             "process(es); lower the batch size or add data")
        self.num_items, self.batch_size, self.seed = num_items, batch_size, seed
        self.start, self.rank, self.world_size = start, rank, world_size

    def __iter__(self) -> Iterator[list[int]]:
        epoch, order = -1, None
        step = self.start
        while True:
            if step // self.per_epoch != epoch:
                epoch = step // self.per_epoch
                order = np.random.default_rng(derive_seed(self.seed, epoch)).permutation(self.num_items)
            first = ((step % self.per_epoch) * self.world_size + self.rank) * self.batch_size
            yield order[first:first + self.batch_size].tolist()
            step += 1


def training_position(trainer: L.Trainer | None) -> tuple[int, int, int]:
    """(update to start from, rank, world size) of a Trainer about to train; (0, 0, 1) without one."""
    if trainer is None:
        return 0, 0, 1
    return trainer.global_step, trainer.global_rank, trainer.world_size
