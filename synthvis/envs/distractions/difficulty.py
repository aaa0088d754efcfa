"""DCS difficulty presets and the fixed / per-episode distraction modes, with explicit seeding."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

# Distracting Control Suite presets: the distraction strength and how many background videos are in play.
DIFFICULTY_SCALE = {"easy": 0.1, "medium": 0.2, "hard": 0.3}
DIFFICULTY_NUM_VIDEOS: dict[str, int | None] = {"easy": 4, "medium": 8, "hard": None}  # None: all videos

DISTRACTION_MODES = ("fixed_easy", "fixed_medium", "fixed_hard", "easy", "medium", "hard")


def vd4rl_seed(difficulty: str) -> int:
    """V-D4RL's seed for a fixed difficulty: `int.from_bytes(f'{difficulty}_0'.encode(), 'little') % 2**31`."""
    return int.from_bytes(f"{difficulty}_0".encode(), "little") % 2**31


@dataclass(frozen=True)
class DistractionMode:
    """A difficulty plus when distractions are redrawn: once per run (`fixed`) or at every episode."""

    difficulty: str
    fixed: bool
    seed: int

    @property
    def name(self) -> str:
        """The mode string this was parsed from, e.g. `fixed_easy`."""
        return f"fixed_{self.difficulty}" if self.fixed else self.difficulty

    @property
    def scale(self) -> float:
        """DCS strength of colour and camera changes for this difficulty."""
        return DIFFICULTY_SCALE[self.difficulty]

    @property
    def num_videos(self) -> int | None:
        """How many leading background videos are in the pool (None: all of them)."""
        return DIFFICULTY_NUM_VIDEOS[self.difficulty]

    def episode_rng(self, episode: int, stream: str) -> np.random.Generator:
        """The random generator that draws episode `episode`'s distraction of kind `stream`.

        A pure function of (seed, episode, stream): fixed modes ignore the episode, so every episode gets the
        distraction drawn for the run; per-episode modes get a new one each episode, unlike V-D4RL's
        unseeded draws, so evaluations are reproducible. The fixed flag is part of the key so that `easy`
        never replays `fixed_easy`'s (training) distraction, and each kind has its own stream so adding a
        kind does not change the others.
        """
        if episode < 0:
            raise ValueError(f"episode must be >= 0, got {episode}")
        episode_key = 0 if self.fixed else episode
        stream_key = zlib.crc32(stream.encode())  # stable across processes, unlike hash()
        return np.random.default_rng([self.seed, int(self.fixed), episode_key, stream_key])


def parse_mode(mode: str, seed: int | None = None) -> DistractionMode:
    """Parse `fixed_easy|fixed_medium|fixed_hard|easy|medium|hard`; `seed=None` takes V-D4RL's seed."""
    if mode not in DISTRACTION_MODES:
        raise ValueError(f"unknown distraction mode {mode!r}; choose one of {', '.join(DISTRACTION_MODES)}")
    fixed = mode.startswith("fixed_")
    difficulty = mode.removeprefix("fixed_")
    if seed is not None and seed < 0:
        raise ValueError(f"distraction seed must be >= 0, got {seed}")
    return DistractionMode(difficulty, fixed, vd4rl_seed(difficulty) if seed is None else seed)
