"""Checks, array conversions, atomic writes and file naming shared by the format readers and writers."""

from __future__ import annotations

import os
import pickle
import re
import uuid
import zipfile
import zlib
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from synthvis.core.episode import NUM_DISCRETE_ACTIONS, DatasetError, Episode

# What numpy, zipfile, zlib and pickle raise on a truncated or corrupt file.
UNREADABLE = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, pickle.UnpicklingError)
FIX_CORRUPT = "the file is truncated or corrupt: download or generate it again"
FIX_INCONSISTENT = "the file was written inconsistently: re-create it from the source data"


def check_keys(path: Path, present: Iterable[str], required: Collection[str]) -> None:
    """Raise unless every required key is present."""
    present = set(present)
    missing = [key for key in required if key not in present]
    if missing:
        raise DatasetError(path, f"missing key(s) {missing}; it holds {sorted(present)}",
                           f"this format needs the keys {list(required)}")


def load_arrays(path: Path, required: Collection[str], optional: Collection[str] = ()) -> dict[str, np.ndarray]:
    """The required (and present optional) arrays of an .npz archive or a pickled-dict .npy file."""
    pickled = path.suffix == ".npy"
    try:
        # gen_dgrl's published .npy trajectories are pickled dicts; unpickling runs code, so load trusted data only.
        content = np.load(path, allow_pickle=pickled)
    except UNREADABLE as err:
        raise DatasetError(path, f"cannot be read ({type(err).__name__}: {err})", FIX_CORRUPT) from err
    if isinstance(content, np.lib.npyio.NpzFile):
        with content:
            return _read_members(path, content, required, optional)
    if pickled and isinstance(content, np.ndarray) and content.dtype == object and content.ndim == 0:
        content = content.item()
    if not isinstance(content, dict):
        kind = "a dict of arrays" if pickled else "an .npz archive"
        raise DatasetError(path, f"holds a {type(content).__name__}, not {kind}", FIX_CORRUPT)
    return _read_members(path, content, required, optional)


def _read_members(path: Path, content: Mapping[str, object], required: Collection[str],
                  optional: Collection[str]) -> dict[str, np.ndarray]:
    keys = list(content.keys())
    check_keys(path, keys, required)
    wanted = [*required, *(key for key in optional if key in keys)]
    try:
        # An archive's members are decompressed here, so a damaged one fails here rather than in np.load.
        return {key: np.asarray(content[key]) for key in wanted}
    except UNREADABLE as err:
        raise DatasetError(path, f"cannot be read ({type(err).__name__}: {err})", FIX_CORRUPT) from err


def check_lengths(path: Path, shapes: Mapping[str, tuple[int, ...]]) -> int:
    """Raise unless every named array has the same (non-zero) number of rows; return it."""
    scalars = [key for key, shape in shapes.items() if len(shape) == 0]
    if scalars:
        raise DatasetError(path, f"{scalars} hold a scalar, not one value per row", FIX_INCONSISTENT)
    lengths = {key: shape[0] for key, shape in shapes.items()}
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"'{key}' has {rows}" for key, rows in lengths.items())
        raise DatasetError(path, f"arrays disagree in length: {listed} rows", FIX_INCONSISTENT)
    length = next(iter(lengths.values()))
    if length == 0:
        raise DatasetError(path, "holds no rows", FIX_CORRUPT)
    return length


def check_name_length(path: Path, named: int, actual: int) -> None:
    """Raise when the episode length written in the file name disagrees with the arrays."""
    if named != actual:
        raise DatasetError(path, f"the file name says length {named} but the arrays hold {actual}",
                           "the file was renamed or truncated: re-create it or fix the length in its name")


def parse_name(path: Path, pattern: re.Pattern[str], layout: str) -> re.Match[str]:
    """Match a file name against its format's naming pattern."""
    match = pattern.match(path.name)
    if match is None:
        raise DatasetError(path, f"the file name does not follow {layout}", f"rename it to {layout}")
    return match


def as_frames(path: Path, key: str, array: np.ndarray, channels_last: bool = False) -> np.ndarray:
    """Square 3-channel frames, (L, 3, H, W) or (L, H, W, 3), as contiguous uint8 (L, 3, H, W)."""
    chw = array.transpose(0, 3, 1, 2) if channels_last and array.ndim == 4 else array
    if chw.ndim != 4 or chw.shape[1] != 3 or chw.shape[2] != chw.shape[3]:
        layout = "(L, H, W, 3)" if channels_last else "(L, 3, H, W)"
        raise DatasetError(path, f"'{key}' has shape {array.shape}; expected square RGB frames {layout} with H == W",
                           "images must be single square RGB frames in this layout")
    if chw.dtype == np.uint8:
        return np.ascontiguousarray(chw)
    # Float frames (gen_dgrl stores 0-255 in float32) are fine as long as casting loses nothing.
    if chw.dtype.kind not in "iuf":
        raise DatasetError(path, f"'{key}' has dtype {chw.dtype}", "images must be uint8 (or integral values 0-255)")
    whole = np.isfinite(chw).all() and (chw == np.round(chw)).all()
    if chw.size and not (whole and chw.min() >= 0 and chw.max() <= 255):
        raise DatasetError(path, f"'{key}' has dtype {chw.dtype} with values that are not whole numbers in [0, 255]",
                           "images must be uint8 (or integral values 0-255); [0, 1]-scaled images are not accepted")
    return np.ascontiguousarray(chw.astype(np.uint8))


