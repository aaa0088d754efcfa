"""V-D4RL's 64 px DreamerV2-style episodes: one `{YYYYmmddTHHMMSS}-{id}-{length}.npz` file per episode.

Keys: `image` (L, H, W, 3) uint8 (channels last), `action` (L, A), `reward`, `discount`, `is_first`, `is_last`
and optionally `is_terminal` (L,); other keys (proprio `height`, `velocity`, ...) are ignored. As in DreamerV2's
loader, a missing `is_terminal` means `discount == 0`; a present one must agree with it, because the Episode
record keeps terminality only in `discount`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path

import numpy as np

from synthvis.core.episode import DatasetError, Episode
from synthvis.datamodules.formats._common import (
    FIX_INCONSISTENT,
    as_continuous_actions,
    as_flags,
    as_float,
    as_frames,
    atomic_file,
    check_lengths,
    check_name_length,
    commit,
    load_arrays,
    next_index,
    parse_name,
    writable_rows,
)

KEYS = ("image", "action", "reward", "discount", "is_first", "is_last")
LAYOUT = "{YYYYmmddTHHMMSS}-{hex id}-{length}.npz"
# Our writer's ids start with a 16-hex-digit episode index (the rest is random), so names sort in write order.
_NAME = re.compile(r"^\d{8}T\d{6}-(?:(?P<index>[0-9a-f]{16})[0-9a-f]{16}|[0-9a-fA-F]+)-(?P<length>\d+)\.npz$")


def owns(path: Path) -> bool:
    """Whether `path` is named like a V-D4RL 64 px episode file."""
    return _NAME.match(path.name) is not None


def read_episodes(path: Path) -> Iterator[Episode]:
    """Yield the single episode of one file, with frames converted to channels-first."""
    named_length = int(parse_name(path, _NAME, LAYOUT)["length"])
    arrays = load_arrays(path, KEYS, optional=("is_terminal",))
    length = check_lengths(path, {key: array.shape for key, array in arrays.items()})
    check_name_length(path, named_length, length)
    discount = as_float(path, "discount", arrays["discount"])
    for key, row in (("is_first", 0), ("is_last", length - 1)):
        flags = as_flags(path, key, arrays[key])
        if flags.sum() != 1 or not flags[row]:
            raise DatasetError(path, f"'{key}' is set at rows {np.flatnonzero(flags)[:5].tolist()}, not only at row "
                               f"{row}", f"a file holds exactly one episode; {FIX_INCONSISTENT}")
    if "is_terminal" in arrays:
        disagree = np.flatnonzero(as_flags(path, "is_terminal", arrays["is_terminal"]) != (discount == 0))
        if disagree.size:
            raise DatasetError(path, f"'is_terminal' disagrees with discount == 0 at rows {disagree[:5].tolist()}",
                               FIX_INCONSISTENT)
    yield Episode(
        frames=as_frames(path, "image", arrays["image"], channels_last=True),
        action=as_continuous_actions(path, "action", arrays["action"]),
        reward=as_float(path, "reward", arrays["reward"]),
        discount=discount,
    )


def write_episodes(episodes: Iterable[Episode], folder: Path, first_index: int | None = None) -> list[Path]:
    """Write each continuous episode to its own file (np.savez_compressed, channels-last images).

    The id is the episode index (from `first_index`, by default one past the largest in `folder`) in 16 hex
    digits plus 16 random ones, so it stays unique and sorted names keep the write order.
    """
    start = next_index(folder, _NAME, base=16) if first_index is None else first_index
    written = []
    for offset, episode in enumerate(episodes):
        rows = writable_rows(folder, offset, episode, discrete=False)
        length = len(episode)
        is_first, is_last = np.zeros(length, dtype=bool), np.zeros(length, dtype=bool)
        is_first[0] = is_last[-1] = True
        name = f"{datetime.now():%Y%m%dT%H%M%S}-{start + offset:016x}{uuid.uuid4().hex[:16]}-{length}.npz"
        with atomic_file(folder) as temp:
            with open(temp, "wb") as handle:
                np.savez_compressed(handle, image=rows["frames"].transpose(0, 2, 3, 1), action=rows["action"],
                                    reward=rows["reward"], discount=rows["discount"], is_first=is_first,
                                    is_last=is_last, is_terminal=rows["discount"] == 0)
            written.append(commit(temp, name))
    return written
