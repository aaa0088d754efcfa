"""LatentDataModule: packed latent transitions for training the diffusion model (SynthER's data side)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from synthvis.core.latent_layout import LatentLayout, as_layout
from synthvis.core.normalizer import StandardNormalizer
from synthvis.datamodules.latent_files import load_latents
from synthvis.datamodules.step_sampler import StepBatchSampler, training_position
from synthvis.datamodules.transitions import collate_prebatched

LARGE_DATASET_ROWS = 800_000  # SynthER: batch 1024 from this many rows on, 256 below


def default_batch_size(num_rows: int) -> int:
    """SynthER's rule: train_batch_size 1024 for datasets of >= 800k rows, else small_batch_size 256."""
    return 1024 if num_rows >= LARGE_DATASET_ROWS else 256


def split_rows(num_rows: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and held-out row indices, a seeded random split, each sorted (sequential reads of a mapped file)."""
    order = np.random.default_rng(seed).permutation(num_rows)
    num_val = round(val_fraction * num_rows)
    return np.sort(order[num_val:]), np.sort(order[:num_val])


class LatentRows(Dataset):
    """Selected rows of an (N, D) array (memory-mapped or in RAM); `__getitems__` gathers a (B, D) float32 batch."""

    def __init__(self, array: np.ndarray, rows: np.ndarray) -> None:
        self.array, self.rows = array, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.array[self.rows[np.asarray(indices)]], dtype=np.float32))


class LatentDataModule(L.LightningDataModule):
    """Batches of raw (unnormalized) (B, D) float32 latent transitions, and the normalizer of the training rows.

    `data` is a folder written by `save_latents` (its layout.json is used) or an (N, D) array with its `layout`.
    `setup` splits rows at random with `seed` into train / validation and fits `normalizer` on the training
    rows, leaving the layout's terminal dims unnormalized; the diffusion module normalizes batches with it (so
    the statistics are saved with the model). `batch_size=None` follows SynthER's size rule on all N rows.
    """

    def __init__(
        self,
        data: str | Path | np.ndarray,
        layout: LatentLayout | Mapping[str, Any] | None = None,
        batch_size: int | None = None,
        val_fraction: float = 0.05,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"latent val_fraction must be in [0, 1), got {val_fraction}")
        if isinstance(data, np.ndarray) and layout is None:
            raise ValueError("LatentDataModule needs the layout of an in-memory array")
        self.data, self.layout = data, None if layout is None else as_layout(layout)
        self.batch_size, self.val_fraction = batch_size, val_fraction
        self.num_workers, self.seed = num_workers, seed
        self.normalizer: StandardNormalizer | None = None
        self.train_set: LatentRows | None = None
        self.val_set: LatentRows | None = None

    def setup(self, stage: str | None = None) -> None:
        """Load the latents, split the rows, pick the batch size and fit the normalizer."""
        if self.train_set is not None:
            return
        array = self.data
        if not isinstance(array, np.ndarray):
            array, stored = load_latents(self.data)
            if self.layout is not None and self.layout != stored:
                raise ValueError(f"{self.data}: stored layout {stored.to_dict()} differs from the given "
                                 f"{self.layout.to_dict()}")
            self.layout = stored
        self.layout.check_rows(array, "the diffusion stage's latent transitions")
        train_rows, val_rows = split_rows(len(array), self.val_fraction, self.seed)
        self.train_set, self.val_set = LatentRows(array, train_rows), LatentRows(array, val_rows)
        self.batch_size = self.batch_size or default_batch_size(len(array))
        self.normalizer = StandardNormalizer.fit(self.train_set.__getitems__(range(len(self.train_set))),
                                                 self.layout.skip_norm_dims)

    def train_dataloader(self) -> DataLoader:
        """Endless shuffled full batches of training rows; batch k is fixed by (seed, k) (see StepBatchSampler)."""
        if len(self.train_set) < self.batch_size:
            raise ValueError(f"only {len(self.train_set)} training latents for batch_size={self.batch_size}; "
                             "lower the batch size or extract more transitions")
        sampler = StepBatchSampler(len(self.train_set), self.batch_size, self.seed, *training_position(self.trainer))
        return DataLoader(self.train_set, batch_sampler=sampler, num_workers=self.num_workers,
                          collate_fn=collate_prebatched, persistent_workers=self.num_workers > 0)

    def val_dataloader(self) -> DataLoader | list:
        """Held-out rows in order; empty when val_fraction is 0."""
        if not len(self.val_set):
            return []
        return DataLoader(self.val_set, batch_size=self.batch_size, num_workers=self.num_workers,
                          collate_fn=collate_prebatched, persistent_workers=self.num_workers > 0)
