"""UpsampledDataModule: fine-tuning batches mixing real and synthetic latent transitions (SynthER online's mix)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from synthvis.core.latent_layout import LatentLayout, as_layout
from synthvis.datamodules.step_sampler import training_position
from synthvis.utils.seeding import derive_seed


class MixedBatches(IterableDataset):
    """An endless stream of (B, D) float32 batches: `num_real` real rows, then `num_synthetic` synthetic rows.

    Rows are drawn uniformly with replacement from each set (SynthER REDQRLPDAgent.sample_data), `chunk` batches
    at a time: chunk c (batches c * chunk to (c + 1) * chunk - 1) comes from one generator seeded with
    (seed, c, rank) and one gather, so the stream is reproducible and starts at batch `start` exactly where an
    uninterrupted stream would be. Drawing batch by batch cost ~0.2 ms per batch inside the training loop (a
    generator and two row gathers), a tenth of a fine-tuning update on a CPU; a chunk's batches are slices.
    """

    def __init__(self, real: np.ndarray | None, synthetic: np.ndarray | None, num_real: int, num_synthetic: int,
                 seed: int, start: int = 0, rank: int = 0, chunk: int = 64) -> None:
        self.parts = [(np.asarray(array, dtype=np.float32), count)
                      for array, count in ((real, num_real), (synthetic, num_synthetic)) if count]
        self.seed, self.start, self.rank, self.chunk = seed, start, rank, chunk

    def __iter__(self) -> Iterator[torch.Tensor]:
        index, skip = divmod(self.start, self.chunk)
        while True:
            rng = np.random.default_rng(derive_seed(self.seed, index, self.rank))
            rows = [array[rng.integers(0, len(array), (self.chunk, count))] for array, count in self.parts]
            yield from torch.from_numpy(np.concatenate(rows, axis=1))[skip:]
            index, skip = index + 1, 0


class UpsampledDataModule(L.LightningDataModule):
    """Endless training batches of `batch_size` rows: round(synthetic_ratio * B) synthetic, the rest real.

    synthetic_ratio 0 trains on the real latents only, 1 on the synthetic ones only (SynthER offline); the
    default 0.5 is SynthER online's diffusion_sample_ratio. Training length is set by the Trainer's max_steps.
    Batches are raw packed rows; HeadFinetune decodes them with `layout`.
    """

    def __init__(
        self,
        real: np.ndarray | None,
        synthetic: np.ndarray | None,
        layout: LatentLayout | Mapping[str, Any],
        batch_size: int = 256,
        synthetic_ratio: float = 0.5,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not 0.0 <= synthetic_ratio <= 1.0:
            raise ValueError(f"finetune.synthetic_ratio must be in [0, 1], got {synthetic_ratio}")
        if batch_size < 1:
            raise ValueError(f"fine-tuning batch_size must be >= 1, got {batch_size}")
        layout = as_layout(layout)
        self.num_synthetic = round(synthetic_ratio * batch_size)
        self.num_real = batch_size - self.num_synthetic
        for name, array, count in (("real", real, self.num_real), ("synthetic", synthetic, self.num_synthetic)):
            if count and (array is None or len(array) == 0):
                raise ValueError(f"synthetic_ratio={synthetic_ratio} draws {count} {name} rows per batch but no "
                                 f"{name} latents were given")
            if array is not None:
                layout.check_rows(array, f"the {name} latents")
        self.real, self.synthetic, self.layout = real, synthetic, layout
        self.batch_size, self.synthetic_ratio, self.seed = batch_size, synthetic_ratio, seed

    def train_dataloader(self) -> DataLoader:
        """Mixed batches, passed through as they are (gathering rows is cheap, so no worker processes)."""
        start, rank, _ = training_position(self.trainer)
        return DataLoader(MixedBatches(self.real, self.synthetic, self.num_real, self.num_synthetic, self.seed,
                                       start, rank), batch_size=None)
