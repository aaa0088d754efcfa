"""The same environment state rendered clean and under a visual shift: the frames of the paired latent divergence.

dm_control: a physics state (qpos, qvel, act) is set, `mj_forward` recomputes every pose a physics step would
have left, and the env's distractions are re-applied with `on_reset(physics, env.episode)` before the frame is
rendered. A draw is a function of the distraction's seed and the episode alone, so this puts back exactly the
distraction the env showed that episode; a dynamic distraction (a moving camera, drifting colours, a playing
background) is shown at its episode-start point, the frame `reset` rendered. Rendering leaves the physics state
as it was set (only the camera pose, which is not part of the state, is overwritten).

Procgen: a game state (`callmethod("get_state")`) carries the env's visual options, so setting a clean state in an
env made with a visual variant draws it clean again. procgen's Game::serialize (openai/procgen,
procgen/src/game.cpp) writes the version, the game name, then the options, the visual ones first; deserialize
reads them back and drawing reads them at draw time. So the clean state gets the variant env's own visual option
words and is set there: the same game state drawn with the variant's options. (Replaying the level's actions in a
variant env gives the same frames where the variant leaves the game alone, but restricted themes change level
generation in some games, bigfish, bossfight and fruitbot among them, so the replayed state is another one there.) Generated
assets are the exception: procgen refuses to serialize such a game (basic-abstract-game.cpp asserts), and they
change level generation too.
"""

from __future__ import annotations

import struct

import numpy as np

from synthvis.envs.dmc import DMCPixelEnv
from synthvis.envs.procgen import (
    DISTRIBUTION_MODE,
    VISUAL_VARIANTS,
    ProcgenPixelEnv,
    ProcgenStep,
    import_procgen,
)

# Game::serialize: int SERIALIZE_VERSION (0), the game name (int length + bytes), then paint_vel_info,
# use_generated_assets, use_monochrome_assets, restrict_themes, use_backgrounds, center_agent as ints.
PROCGEN_STATE_VERSION = 0
VISUAL_OPTION_WORDS = 6
# Variants with no same-state pair, and why.
UNPAIRED_VARIANTS = {
    "generated_assets": "procgen cannot serialize a game with generated assets, which also change level generation",
}


def frame_histories(steps: np.ndarray, frame_stack: int) -> np.ndarray:
    """(N, frame_stack) indices of the frames behind observation t of an episode (DMCPixelEnv repeats frame 0)."""
    offsets = np.arange(1 - frame_stack, 1)
    return np.maximum(np.asarray(steps)[:, None] + offsets, 0)


def render_state(env: DMCPixelEnv, state: np.ndarray) -> np.ndarray:
    """The (3, H, W) frame `env` shows at physics `state`, its distractions re-applied for its current episode."""
    physics = env.physics
    physics.set_state(state)
    physics.forward()
    for distraction in env.distractions:
        distraction.on_reset(physics, env.episode)
    return env.render()


def render_observations(env: DMCPixelEnv, states: np.ndarray, histories: np.ndarray) -> np.ndarray:
    """Stacked observations (N, 3 * frame_stack, H, W) of `histories` (N, frame_stack) rows of `states`."""
    needed, inverse = np.unique(histories, return_inverse=True)
    frames = np.stack([render_state(env, states[i]) for i in needed])
    return frames[inverse.reshape(histories.shape)].reshape(len(histories), -1, *frames.shape[2:])


class StateRecordingEnv:
    """A DMCPixelEnv for `rollout_dmc` that keeps the physics state behind every frame it renders."""

    def __init__(self, env: DMCPixelEnv) -> None:
        self.env, self.states = env, []

    def reset(self):
        """Reset the env; its first frame's state starts the record."""
        step = self.env.reset()
        self.states = [self.env.physics.get_state()]
        return step

    def step(self, action: np.ndarray):
        """Step the env and record the state of the frame it returns."""
        step = self.env.step(action)
        self.states.append(self.env.physics.get_state())
        return step


