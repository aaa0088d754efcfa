"""PixelDataModule: offline pixel transitions (frame-stacked, n-step) from any dataset source."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from synthvis.datamodules.device_transitions import DeviceTransitions, TransitionIndices, free_bytes
from synthvis.datamodules.formats import iter_episodes
from synthvis.datamodules.frame_store import FrameStore
from synthvis.datamodules.sources import DatasetSource
from synthvis.datamodules.step_sampler import StepBatchSampler, training_position
from synthvis.datamodules.transitions import TransitionDataset, collate_prebatched, valid_rows
from synthvis.envs.procgen import NUM_ACTIONS
from synthvis.utils.files import content_key, folder_fingerprint
from synthvis.utils.seeding import derive_seed

log = logging.getLogger(__name__)


class PixelDataModule(L.LightningDataModule):
    """Batches of `ContinuousBatch` (DMC) or `DiscreteBatch` (Procgen) from an offline pixel dataset.

    `prepare_data` generates the dataset if it is missing and flattens it once into a memory-mapped frame
    store under `cache_dir/stores/` (shared by every run that reads the same files). `setup` splits episodes
    into train/validation with `seed` and samples valid indices only. With `fdd_source` and `fdd_fraction`,
    that fraction of the training transitions comes from the fixed-distraction dataset (the FDD variant).

    Training batches reach the device in one of two ways. With `frames_on_device` the training transitions'
    frames and targets are uploaded once (`DeviceTransitions`), the loader yields only indices and the batch is
    gathered on the device, so nothing is assembled on the host; by default (null) this happens when the free
    memory of the training device (a GPU's, or the host's RAM) holds the frames twice over. Otherwise batches
    are gathered on the host, in `num_workers` worker processes if set, and copied from page-locked memory when
    `pin_memory` (default: on a GPU).
    """

    def __init__(
        self,
        source: DatasetSource,
        frame_stack: int = 3,
        nstep: int = 3,
        gamma: float = 0.99,
        batch_size: int = 256,
        val_fraction: float = 0.05,
        num_workers: int = 0,
        seed: int = 0,
        cache_dir: str | Path = "data_cache",
        fdd_source: DatasetSource | None = None,
        fdd_fraction: float = 0.0,
        augmentation: Callable | None = None,
        pin_memory: bool | None = None,
        frames_on_device: bool | None = None,
    ) -> None:
        super().__init__()
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"data.val_fraction must be in [0, 1), got {val_fraction}")
        if not 0.0 <= fdd_fraction < 1.0:
            raise ValueError(f"data.fdd_fraction must be in [0, 1), got {fdd_fraction}")
        if fdd_fraction > 0 and fdd_source is None:
            raise ValueError("data.fdd_fraction > 0 needs data.fdd_source (the fixed-distraction dataset)")
        if batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1, got {batch_size}")
        for key, value in (("pin_memory", pin_memory), ("frames_on_device", frames_on_device)):
            if value is not None and not isinstance(value, bool):
                raise ValueError(f"data.{key} must be true, false or null (decided by the device), got {value!r}")
        self.source, self.fdd_source = source, fdd_source
        self.frame_stack, self.nstep, self.gamma = frame_stack, nstep, gamma
        self.batch_size, self.val_fraction, self.fdd_fraction = batch_size, val_fraction, fdd_fraction
        self.num_workers, self.seed, self.pin_memory = num_workers, seed, pin_memory
        self.frames_on_device = frames_on_device
        self.cache_dir = Path(cache_dir).expanduser()
        self.augmentation = augmentation
        self.store: FrameStore | None = None
        self.fdd_store: FrameStore | None = None
        self.train_set: TransitionDataset | None = None
        self.val_set: TransitionDataset | None = None
        self.device_set: DeviceTransitions | None = None

    # --- preparation --------------------------------------------------------------------------------------
    def _store_dir(self, dataset_path: Path) -> Path:
        return self.cache_dir / "stores" / content_key({"path": str(dataset_path.resolve()),
                                                        "files": folder_fingerprint(dataset_path)})

    def _prepare_store(self, source: DatasetSource) -> Path:
        dataset_path = source.prepare()
        store_dir = self._store_dir(dataset_path)
        if not FrameStore.exists(store_dir):
            log.info("indexing %s into frame store %s", dataset_path, store_dir)
            FrameStore.build(iter_episodes(dataset_path), store_dir, source=str(dataset_path))
        return store_dir

    def prepare_data(self) -> None:
        """Generate missing datasets and build their frame stores (runs on one process only)."""
        self._prepare_store(self.source)
        if self.fdd_source is not None and self.fdd_fraction > 0:
            self._prepare_store(self.fdd_source)

    # --- setup --------------------------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        """Open the frame stores, split episodes and build the train/validation transition sets."""
        if self.train_set is not None:
            return
        self.store = FrameStore(self._prepare_store(self.source))
        rng = np.random.default_rng(self.seed)
        train_episodes, val_episodes = split_episodes(self.store.layout.num_episodes, self.val_fraction, rng)
        train_rows = valid_rows(self.store, self.nstep, train_episodes)
        if len(train_rows) == 0:
            raise ValueError(f"{self.store.directory}: no training transition has a full {self.nstep}-step window; "
                             "lower data.nstep or add longer episodes")
        sources = [(self.store, train_rows)]
        if self.fdd_source is not None and self.fdd_fraction > 0:
            self.fdd_store = FrameStore(self._prepare_store(self.fdd_source))
            sources = mix_fdd(self.store, train_rows, self.fdd_store, valid_rows(self.fdd_store, self.nstep),
                              self.fdd_fraction, rng)
        self.train_set = TransitionDataset(sources, self.frame_stack, self.nstep, self.gamma)
        val_rows = valid_rows(self.store, self.nstep, val_episodes)
        self.val_set = TransitionDataset([(self.store, val_rows)], self.frame_stack, self.nstep, self.gamma)
        log.info("%s", self.memory_summary())

    def _device(self) -> torch.device:
        """The device this module's Trainer trains on (the CPU without a Trainer)."""
        return self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")

    def _frames_fit_device(self) -> bool:
        """Whether to keep the training frames on the device: `frames_on_device`, or null = the device has room."""
        if self.frames_on_device is not None:
            return self.frames_on_device
        needed = sum(store.layout.frame_bytes for store in self.train_set.stores)
        return 2 * needed <= free_bytes(self._device())

    @property
    def obs_shape(self) -> tuple[int, int, int]:
        """Shape of a stacked observation, (3 * frame_stack, H, W)."""
        channels, height, width = self.store.layout.frame_shape
        return (channels * self.frame_stack, height, width)

    @property
    def action_dim(self) -> int:
        """Action dimensions (continuous) or number of discrete actions (Procgen's 15)."""
        return NUM_ACTIONS if self.discrete else int(self.store.layout.action_shape[0])

    @property
    def discrete(self) -> bool:
        """Whether actions are integer indices."""
        return self.store.layout.discrete

    def memory_summary(self) -> str:
        """One line: dataset size on disk (memory-mapped) and in RAM, and the transition counts."""
        stores = [s for s in (self.store, self.fdd_store) if s is not None]
        frame_bytes = sum(s.layout.frame_bytes for s in stores)
        ram_bytes = sum(s.action.nbytes + s.reward.nbytes + s.discount.nbytes for s in stores)
        batch_bytes = 2 * self.batch_size * 3 * self.frame_stack * int(np.prod(stores[0].layout.frame_shape[1:]))
        return (f"dataset: {sum(s.layout.num_rows for s in stores):,} frames {stores[0].layout.frame_shape} uint8 = "
                f"{frame_bytes / 2**30:.2f} GiB memory-mapped from disk, {ram_bytes / 2**20:.1f} MiB of "
                f"actions/rewards in RAM, {batch_bytes / 2**20:.1f} MiB per batch; "
                f"{len(self.train_set):,} train / {len(self.val_set):,} validation transitions")

    # --- loaders ------------------------------------------------------------------------------------------
    def train_dataloader(self) -> DataLoader:
        """Endless shuffled training batches; batch k is fixed by (seed, k) and each DDP rank draws its own share."""
        if len(self.train_set) < self.batch_size:
            raise ValueError(f"only {len(self.train_set)} training transitions for data.batch_size="
                             f"{self.batch_size}; lower the batch size or add data")
        sampler = StepBatchSampler(len(self.train_set), self.batch_size, self.seed, *training_position(self.trainer))
        if self.device_set is not None and self.device_set.device != self._device():
            self.device_set = None  # left by a fit that ended in an error, on another device
        if self.device_set is None and self._frames_fit_device():
            self.device_set = DeviceTransitions(self.train_set, self._device())
            log.info("training batches are gathered on %s from %.2f GiB of frames held there", self.device_set.device,
                     self.device_set.frames.nbytes / 2**30)
        if self.device_set is not None:  # indices only: the batch is gathered on the device
            return DataLoader(TransitionIndices(len(self.train_set)), batch_sampler=sampler,
                              collate_fn=collate_prebatched)
        return DataLoader(self.train_set, batch_sampler=sampler, num_workers=self.num_workers,
                          collate_fn=collate_prebatched, pin_memory=self._pin_memory(),
                          persistent_workers=self.num_workers > 0)

    def _pin_memory(self) -> bool:
        """`pin_memory`, or null = pin when the batches go to a GPU (an asynchronous copy needs page-locked memory)."""
        return self.pin_memory if self.pin_memory is not None else self._device().type == "cuda"

    def val_dataloader(self) -> DataLoader | list:
        """Held-out episodes' transitions, in order; empty when val_fraction is 0."""
        if not len(self.val_set):
            return []
        return DataLoader(self.val_set, batch_size=self.batch_size, num_workers=self.num_workers,
                          collate_fn=collate_prebatched, pin_memory=self._pin_memory(),
                          persistent_workers=self.num_workers > 0)

    def teardown(self, stage: str) -> None:
        """Free the device's copy of the training frames when a fit ends."""
        self.device_set = None

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """Training batches held on the device are gathered here; then pixel augmentation, during training only.

        Update k's parameters come from (seed, k, rank), so a resumed stage augments exactly as an uninterrupted one.
        """
        if self.device_set is not None and isinstance(batch, torch.Tensor):  # the indices of a training batch
            batch = self.device_set.batch(batch)
        if self.augmentation is not None and self.trainer is not None and self.trainer.training:
            self.augmentation.seed(derive_seed(self.seed, "augment", self.trainer.global_step,
                                               self.trainer.global_rank))
            return self.augmentation(batch)
        return batch


