"""The in-memory episode record every on-disk format is read into and written from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Procgen's fixed action set: 9 joystick directions (incl. no-op) and 6 buttons, the same for every game. Defined
# here, below both synthvis.envs.procgen and the dataset readers, so the readers can check actions too.
NUM_DISCRETE_ACTIONS = 15


class DatasetError(ValueError):
    """A dataset file or folder is missing, empty, corrupt or inconsistent; the message names the file and the fix."""

    def __init__(self, path: str | Path, problem: str, fix: str = "") -> None:
        self.path = Path(path)
        message = f"{self.path}: {problem}"
        if fix:
            message += f" ({fix})"
        super().__init__(message)


@dataclass
class Episode:
    """One episode in V-D4RL's row convention: row t holds frame o_t and the action/reward that produced it.

    Row 0 is the reset frame with a zero action and reward 0. A discrete-action episode (Procgen) stores
    integer actions of shape (L,); its row 0 action is 0 and unused. `discount[t]` is 0 where o_t is terminal.
    """

    frames: np.ndarray  # (L, 3, H, W) uint8
    action: np.ndarray  # (L, A) float32, or (L,) int64 for discrete actions
    reward: np.ndarray  # (L,) float32
    discount: np.ndarray  # (L,) float32
    level_seed: int | None = None  # Procgen level, when known

    def __post_init__(self) -> None:
        length = len(self.frames)
        for name in ("action", "reward", "discount"):
            if len(getattr(self, name)) != length:
                raise ValueError(
                    f"episode arrays disagree in length: frames has {length} rows, {name} has "
                    f"{len(getattr(self, name))}"
                )

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def num_transitions(self) -> int:
        """Transitions in the episode (rows after the reset row)."""
        return len(self.frames) - 1

    @property
    def episode_return(self) -> float:
        """Sum of rewards (row 0 carries none)."""
        return float(self.reward[1:].sum())

    @property
    def terminal(self) -> bool:
        """Whether the episode ended in a terminal state (not a time limit)."""
        return bool(self.discount[-1] == 0.0)

    @property
    def discrete(self) -> bool:
        """Whether actions are integer indices (Procgen)."""
        return self.action.ndim == 1
