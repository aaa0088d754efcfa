"""gen_dgrl's offline Procgen episodes: `{timestamp}_{index}_{length}_{level_seed}_{return:.2f}.npz` (or `.npy`).

Keys: `observations` (T+1, 3, 64, 64), `actions` (T, 1) int in Procgen's action set [0, 15), `rewards` (T, 1),
`dones` (T,). Published files hold float32 observations in [0, 255]; our writer stores uint8 (smaller, and
gen_dgrl's loader casts to uint8 anyway). `observations[T]` is the *next* episode's first frame (vector-env
auto-reset); it stays as the last row, whose discount is 0 when the episode ended with a done. The torchrl mirror
ships pickled-dict `.npy` files with the same keys. The return in the name is not checked: gen_dgrl's README
calls it an average over 10 episodes while its code writes the episode's own return, so it is only metadata here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path

import numpy as np

from synthvis.core.episode import DatasetError, Episode
from synthvis.datamodules.formats._common import (
    FIX_INCONSISTENT,
    as_discrete_actions,
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

KEYS = ("observations", "actions", "rewards", "dones")
LAYOUT = "{timestamp}_{index}_{length}_{level_seed}_{return:.2f}.npz"
_NAME = re.compile(r"^(?P<stamp>.+)_(?P<index>\d+)_(?P<length>\d+)_(?P<seed>-?\d+)_(?P<ret>-?\d+(?:\.\d+)?)\.(?:npz|npy)$")
NO_SEED = -1  # what gen_dgrl's storage writes when the env reported no level seed


def owns(path: Path) -> bool:
    """Whether `path` is named like a gen_dgrl episode file."""
    return _NAME.match(path.name) is not None


def read_episodes(path: Path) -> Iterator[Episode]:
    """Yield the single episode of one file in the Episode row convention (row t: o_t, a_{t-1}, r_{t-1})."""
    name = parse_name(path, _NAME, LAYOUT)
    arrays = load_arrays(path, KEYS)
    steps = check_lengths(path, {key: arrays[key].shape for key in ("actions", "rewards", "dones")})
    observations = arrays["observations"]
    if observations.ndim == 0 or len(observations) != steps + 1:
        raise DatasetError(path, f"'observations' has shape {observations.shape}; expected {steps} + 1 rows (the "
                           f"reset frame and one per step)", FIX_INCONSISTENT)
    check_name_length(path, int(name["length"]), steps)
    dones = as_flags(path, "dones", arrays["dones"])
    if dones[:-1].any():
        raise DatasetError(path, f"'dones' is set before the last step (at {np.flatnonzero(dones[:-1])[:5].tolist()})",
                           f"a file holds exactly one episode; {FIX_INCONSISTENT}")
    seed = int(name["seed"])
    yield Episode(
        frames=as_frames(path, "observations", observations),
        action=_after_reset_row(0, as_discrete_actions(path, "actions", arrays["actions"])),
        reward=_after_reset_row(0, as_float(path, "rewards", arrays["rewards"])),
        discount=_after_reset_row(1, np.where(dones, 0, 1).astype(np.float32)),
        level_seed=None if seed == NO_SEED else seed,
    )


def _after_reset_row(value: float, steps: np.ndarray) -> np.ndarray:
    # Row 0 is the reset frame: no action or reward produced it, and it is never terminal.
    return np.concatenate((np.full(1, value, dtype=steps.dtype), steps))


def write_episodes(episodes: Iterable[Episode], folder: Path, first_index: int | None = None) -> list[Path]:
    """Write each discrete episode to its own file (np.savez_compressed, uint8 observations).

    Episode indices start at `first_index`, by default one past the largest in `folder`; they are zero-padded
    to 6 digits so sorted names keep the write order (gen_dgrl parses every field with int()/float()).
    """
    start = next_index(folder, _NAME) if first_index is None else first_index
    written = []
    for offset, episode in enumerate(episodes):
        rows = writable_rows(folder, offset, episode, discrete=True)
        # gen_dgrl stores per-step arrays only: row 0 must be a plain reset row and dones are 0/1.
        if rows["action"][0] != 0 or rows["reward"][0] != 0 or rows["discount"][0] != 1:
            raise DatasetError(folder, f"episode {offset} row 0 has action {rows['action'][0]}, reward "
                               f"{rows['reward'][0]}, discount {rows['discount'][0]}; gen_dgrl has no slot for them",
                               "row 0 must be the reset row: action 0, reward 0, discount 1")
        if not np.isin(rows["discount"], (0, 1)).all():
            raise DatasetError(folder, f"episode {offset} has discounts other than 0/1; gen_dgrl stores only dones",
                               "use discount 0 at the terminal row and 1 elsewhere")
        seed = NO_SEED if episode.level_seed is None else episode.level_seed
        steps = len(episode) - 1
        total = rows["reward"][1:].sum()
        name = f"{datetime.now():%Y%m%dT%H%M%S}_{start + offset:06d}_{steps}_{seed}_{total:.2f}.npz"
        with atomic_file(folder) as temp:
            with open(temp, "wb") as handle:
                np.savez_compressed(handle, observations=rows["frames"], actions=rows["action"][1:, None],
                                    rewards=rows["reward"][1:, None], dones=rows["discount"][1:] == 0)
            written.append(commit(temp, name))
    return written
