"""V-D4RL's 84 px HDF5 shards: all episodes' rows concatenated in flat arrays, split on step_type == FIRST.

Keys: `observation` (N, 3, H, W) uint8, `action` (N, A), `reward` (N,), `discount` (N,) and `step_type` (N,)
with 0 = FIRST, 1 = MID, 2 = LAST. Each shard must hold whole episodes (DrQ+BC's loader concatenates shards,
but a shard that starts mid-episode is refused here rather than silently joined to whatever sorts before it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

import h5py
import numpy as np

from synthvis.core.episode import DatasetError, Episode
from synthvis.datamodules.formats._common import (
    FIX_CORRUPT,
    FIX_INCONSISTENT,
    as_continuous_actions,
    as_float,
    as_frames,
    atomic_file,
    check_keys,
    check_lengths,
    commit,
    next_index,
    writable_rows,
)

FIRST, MID, LAST = 0, 1, 2
ROW_KEYS = ("observation", "action", "reward", "discount")
KEYS = (*ROW_KEYS, "step_type")
_SHARD_NAME = re.compile(r"^shard_(?P<index>\d+)_reward_")
_CHUNK_BYTES = 1 << 19  # ~0.5 MB chunks: a few dozen 84 px frames, so episode slices decompress little extra


def owns(path: Path) -> bool:
    """Whether `path` is an HDF5 shard (V-D4RL names vary: shard_*, data, split counters)."""
    return path.suffix == ".hdf5"


def read_episodes(path: Path) -> Iterator[Episode]:
    """Yield a shard's episodes in order, reading one episode's rows at a time (a 1M-row shard streams)."""
    try:
        with h5py.File(path, "r") as shard:
            check_keys(path, shard.keys(), KEYS)
            check_lengths(path, {key: shard[key].shape for key in KEYS})
            for start, stop in episode_bounds(path, shard["step_type"][:]):
                rows = {key: shard[key][start:stop] for key in ROW_KEYS}
                span = f"[{start}:{stop}]"
                yield Episode(
                    frames=as_frames(path, f"observation{span}", rows["observation"]),
                    action=as_continuous_actions(path, f"action{span}", rows["action"]),
                    reward=as_float(path, f"reward{span}", rows["reward"]),
                    discount=as_float(path, f"discount{span}", rows["discount"]),
                )
    except OSError as err:  # h5py's error for truncated files, bad superblocks and unreadable chunks
        raise DatasetError(path, f"cannot be read as HDF5 ({err})", FIX_CORRUPT) from err


def episode_bounds(path: Path, step_type: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) rows of each episode: FIRST opens one, and the row before the next FIRST must be LAST."""
    if step_type.ndim != 1 or not np.isin(step_type, (FIRST, MID, LAST)).all():
        raise DatasetError(path, f"'step_type' (shape {step_type.shape}) holds values other than 0, 1, 2",
                           "step_type must be 0 (FIRST), 1 (MID) or 2 (LAST) per row")
    if step_type[0] != FIRST:
        raise DatasetError(path, f"step_type starts with {step_type[0]:g}, not FIRST (0)",
                           "a shard must hold whole episodes: re-split the data at rows where step_type == 0")
    starts = np.flatnonzero(step_type == FIRST)
    stops = np.append(starts[1:], len(step_type))
    unended = stops[step_type[stops - 1] != LAST]
    if unended.size:
        raise DatasetError(path, f"the episode ending at row {unended[0] - 1} does not end with LAST (2)",
                           f"every episode must run FIRST, MID..., LAST; {FIX_INCONSISTENT}")
    stray = np.setdiff1d(np.flatnonzero(step_type == LAST), stops - 1)
    if stray.size:
        raise DatasetError(path, f"row {stray[0]} is LAST (2) but the next row is not FIRST (0)", FIX_INCONSISTENT)
    return list(zip(starts.tolist(), stops.tolist()))


def write_episodes(episodes: Iterable[Episode], folder: Path, first_index: int | None = None,
                   compression: Literal["gzip", "lzf"] = "gzip") -> list[Path]:
    """Write continuous episodes as one shard `shard_{i}_reward_{mean return:.1f}.hdf5`; [] when there are none.

    `i` is `first_index`, by default one past the largest shard number in `folder`. Episodes are appended one at
    a time, so the shard is built without holding all of them in memory.
    """
    returns: list[float] = []
    with atomic_file(folder) as temp:
        with h5py.File(temp, "w") as shard:
            for index, episode in enumerate(episodes):
                rows = writable_rows(folder, index, episode, discrete=False)
                step_type = np.full(len(episode), MID, dtype=np.uint8)
                step_type[0], step_type[-1] = FIRST, LAST
                arrays = {"observation": rows["frames"], "action": rows["action"], "reward": rows["reward"],
                          "discount": rows["discount"], "step_type": step_type}
                for key, data in arrays.items():
                    _append(folder, index, shard, key, data, compression)
                returns.append(episode.episode_return)
        if not returns:
            return []
        shard_index = next_index(folder, _SHARD_NAME) if first_index is None else first_index
        return [commit(temp, f"shard_{shard_index}_reward_{np.mean(returns):.1f}.hdf5")]


def _append(folder: Path, index: int, shard: h5py.File, key: str, data: np.ndarray, compression: str) -> None:
    row_shape = data.shape[1:]
    if key not in shard:
        chunk_rows = max(1, min(4096, _CHUNK_BYTES // max(1, data[:1].nbytes)))
        shard.create_dataset(key, shape=(0, *row_shape), maxshape=(None, *row_shape), dtype=data.dtype,
                             chunks=(chunk_rows, *row_shape), compression=compression)
    dataset = shard[key]
    if dataset.shape[1:] != row_shape:
        raise DatasetError(folder, f"episode {index} has '{key}' rows of shape {row_shape}, earlier episodes "
                           f"{dataset.shape[1:]}", "a shard holds one frame size and action size: split the episodes")
    end = dataset.shape[0]
    dataset.resize(end + len(data), axis=0)
    dataset[end:] = data
