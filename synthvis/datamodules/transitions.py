"""Transitions sampled from frame stores by index: frame stacking and n-step returns with V-D4RL's semantics."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from synthvis.core.batches import ContinuousBatch, DiscreteBatch
from synthvis.datamodules.frame_store import FrameStore


def valid_rows(store: FrameStore, nstep: int, episodes: Sequence[int] | None = None) -> np.ndarray:
    """Rows t whose n-step window t+1..t+n stays inside t's episode (V-D4RL samples only these)."""
    starts, ends = store.episode_bounds()
    chosen = range(len(starts)) if episodes is None else episodes
    ranges = [np.arange(starts[e], ends[e] - nstep) for e in chosen if ends[e] - nstep > starts[e]]
    return np.concatenate(ranges) if ranges else np.zeros(0, dtype=np.int64)


def stacked_rows(rows: np.ndarray, episode_first_row: np.ndarray, frame_stack: int) -> np.ndarray:
    """Row indices of the k frames ending at each row, oldest first, repeating the episode's first frame."""
    offsets = np.arange(1 - frame_stack, 1)
    return np.maximum(rows[:, None] + offsets, episode_first_row[:, None])


def nstep_targets(store: FrameStore, rows: np.ndarray, nstep: int, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """Discounted n-step reward sum_{k<n} gamma^k r_{t+1+k} and the bootstrap discount gamma^n * d_{t+n}."""
    powers = gamma ** np.arange(nstep, dtype=np.float64)
    window = store.reward[rows[:, None] + 1 + np.arange(nstep)]
    reward = (window * powers).sum(axis=1)
    discount = gamma**nstep * store.discount[rows + nstep]
    return reward.astype(np.float32), discount.astype(np.float32)


class TransitionDataset(Dataset):
    """Map-style dataset over (store, row) pairs; `__getitems__` gathers a whole batch with one fancy index.

    Several stores can be mixed (the fixed-distraction data of the FDD variant); each item is a valid row of
    one of them.
    """

    def __init__(
        self,
        sources: Sequence[tuple[FrameStore, np.ndarray]],
        frame_stack: int,
        nstep: int,
        gamma: float,
    ) -> None:
        if frame_stack < 1 or nstep < 1 or not 0.0 <= gamma <= 1.0:
            raise ValueError(f"need frame_stack >= 1, nstep >= 1, 0 <= gamma <= 1; got {frame_stack}, {nstep}, {gamma}")
        self.stores = [store for store, _ in sources]
        self.rows = [np.asarray(rows, dtype=np.int64) for _, rows in sources]
        self.offsets = np.cumsum([0] + [len(rows) for rows in self.rows])
        self.frame_stack, self.nstep, self.gamma = frame_stack, nstep, gamma
        self.discrete = self.stores[0].layout.discrete
        self._episode_first_row = []
        for store in self.stores:
            starts, ends = store.episode_bounds()
            self._episode_first_row.append(np.repeat(starts, ends - starts))

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, index: int):
        batch = self.__getitems__([index])
        return type(batch)(*(field[0] for field in batch))

    def __getitems__(self, indices: Sequence[int]) -> ContinuousBatch | DiscreteBatch:
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"transition index out of range [0, {len(self)})")
        which = np.searchsorted(self.offsets, indices, side="right") - 1
        sources = np.unique(which)
        if len(sources) == 1:  # one store: its gather is the batch, in order
            fields = self._gather(sources[0], self.rows[sources[0]][indices - self.offsets[sources[0]]])
        else:  # each store's share written straight into its places in the batch
            fields = None
            for source in sources:
                mask = which == source
                part = self._gather(source, self.rows[source][indices[mask] - self.offsets[source]])
                if fields is None:
                    fields = [np.empty((len(indices), *value.shape[1:]), value.dtype) for value in part]
                for field, value in zip(fields, part):
                    field[mask] = value
        return transition_batch(self.discrete, *(torch.from_numpy(np.ascontiguousarray(field)) for field in fields))

    def targets(self, source: int, rows: np.ndarray) -> tuple[np.ndarray, ...]:
        """For rows of store `source`: the frame rows of obs and next_obs (each (B, k), oldest first), the action,
        the n-step reward and the bootstrap discount."""
        store, first = self.stores[source], self._episode_first_row[source]
        k, n = self.frame_stack, self.nstep
        reward, discount = nstep_targets(store, rows, n, self.gamma)
        return (stacked_rows(rows, first[rows], k), stacked_rows(rows + n, first[rows], k), store.action[rows + 1],
                reward, discount)

    def _gather(self, source: int, rows: np.ndarray) -> tuple[np.ndarray, ...]:
        store = self.stores[source]
        obs_rows, next_obs_rows, action, reward, discount = self.targets(source, rows)
        batch_shape = (len(rows), 3 * self.frame_stack, *store.layout.frame_shape[1:])
        # Sorted, de-duplicated reads keep memory-mapped access sequential.
        needed, inverse = np.unique(np.concatenate([obs_rows, next_obs_rows]).ravel(), return_inverse=True)
        frames = np.asarray(store.frames[needed])[inverse].reshape(2, *batch_shape)
        return frames[0], action, reward, discount, frames[1]


def transition_batch(discrete: bool, obs: torch.Tensor, action: torch.Tensor, reward: torch.Tensor,
                     discount: torch.Tensor, next_obs: torch.Tensor) -> ContinuousBatch | DiscreteBatch:
    """The batch type of the agent: Procgen's `DiscreteBatch` zeroes the next observation of terminal steps."""
    if discrete:
        done = (discount == 0).float()
        next_obs = next_obs * (1 - done.to(next_obs.dtype))[:, None, None, None]
        return DiscreteBatch(obs, action, reward, next_obs, done)
    return ContinuousBatch(obs, action, reward, discount, next_obs)


def collate_prebatched(batch):
    """DataLoader collate for datasets whose `__getitems__` already returns a batch."""
    return batch
