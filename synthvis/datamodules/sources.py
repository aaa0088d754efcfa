"""Where a pixel dataset comes from: a published dataset on disk, or one generated (and cached) by synthvis."""

from __future__ import annotations

import functools
import json
import logging
import shutil
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from synthvis.core.episode import DatasetError, Episode
from synthvis.datamodules.formats import detect_format, write_episodes
from synthvis.utils.files import atomic_write_json, content_key
from synthvis.utils.versions import package_versions

log = logging.getLogger(__name__)

GENERATOR_VERSION = 1  # bump when generation changes what a given config produces
_PROGRESS = ".progress.json"  # episodes already written by an interrupted generation
# The config keys a published dataset's path is built from (conf/data/vd4rl.yaml, conf/data/gen_dgrl.yaml).
PATH_KEYS_HINT = ("set data.source.path.root (or VD4RL_ROOT / GEN_DGRL_ROOT) to the extracted dataset; the folder "
                  "under it follows data.source.path.suite, data.source.path.env, data.source.path.quality and "
                  "data.source.path.image_size (data=vd4rl) or data.source.path.game (data=gen_dgrl)")


class DatasetSource(ABC):
    """Something that can produce a folder of episode files in one of the published formats."""

    @abstractmethod
    def prepare(self) -> Path:
        """Make sure the dataset exists (generating it if needed) and return its folder or file."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """What this dataset is, for logs and cache keys."""


class LocalDataset(DatasetSource):
    """A dataset already on disk (V-D4RL 84 px HDF5, V-D4RL 64 px npz or gen_dgrl npz), read as it is."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()

    def prepare(self) -> Path:
        """Check the path exists and holds a known format."""
        if not self.path.exists():
            raise DatasetError(self.path, "dataset path does not exist", PATH_KEYS_HINT)
        detect_format(self.path)
        return self.path

    def describe(self) -> dict[str, Any]:
        return {"kind": "local", "path": str(self.path)}


def vd4rl_path(root: str | Path, env: str, quality: str, image_size: int, suite: str = "main") -> Path:
    """V-D4RL's layout: <root>/<suite>/<env>/<quality>/<size>px (e.g. main/cheetah_run/expert/84px)."""
    return Path(root).expanduser() / suite / env / quality / f"{image_size}px"


def gen_dgrl_path(root: str | Path, game: str) -> Path:
    """gen_dgrl's layout after extraction: <root>/<game>/ holding one file per episode."""
    return Path(root).expanduser() / game


def _describe_factory(factory: Callable) -> dict[str, Any]:
    if isinstance(factory, functools.partial):
        return {"target": f"{factory.func.__module__}.{factory.func.__qualname__}", **factory.keywords}
    return {"target": f"{factory.__module__}.{getattr(factory, '__qualname__', repr(factory))}"}


class GeneratedDataset(DatasetSource, ABC):
    """A dataset synthvis collects itself, cached under a folder named by a hash of everything that shapes it.

    Generation writes files in chunks (each atomically) and records progress, so a killed run continues where
    it stopped; `metadata.json` is written last and marks the dataset complete.
    """

    def __init__(self, cache_dir: str | Path, quality: str, seed: int, format: str, episodes_per_file: int) -> None:
        if episodes_per_file < 1:
            raise ValueError(f"episodes_per_file must be >= 1, got {episodes_per_file}")
        self.cache_dir = Path(cache_dir).expanduser()
        self.quality, self.seed, self.format = quality, seed, format
        self.episodes_per_file = episodes_per_file

    @property
    @abstractmethod
    def env_name(self) -> str:
        """Name of the environment, for the cache folder."""

    @property
    @abstractmethod
    def progress_total(self) -> int:
        """Size of the dataset in `progress_unit`s, for the progress bar's ETA."""

    progress_unit = "episode"  # or "transition"

    @abstractmethod
    def collect(self, skip_episodes: int) -> Iterator[Episode]:
        """Yield episodes in order, starting after the first `skip_episodes` (reproducing the same ones)."""

    def describe(self) -> dict[str, Any]:
        return {"generator_version": GENERATOR_VERSION, "env_name": self.env_name, "quality": self.quality,
                "seed": self.seed, "format": self.format}

    @property
    def folder(self) -> Path:
        """Cache folder of this exact dataset."""
        return self.cache_dir / "generated" / f"{self.env_name}-{self.quality}-{content_key(self.describe())}"

    def prepare(self) -> Path:
        """Return the cached dataset, generating (or finishing) it first when needed."""
        folder = self.folder
        if (folder / "metadata.json").exists():
            return folder
        folder.mkdir(parents=True, exist_ok=True)
        progress = _load_progress(folder)
        log.info("generating %s dataset %s into %s (%d episodes already there)", self.quality, self.env_name,
                 folder, progress["episodes"])
        started = time.time()
        returns, lengths = list(progress["returns"]), list(progress["lengths"])
        done = progress["episodes"] if self.progress_unit == "episode" else sum(lengths)
        bar = tqdm(total=self.progress_total, initial=done, unit=self.progress_unit,
                   desc=f"generate {self.env_name}/{self.quality}", dynamic_ncols=True)
        chunk: list[Episode] = []
        for episode in self.collect(skip_episodes=progress["episodes"]):
            chunk.append(episode)
            returns.append(episode.episode_return)
            lengths.append(episode.num_transitions)
            bar.update(1 if self.progress_unit == "episode" else episode.num_transitions)
            bar.set_postfix(transitions=sum(lengths), last_return=f"{episode.episode_return:.1f}")
            if len(chunk) == self.episodes_per_file:
                self._flush(folder, chunk, progress, returns, lengths)
        if chunk:
            self._flush(folder, chunk, progress, returns, lengths)
        bar.close()
        metadata = {
            "source": self.describe(),
            "num_episodes": len(returns),
            "num_transitions": int(sum(lengths)),
            "return_mean": float(np.mean(returns)),
            "return_std": float(np.std(returns)),
            "return_min": float(np.min(returns)),
            "return_max": float(np.max(returns)),
            "files": sorted(progress["files"]),
            "generation_seconds": round(time.time() - started, 1),
            "versions": package_versions(),
        }
        atomic_write_json(folder / "metadata.json", metadata)
        (folder / _PROGRESS).unlink(missing_ok=True)
        log.info("dataset ready: %d episodes, %d transitions, return %.1f ± %.1f -> %s", metadata["num_episodes"],
                 metadata["num_transitions"], metadata["return_mean"], metadata["return_std"], folder)
        return folder

    def _flush(self, folder: Path, chunk: list[Episode], progress: dict, returns: list, lengths: list) -> None:
        written = write_episodes(chunk, folder, self.format, first_index=progress["episodes"])
        progress["files"] += [path.name for path in written]
        progress["episodes"] += len(chunk)
        progress["returns"], progress["lengths"] = returns, lengths
        atomic_write_json(folder / _PROGRESS, progress)
        chunk.clear()


def _load_progress(folder: Path) -> dict[str, Any]:
    """Progress of an interrupted generation; files it never recorded (a crash mid-chunk) are removed."""
    path = folder / _PROGRESS
    progress = {"episodes": 0, "files": [], "returns": [], "lengths": []}
    if path.exists():
        progress = json.loads(path.read_text())
    known = set(progress["files"])
    for stray in folder.iterdir():
        if stray.name != _PROGRESS and stray.name not in known:
            shutil.rmtree(stray) if stray.is_dir() else stray.unlink()
    return progress