def split_episodes(num_episodes: int, val_fraction: float, rng: np.random.Generator) -> tuple[list[int], list[int]]:
    """Random episode-level split (no transition of a validation episode is trained on)."""
    order = rng.permutation(num_episodes)
    num_val = round(val_fraction * num_episodes)
    if val_fraction > 0 and num_episodes >= 2:
        num_val = max(1, num_val)
    num_val = min(num_val, num_episodes - 1)
    return sorted(order[num_val:].tolist()), sorted(order[:num_val].tolist())


def mix_fdd(store: FrameStore, rows: np.ndarray, fdd_store: FrameStore, fdd_rows: np.ndarray, fraction: float,
            rng: np.random.Generator) -> list[tuple[FrameStore, np.ndarray]]:
    """Keep the training set's size but draw `fraction` of it from the fixed-distraction data (the paper's 95/5)."""
    num_fdd = round(fraction * len(rows))
    if num_fdd > len(fdd_rows):
        raise ValueError(f"{fdd_store.directory}: the FDD mix needs {num_fdd} transitions but the fixed-distraction "
                         f"dataset has {len(fdd_rows)}; generate more episodes (data.fdd_source.num_episodes)")
    keep = np.sort(rng.choice(len(rows), len(rows) - num_fdd, replace=False))
    chosen = np.sort(rng.choice(len(fdd_rows), num_fdd, replace=False))
    return [(store, rows[keep]), (fdd_store, fdd_rows[chosen])]