class ActionRecordingEnv:
    """A ProcgenPixelEnv for `rollout_procgen` that keeps its start levels and every action and done flag."""

    def __init__(self, env: ProcgenPixelEnv) -> None:
        if not env.at_episode_start.all():
            raise ValueError("record a Procgen env from its construction, when every episode starts")
        self.env, self.num_envs = env, env.num_envs
        self.levels = env.observe()[1]
        self.actions: list[np.ndarray] = []
        self.dones: list[np.ndarray] = []

    def observe(self) -> tuple[np.ndarray, np.ndarray]:
        """The env's current frames and level seeds."""
        return self.env.observe()

    def step(self, actions: np.ndarray) -> ProcgenStep:
        """Step the env and record the actions and done flags."""
        step = self.env.step(actions)
        self.actions.append(np.array(actions))
        self.dones.append(step.done.copy())
        return step

    def episodes(self) -> list[tuple[int, np.ndarray]]:
        """(level seed, actions) of each env's first complete episode; its frames are the first len(actions)."""
        dones = np.array(self.dones).reshape(-1, self.num_envs)
        if not dones.any(axis=0).all():
            raise ValueError("an env has not finished its first episode")
        lengths = dones.argmax(axis=0) + 1
        actions = np.array(self.actions).reshape(-1, self.num_envs)
        return [(int(level), actions[:length, i]) for i, (level, length) in enumerate(zip(self.levels, lengths))]


def procgen_level_env(game: str, level: int, variant: str | None = None):
    """A one-environment gym3 Procgen env that plays only `level` (easy mode), drawn with a visual variant."""
    return import_procgen().ProcgenGym3Env(num=1, env_name=game, start_level=level, num_levels=1,
                                            distribution_mode=DISTRIBUTION_MODE, **VISUAL_VARIANTS.get(variant, {}))


def replay_level(game: str, level: int, actions: np.ndarray, steps: np.ndarray) -> tuple[np.ndarray, list[bytes]]:
    """Frames (k, 3, 64, 64) and game states of `level` after actions[:t], for each t of sorted `steps`."""
    env = procgen_level_env(game, level)
    frames, states, wanted = [], [], set(steps.tolist())
    try:
        for t in range(int(steps[-1]) + 1):
            if t:
                env.act(np.array([actions[t - 1]], dtype=np.int32))
            if t in wanted:
                frames.append(env.observe()[1]["rgb"][0].transpose(2, 0, 1))
                states.append(env.callmethod("get_state")[0])
    finally:
        env.close()
    return np.ascontiguousarray(np.stack(frames)), states


def _option_span(state: bytes, game: str) -> slice:
    """Where the visual option words lie in a serialized `game` state (module docstring)."""
    start = 8 + len(game)
    version, name_length = struct.unpack_from("<2i", state)
    if version != PROCGEN_STATE_VERSION or state[8:start] != game.encode() or name_length != len(game):
        raise ValueError(f"not a procgen {game} state of serialization version {PROCGEN_STATE_VERSION}")
    return slice(start, start + 4 * VISUAL_OPTION_WORDS)


def render_with_variant(game: str, states: list[bytes], variant: str) -> np.ndarray:
    """Frames (N, 3, 64, 64) of clean game `states` drawn with a visual variant's options."""
    if variant in UNPAIRED_VARIANTS:
        raise ValueError(f"variant {variant!r} has no same-state pair: {UNPAIRED_VARIANTS[variant]}")
    env = procgen_level_env(game, 0, variant)
    try:
        own = env.callmethod("get_state")[0]
        options = own[_option_span(own, game)]
        frames = []
        for state in states:
            span = _option_span(state, game)
            env.callmethod("set_state", [state[:span.start] + options + state[span.stop:]])
            frames.append(env.observe()[1]["rgb"][0].transpose(2, 0, 1))
    finally:
        env.close()
    return np.ascontiguousarray(np.stack(frames))
