"""Procgen games on gen_dgrl's level splits, visual-shift test variants, and an episode collector.

`procgen` is imported lazily (inside `ProcgenPixelEnv`), so importing this module costs nothing beyond numpy.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import NamedTuple

import numpy as np

from synthvis.core.episode import NUM_DISCRETE_ACTIONS, Episode

PROCGEN_GAMES: tuple[str, ...] = (
    "bigfish",
    "bossfight",
    "caveflyer",
    "chaser",
    "climber",
    "coinrun",
    "dodgeball",
    "fruitbot",
    "heist",
    "jumper",
    "leaper",
    "maze",
    "miner",
    "ninja",
    "plunder",
    "starpilot",
)

NUM_ACTIONS = NUM_DISCRETE_ACTIONS  # Procgen's full action set, the same for every game
FRAME_SHAPE = (3, 64, 64)
DISTRIBUTION_MODE = "easy"


@dataclass(frozen=True)
class LevelSplit:
    """A contiguous range of procgen levels, as `ProcgenEnv`'s (start_level, num_levels)."""

    start_level: int
    num_levels: int  # 0 = the full level distribution; procgen then ignores start_level


# gen_dgrl's protocol (offline/train_offline_agent.py, test_offline_agent.py): train on levels 0-199, early-stop
# on 200-249, test on num_levels=0. With num_levels=0 procgen draws level seeds uniformly from [0, 2^31) and
# ignores start_level; 250 is kept only to match gen_dgrl's arguments.
SPLITS: dict[str, LevelSplit] = {
    "train": LevelSplit(start_level=0, num_levels=200),
    "validation": LevelSplit(start_level=200, num_levels=50),
    "test": LevelSplit(start_level=250, num_levels=0),
}

# Zero-shot visual-shift test variants: procgen constructor options that change how levels are drawn.
# Measured with procgen-mirror 0.10.7 (same seed, random actions, 4 envs), fraction of pixels changed:
# - no_backgrounds: black background in every game (4-99% of pixels); dynamics unchanged.
# - monochrome: every sprite a flat colour (0.4-99%; little in bigfish/starpilot, whose frames are mostly
#   background); dynamics unchanged.
# - restricted_themes: one theme per asset kind; changes only games/levels whose drawn theme differs from the
#   first (bossfight, climber, jumper, ninja and a few more; none in bigfish, caveflyer, chaser, heist, maze,
#   miner, plunder, starpilot); also shifts level generation slightly in some games (bigfish, bossfight).
# - generated_assets: procedurally generated sprites and backgrounds in every game (95-100%); it consumes the
#   level RNG differently, so layouts and dynamics differ too: a visual *and* layout shift.
# - uncentered: camera not centred on the agent; changes only the scrolling games (caveflyer, climber,
#   coinrun, fruitbot, jumper, ninja); dynamics unchanged.
VISUAL_VARIANTS: dict[str, dict[str, bool]] = {
    "no_backgrounds": {"use_backgrounds": False},
    "monochrome": {"use_monochrome_assets": True},
    "restricted_themes": {"restrict_themes": True},
    "generated_assets": {"use_generated_assets": True},
    "uncentered": {"center_agent": False},
}

Policy = Callable[[np.ndarray], np.ndarray]


def _check_name(kind: str, name: str, valid: Collection[str]) -> None:
    if name not in valid:
        raise ValueError(f"unknown procgen {kind} {name!r}; choose one of {', '.join(valid)}")


def import_procgen() -> ModuleType:
    """The procgen module, imported quietly."""
    # Importing procgen imports gym 0.26, which prints an "unmaintained" notice to stderr and leaks a
    # ResourceWarning; neither is actionable here. Import errors still propagate.
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        import procgen

    return procgen


class ProcgenStep(NamedTuple):
    """What one vector step returns; row i is environment i."""

    obs: np.ndarray  # (n, 3, 64, 64) uint8; at a done, already the next episode's first frame
    reward: np.ndarray  # (n,) float32
    done: np.ndarray  # (n,) bool; death, success and time limit alike
    level_seed: np.ndarray  # (n,) int64, the level this step's reward/done belong to