def as_vector(path: Path, key: str, array: np.ndarray, kinds: str) -> np.ndarray:
    """A per-row array of shape (L,) or (L, 1) with a dtype kind in `kinds`, as shape (L,)."""
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise DatasetError(path, f"'{key}' has shape {array.shape}; expected (L,) or (L, 1)", FIX_INCONSISTENT)
    if array.dtype.kind not in kinds:
        raise DatasetError(path, f"'{key}' has dtype {array.dtype}", f"'{key}' must have a dtype of kind {kinds!r}")
    return array


def as_float(path: Path, key: str, array: np.ndarray) -> np.ndarray:
    """Finite per-row numbers (rewards, discounts) as float32 (L,)."""
    array = as_vector(path, key, array, "iuf")
    if not np.isfinite(array).all():
        raise DatasetError(path, f"'{key}' holds NaN or infinite values", FIX_CORRUPT)
    return array.astype(np.float32)


def as_flags(path: Path, key: str, array: np.ndarray) -> np.ndarray:
    """Per-row booleans (stored as bool or as 0/1 numbers) as bool (L,)."""
    array = as_vector(path, key, array, "biuf")
    if not np.isin(array, (0, 1)).all():
        raise DatasetError(path, f"'{key}' holds values other than 0/1", FIX_INCONSISTENT)
    return array.astype(bool)


def as_continuous_actions(path: Path, key: str, array: np.ndarray) -> np.ndarray:
    """Finite float actions (L, A) as float32."""
    if array.ndim != 2 or array.dtype.kind != "f":
        raise DatasetError(path, f"'{key}' has shape {array.shape} and dtype {array.dtype}",
                           "continuous actions must be floats of shape (L, A)")
    if not np.isfinite(array).all():
        raise DatasetError(path, f"'{key}' holds NaN or infinite values", FIX_CORRUPT)
    return array.astype(np.float32)


def as_discrete_actions(path: Path, key: str, array: np.ndarray) -> np.ndarray:
    """Integer action indices in Procgen's action set [0, NUM_DISCRETE_ACTIONS), (L,) or (L, 1), as int64 (L,)."""
    array = as_vector(path, key, array, "iu")
    outside = np.flatnonzero((array < 0) | (array >= NUM_DISCRETE_ACTIONS))
    if outside.size:
        first = int(outside[0])
        raise DatasetError(path, f"'{key}' holds action {int(array[first])} at row {first} ({outside.size} row(s) "
                           f"in all), outside Procgen's action set: valid actions are 0..{NUM_DISCRETE_ACTIONS - 1}, "
                           f"i.e. [0, {NUM_DISCRETE_ACTIONS})",
                           "the file does not hold Procgen actions, or is corrupt: re-create it from the source data")
    return array.astype(np.int64)


def writable_rows(folder: Path, index: int, episode: Episode, discrete: bool) -> dict[str, np.ndarray]:
    """Validate an episode about to be written and return its arrays in the dtypes the formats store."""
    where = f"episode {index}"
    if episode.discrete != discrete:
        have, need = ("discrete", "continuous") if episode.discrete else ("continuous", "discrete")
        raise DatasetError(folder, f"{where} has {have} actions but this format stores {need} ones",
                           "write discrete (Procgen) episodes as gen_dgrl and continuous (DMC) ones as vd4rl_*")
    if len(episode) < 2:
        raise DatasetError(folder, f"{where} has {len(episode)} row; an episode needs the reset row and a step",
                           "drop empty episodes before writing")
    to_actions = as_discrete_actions if discrete else as_continuous_actions
    return {
        "frames": as_frames(folder, f"{where} frames", episode.frames),
        "action": to_actions(folder, f"{where} action", episode.action),
        "reward": as_float(folder, f"{where} reward", episode.reward),
        "discount": as_float(folder, f"{where} discount", episode.discount),
    }


def next_index(folder: Path, pattern: re.Pattern[str], base: int = 10) -> int:
    """One past the largest index (the pattern's 'index' group, in `base`) among the folder's file names."""
    found = [int(match["index"], base) for path in folder.iterdir()
             if (match := pattern.match(path.name)) and match["index"] is not None]
    return max(found, default=-1) + 1


@contextmanager
def atomic_file(folder: Path) -> Iterator[Path]:
    """A hidden temporary file in `folder`, deleted on exit unless `commit` has given it its final name.

    A killed run leaves at most a `.partial-*.tmp` file, which the readers ignore, never a partial file under a
    final name.
    """
    temp = folder / f".partial-{uuid.uuid4().hex}.tmp"
    temp.touch(exist_ok=False)
    try:
        yield temp
    finally:
        temp.unlink(missing_ok=True)


def commit(temp: Path, name: str) -> Path:
    """Flush a finished temporary file to disk and move it to its final `name` in the same folder."""
    with open(temp, "rb") as handle:
        os.fsync(handle.fileno())
    final = temp.with_name(name)
    os.replace(temp, final)
    return final
