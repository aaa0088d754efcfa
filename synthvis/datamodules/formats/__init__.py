"""The published offline pixel-dataset formats, read into and written from `Episode` records.

- `vd4rl_hdf5`: V-D4RL 84 px shards (`*.hdf5`, flat arrays split on step_type);
- `vd4rl_npz`: V-D4RL 64 px DreamerV2-style per-episode `.npz` files;
- `gen_dgrl`: gen_dgrl offline Procgen per-episode `.npz` (or pickled-dict `.npy`) files.

A dataset is one file or one folder of files of a single format (not searched recursively); files are read in
sorted name order, and anything wrong with them raises `DatasetError` naming the file.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol

from synthvis.core.episode import DatasetError, Episode
from synthvis.datamodules.formats import gen_dgrl, vd4rl_hdf5, vd4rl_npz

__all__ = ["FORMATS", "DatasetError", "Episode", "detect_format", "iter_episodes", "write_episodes"]


class _Format(Protocol):
    def owns(self, path: Path) -> bool: ...

    def read_episodes(self, path: Path) -> Iterator[Episode]: ...

    def write_episodes(self, episodes: Iterable[Episode], folder: Path, first_index: int | None = None) -> list[Path]: ...


FORMATS: dict[str, _Format] = {"vd4rl_hdf5": vd4rl_hdf5, "vd4rl_npz": vd4rl_npz, "gen_dgrl": gen_dgrl}
DATA_SUFFIXES = (".hdf5", ".npz", ".npy")
_LAYOUTS = f"V-D4RL *.hdf5 or {vd4rl_npz.LAYOUT}; gen_dgrl {gen_dgrl.LAYOUT} (or .npy)"


def detect_format(path: str | Path) -> str:
    """The format ('vd4rl_hdf5' | 'vd4rl_npz' | 'gen_dgrl') of a dataset file or folder."""
    path = Path(path)
    return _single_format(path, _data_files(path))


def iter_episodes(path: str | Path, format: str | None = None) -> Iterator[Episode]:
    """Episodes of a dataset file or folder, lazily, in sorted file order; the path is checked before returning."""
    path = Path(path)
    files = _data_files(path)
    found = _single_format(path, files)
    if format is not None and _module(format) is not FORMATS[found]:
        raise DatasetError(path, f"holds {found} files, not {format}", f"set the format to {found!r} or leave it unset")
    return itertools.chain.from_iterable(map(FORMATS[found].read_episodes, files))


def write_episodes(episodes: Iterable[Episode], folder: str | Path, format: str,
                   first_index: int | None = None) -> list[Path]:
    """Write episodes into `folder` (created if needed) in `format`, each file atomically; return the new files.

    `first_index` numbers the first file (shard number, or episode index in the name); by default it is one past
    the largest already in the folder.
    """
    module = _module(format)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    existing = _listing(folder)
    if existing and (held := _single_format(folder, existing)) != format:
        raise DatasetError(folder, f"already holds {held} files; writing {format} would mix formats",
                           "write each format to its own folder")
    return module.write_episodes(episodes, folder, first_index=first_index)


def _module(format: str) -> _Format:
    if format not in FORMATS:
        raise ValueError(f"unknown dataset format {format!r}; choose one of {sorted(FORMATS)}")
    return FORMATS[format]


def _listing(folder: Path) -> list[Path]:
    # Hidden files include the writers' `.partial-*.tmp` files and bookkeeping such as `.progress.json`.
    return sorted(path for path in folder.iterdir()
                  if path.is_file() and path.suffix in DATA_SUFFIXES and not path.name.startswith("."))


def _data_files(path: Path) -> list[Path]:
    if not path.exists():
        raise DatasetError(path, "does not exist",
                           "check data.source.path.root and the other keys under data.source.path in the config")
    if path.is_file():
        return [path]
    files = _listing(path)
    if not files:
        raise DatasetError(path, f"holds no {', '.join('*' + suffix for suffix in DATA_SUFFIXES)} files",
                           "point at the folder that holds the episode files, e.g. <env>/<quality>/84px or <root>/<game>")
    return files


def _format_of(file: Path) -> str:
    for name, module in FORMATS.items():
        if module.owns(file):
            return name
    raise DatasetError(file, "is not named like a file of a known format", f"expected {_LAYOUTS}")


def _single_format(path: Path, files: list[Path]) -> str:
    examples: dict[str, Path] = {}
    for file in files:
        examples.setdefault(_format_of(file), file)
    if len(examples) > 1:
        mixed = ", ".join(f"{name} (e.g. {file.name})" for name, file in examples.items())
        raise DatasetError(path, f"mixes formats: {mixed}", "keep one format per folder")
    return next(iter(examples))