class ProcgenPixelEnv:
    """`procgen.ProcgenEnv` on a gen_dgrl split (easy mode), with channels-first uint8 frames.

    Auto-reset: procgen never shows a terminal frame. On the step where `done[i]` is True, `obs[i]` is already
    the first frame of environment i's next episode, `reward[i]` is the finished episode's last reward and
    `level_seed[i]` the finished level (`info['prev_level_seed']`). There is no explicit reset: every
    environment starts at a level's first frame on construction. The same (game, split, num_envs, seed,
    variant) and the same actions reproduce the same frames.
    """

    num_actions = NUM_ACTIONS

    def __init__(
        self, game: str, split: str = "train", num_envs: int = 1, seed: int = 0, variant: str | None = None
    ) -> None:
        _check_name("game", game, PROCGEN_GAMES)
        _check_name("split", split, SPLITS)
        if variant is not None:
            _check_name("visual variant", variant, VISUAL_VARIANTS)
        if num_envs <= 0:
            raise ValueError(f"num_envs must be positive, got {num_envs}")
        procgen = import_procgen()
        self.game, self.split, self.variant = game, split, variant
        self.num_envs = num_envs
        levels = SPLITS[split]
        self._env = procgen.ProcgenEnv(
            num_envs=num_envs,
            env_name=game,
            num_levels=levels.num_levels,
            start_level=levels.start_level,
            distribution_mode=DISTRIBUTION_MODE,
            rand_seed=seed,
            **VISUAL_VARIANTS.get(variant, {}),
        )
        # ToBaselinesVecEnv.reset() only returns the current observation; it is the construction-time frame here.
        self._obs = self._to_chw(self._env.reset()["rgb"])
        self._level_seed = np.array([info["level_seed"] for info in self._env.env.get_info()], dtype=np.int64)
        self._at_start = np.ones(num_envs, dtype=bool)

    @staticmethod
    def _to_chw(frames: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(frames.transpose(0, 3, 1, 2))

    def observe(self) -> tuple[np.ndarray, np.ndarray]:
        """The current frames (n, 3, 64, 64) uint8 and the level seed of each environment's current episode."""
        return self._obs, self._level_seed.copy()

    @property
    def at_episode_start(self) -> np.ndarray:
        """(n,) bool: whether each environment's current frame is the first frame of an episode."""
        return self._at_start.copy()

    def step(self, actions: np.ndarray) -> ProcgenStep:
        """Apply one action per environment (ints in [0, 15)) and return the auto-reset step."""
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs,) or not np.issubdtype(actions.dtype, np.integer):
            raise ValueError(
                f"actions must be {self.num_envs} integers, got shape {actions.shape} dtype {actions.dtype}"
            )
        if actions.min() < 0 or actions.max() >= NUM_ACTIONS:
            raise ValueError(f"actions must lie in [0, {NUM_ACTIONS}), got {actions.min()}..{actions.max()}")
        obs, reward, done, infos = self._env.step(actions)
        self._obs = self._to_chw(obs["rgb"])
        self._level_seed = np.array([info["level_seed"] for info in infos], dtype=np.int64)
        step_seed = np.array(
            [info["prev_level_seed"] if d else info["level_seed"] for info, d in zip(infos, done)],
            dtype=np.int64,
        )
        self._at_start = done.astype(bool)
        return ProcgenStep(self._obs, reward.astype(np.float32), self._at_start.copy(), step_seed)

    def close(self) -> None:
        """Release the native environments."""
        self._env.env.close()


def collect_episodes(env: ProcgenPixelEnv, policy: Policy, num_transitions: int) -> Iterator[Episode]:
    """Step `env` with a batch policy and yield complete episodes until >= num_transitions have been yielded.

    Episodes follow the `Episode` row convention with gen_dgrl's frame semantics: rows 0..T-1 are the frames
    o_0..o_{T-1}, and row T holds the observation returned with the done, which (procgen auto-resets) is the
    *next* episode's first frame, exactly what gen_dgrl stores as observations[T]. Its discount is 0, so it is
    never bootstrapped from. Row t >= 1 carries the action a_{t-1} and reward r_t; every done (death, success or
    time limit) ends the episode with discount 0, as gen_dgrl sets done=True for all of them. `level_seed` is
    `info['prev_level_seed']` at the done. Environments that are mid-episode when collection starts are stepped
    but their partial episode is dropped. `policy` maps frames (n, 3, 64, 64) uint8 to actions (n,) int.
    """
    if num_transitions <= 0:
        raise ValueError(f"num_transitions must be positive, got {num_transitions}")
    obs, _ = env.observe()
    # Per environment: the frames/actions/rewards of the episode in progress, or None while skipping a
    # partial episode that started before collection did.
    frames: list[list[np.ndarray] | None] = [
        [frame.copy()] if start else None for frame, start in zip(obs, env.at_episode_start)
    ]
    actions: list[list[int]] = [[0] for _ in range(env.num_envs)]
    rewards: list[list[float]] = [[0.0] for _ in range(env.num_envs)]
    yielded = 0
    while True:
        batch_actions = np.asarray(policy(obs)).astype(np.int64)
        step = env.step(batch_actions)
        for i in range(env.num_envs):
            episode_frames = frames[i]
            if episode_frames is not None:
                episode_frames.append(step.obs[i].copy())
                actions[i].append(int(batch_actions[i]))
                rewards[i].append(float(step.reward[i]))
            if not step.done[i]:
                continue
            if episode_frames is not None:
                discount = np.ones(len(episode_frames), dtype=np.float32)
                discount[-1] = 0.0
                episode = Episode(
                    frames=np.stack(episode_frames),
                    action=np.array(actions[i], dtype=np.int64),
                    reward=np.array(rewards[i], dtype=np.float32),
                    discount=discount,
                    level_seed=int(step.level_seed[i]),
                )
                yield episode
                yielded += episode.num_transitions
                if yielded >= num_transitions:
                    return
            # The done step's frame is also the next episode's reset frame (row 0, action 0, reward 0).
            frames[i] = [step.obs[i].copy()]
            actions[i], rewards[i] = [0], [0.0]
        obs = step.obs
