"""Episodes flattened into one memory-mapped frame file plus small per-row arrays, built once and reused."""

from __future__ import annotations

import glob
import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synthvis.core.episode import DatasetError, Episode

STORE_VERSION = 1
_FRAMES = "frames.u8"
_ROWS = "rows.npz"
_MANIFEST = "store.json"  # written last: its presence marks a complete store
_PARTIAL = ".partial-"  # `<store>.partial-<pid>`: a store being built by that process


@dataclass(frozen=True)
class StoreLayout:
    """Shapes and sizes of a frame store."""

    num_rows: int
    frame_shape: tuple[int, int, int]
    action_shape: tuple[int, ...]
    discrete: bool
    num_episodes: int

    @property
    def frame_bytes(self) -> int:
        """Bytes of all frames on disk."""
        return self.num_rows * int(np.prod(self.frame_shape))


class FrameStore:
    """Single uint8 frames (memory-mapped, opened lazily per process) and per-row action/reward/discount in RAM.

    Row t holds frame o_t and the action/reward that produced it; `episode_starts[e]` is the first row of
    episode e and `episode_starts[-1]` the total row count.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        manifest_path = self.directory / _MANIFEST
        if not manifest_path.exists():
            raise DatasetError(self.directory, "not a complete frame store (store.json missing)",
                               "delete the folder; it is rebuilt from the dataset on the next run")
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("version") != STORE_VERSION:
            raise DatasetError(manifest_path, f"frame store version {manifest.get('version')} != {STORE_VERSION}",
                               "delete the folder to rebuild it")
        self.layout = StoreLayout(
            num_rows=manifest["num_rows"],
            frame_shape=tuple(manifest["frame_shape"]),
            action_shape=tuple(manifest["action_shape"]),
            discrete=manifest["discrete"],
            num_episodes=manifest["num_episodes"],
        )
        with np.load(self.directory / _ROWS) as rows:
            self.action = rows["action"]
            self.reward = rows["reward"]
            self.discount = rows["discount"]
            self.episode_starts = rows["episode_starts"]
        self._frames: np.memmap | None = None

    @property
    def frames(self) -> np.memmap:
        """All frames, (num_rows, 3, H, W) uint8, memory-mapped read-only."""
        if self._frames is None:
            self._frames = np.memmap(self.directory / _FRAMES, dtype=np.uint8, mode="r",
                                     shape=(self.layout.num_rows, *self.layout.frame_shape))
        return self._frames

    def __getstate__(self) -> dict:
        # A pickled memmap would copy the whole file into the DataLoader worker; reopen it there instead.
        state = self.__dict__.copy()
        state["_frames"] = None
        return state

    def episode_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """First row and one-past-last row of every episode."""
        return self.episode_starts[:-1], self.episode_starts[1:]

    @classmethod
    def exists(cls, directory: str | Path) -> bool:
        """Whether a complete store lives in `directory`."""
        return (Path(directory) / _MANIFEST).exists()

    @classmethod
    def build(cls, episodes: Iterable[Episode], directory: str | Path, source: str = "") -> FrameStore:
        """Stream `episodes` into a new store at `directory` (atomically: built aside, then renamed).

        The store is written into `<directory>.partial-<pid>`, which is removed when the build fails or is
        interrupted; such folders left by killed builds (their process gone) are removed when a build starts.
        """
        directory = Path(directory)
        _remove_stale_partials(directory)
        staging = directory.with_name(f"{directory.name}{_PARTIAL}{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        try:
            _write_store(episodes, staging, source, origin=source or directory)
            if directory.exists():  # a concurrent builder finished first; keep its store
                shutil.rmtree(staging)
            else:
                os.replace(staging, directory)
        except BaseException:  # KeyboardInterrupt too: a half-written store is never reused, only cleaned up
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return cls(directory)


def _write_store(episodes: Iterable[Episode], staging: Path, source: str, origin: str | Path) -> None:
    """Write the frames, per-row arrays and (last) the manifest of a store into `staging`; errors name `origin`."""
    actions, rewards, discounts, starts = [], [], [], [0]
    frame_shape = action_shape = discrete = None
    with open(staging / _FRAMES, "wb") as frame_file:
        for index, episode in enumerate(episodes):
            shapes = (episode.frames.shape[1:], episode.action.shape[1:], episode.discrete)
            if frame_shape is None:
                frame_shape, action_shape, discrete = shapes
            elif shapes != (frame_shape, action_shape, discrete):
                raise DatasetError(origin, f"episode {index} has frames {shapes[0]}, actions {shapes[1]} but earlier "
                                   f"episodes have {frame_shape}, {action_shape}",
                                   "one dataset must hold one environment at one image size")
            if len(episode) < 2:
                raise DatasetError(origin, f"episode {index} has {len(episode)} row(s), no transition",
                                   "remove the episode")
            frame_file.write(np.ascontiguousarray(episode.frames, dtype=np.uint8).tobytes())
            actions.append(episode.action)
            rewards.append(episode.reward.astype(np.float32))
            discounts.append(episode.discount.astype(np.float32))
            starts.append(starts[-1] + len(episode))
    if frame_shape is None:
        raise DatasetError(origin, "dataset holds no episodes", "point the config at a non-empty dataset")
    np.savez(staging / _ROWS, action=np.concatenate(actions), reward=np.concatenate(rewards),
             discount=np.concatenate(discounts), episode_starts=np.asarray(starts, dtype=np.int64))
    manifest = {"version": STORE_VERSION, "num_rows": starts[-1], "frame_shape": list(frame_shape),
                "action_shape": list(action_shape), "discrete": bool(discrete),
                "num_episodes": len(starts) - 1, "source": str(source)}
    (staging / _MANIFEST).write_text(json.dumps(manifest, indent=2))


def _remove_stale_partials(directory: Path) -> None:
    """Remove `<directory>.partial-<pid>` folders whose build process no longer exists (e.g. it was SIGKILLed)."""
    if not directory.parent.is_dir():
        return
    prefix = f"{directory.name}{_PARTIAL}"
    for leftover in directory.parent.glob(glob.escape(prefix) + "*"):
        pid = leftover.name[len(prefix):]
        if pid.isdigit() and not _process_exists(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)


def _process_exists(pid: int) -> bool:
    """Whether a process with this id is running (signal 0 checks without signalling)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True
