"""Training-env states sampled during evaluation, rendered again clean and under each test env's visual shift.

`ZeroShotEvaluator.pairing(num_states, seed)` makes a pairing; `evaluate_with_observations(..., pairing=...)` runs
every env's episodes inside `pairing.rollout(name, first_episode, envs)`, and `pairing.observations()` then holds
the pairs. Episode e of the training env gives num_states // E of its frames (one more for the first
num_states % E episodes), drawn without replacement with the seed (seed, e), so the agent's own policy chooses the
states and the seed which of them are kept.

dm_control: the training env's episodes record the physics state behind every frame; after its rollout each env
renders the sampled states (and the frame-stack history before them) itself, and after a test env's rollout each
of its envs, built for the same episode (task seed and distraction draw), renders the same states: the pairs
differ in the distraction alone. Procgen: the training env records its levels and actions; each sampled step is
replayed on its level for the clean frame and game state, which every test env with a visual variant then draws
with its options (envs/paired_render.py). Those are training levels, while the variant env plays unseen ones, so
the pairs measure the variant's look apart from the level shift. Level splits without a variant (unseen levels)
are a level shift with no same-state clean counterpart, and are listed as skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np

from synthvis.envs.dmc import DMCPixelEnv
from synthvis.envs.paired_render import (
    UNPAIRED_VARIANTS,
    ActionRecordingEnv,
    StateRecordingEnv,
    frame_histories,
    render_observations,
    render_with_variant,
    replay_level,
)
from synthvis.envs.procgen import ProcgenPixelEnv
from synthvis.metrics.generalization import TRAIN_ENV


@dataclass
class PairedObservations:
    """The same training-env states observed clean and under each test env's visual shift, row for row."""

    clean: np.ndarray  # (N, C, H, W) uint8
    shifted: dict[str, np.ndarray]  # test env -> (N, C, H, W): row i is clean row i's state, shifted
    skipped: dict[str, str]  # test env -> why it has no pairs


def sampled_steps(length: int, num_states: int, num_episodes: int, episode: int, seed: int) -> np.ndarray:
    """Sorted frame indices of `episode` (of `length` frames) to pair: its share of `num_states`."""
    share = num_states // num_episodes + int(episode < num_states % num_episodes)
    rng = np.random.default_rng([seed, episode])
    return np.sort(rng.choice(length, min(share, length), replace=False))


class DMCPairing:
    """Pairs for dm_control: sampled physics-state histories rendered in the training env and every test env."""

    def __init__(self, num_states: int, num_episodes: int, seed: int) -> None:
        self.num_states, self.num_episodes, self.seed = num_states, num_episodes, seed
        self._samples: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # episode -> (states, histories into them)
        self._observations: dict[str, dict[int, np.ndarray]] = {}  # env -> episode -> observations

    @contextmanager
    def rollout(self, name: str, first: int, envs: list[DMCPixelEnv]) -> Iterator[list]:
        """Yields the envs to roll out episodes first, first + 1, ... in; then renders the sampled states in them."""
        recorders = [StateRecordingEnv(env) for env in envs] if name == TRAIN_ENV else None
        yield recorders or envs
        for i, env in enumerate(envs):
            if recorders is not None:
                self._sample(first + i, recorders[i])
            if first + i in self._samples:
                self._observations.setdefault(name, {})[first + i] = render_observations(env, *self._samples[first + i])

    def _sample(self, episode: int, recorder: StateRecordingEnv) -> None:
        """Keep this training episode's sampled states and the frame-stack histories that observe them."""
        steps = sampled_steps(len(recorder.states), self.num_states, self.num_episodes, episode, self.seed)
        if len(steps):
            needed, index = np.unique(frame_histories(steps, recorder.env.frame_stack), return_inverse=True)
            self._samples[episode] = (np.stack([recorder.states[i] for i in needed]),
                                      index.reshape(len(steps), -1))

    def fork(self) -> DMCPairing:
        """A pairing for one chunk played elsewhere: the sampled states so far, no observations yet."""
        forked = DMCPairing(self.num_states, self.num_episodes, self.seed)
        forked._samples = dict(self._samples)
        return forked

    def merge(self, other: DMCPairing) -> None:
        """Take in what a fork collected."""
        self._samples.update(other._samples)
        for name, per_episode in other._observations.items():
            self._observations.setdefault(name, {}).update(per_episode)

    def observations(self) -> PairedObservations:
        """The pairs of every evaluated env, in episode order."""
        stacked = {name: np.concatenate([per[e] for e in sorted(per)]) for name, per in self._observations.items()}
        clean = stacked.pop(TRAIN_ENV)
        return PairedObservations(clean, stacked, {})


class ProcgenPairing:
    """Pairs for Procgen: sampled steps replayed clean, then drawn with each test env's visual variant."""

    def __init__(self, num_states: int, num_episodes: int, seed: int, test_envs: dict[str, dict[str, Any]]) -> None:
        self.num_states, self.num_episodes, self.seed, self.test_envs = num_states, num_episodes, seed, test_envs
        self.game: str | None = None
        self._frames: dict[int, np.ndarray] = {}  # episode -> clean frames
        self._states: dict[int, list[bytes]] = {}  # episode -> their game states

    @contextmanager
    def rollout(self, name: str, first: int, env: ProcgenPixelEnv) -> Iterator[Any]:
        """Yields the env to roll out; for the training env, then replays its sampled steps."""
        if name != TRAIN_ENV:
            yield env
            return
        recorder = ActionRecordingEnv(env)
        yield recorder
        self.game = env.game
        for i, (level, actions) in enumerate(recorder.episodes()):
            steps = sampled_steps(len(actions), self.num_states, self.num_episodes, first + i, self.seed)
            if len(steps):
                self._frames[first + i], self._states[first + i] = replay_level(env.game, level, actions, steps)

    def fork(self) -> ProcgenPairing:
        """A pairing for one chunk played elsewhere, with nothing collected yet."""
        return ProcgenPairing(self.num_states, self.num_episodes, self.seed, self.test_envs)

    def merge(self, other: ProcgenPairing) -> None:
        """Take in what a fork collected."""
        self.game = self.game or other.game
        self._frames.update(other._frames)
        self._states.update(other._states)

    def observations(self) -> PairedObservations:
        """The clean frames, each visual variant's drawing of their states, and the test envs without pairs."""
        episodes = sorted(self._frames)
        states = [state for e in episodes for state in self._states[e]]
        shifted, skipped = {}, {}
        for name, overrides in self.test_envs.items():
            if name == TRAIN_ENV:
                continue
            variant = overrides.get("variant")
            if variant is None:
                skipped[name] = (f"split {overrides.get('split', 'train')!r} without a visual variant: other levels, "
                                 "not other visuals, so its states have no clean rendering to pair with")
            elif variant in UNPAIRED_VARIANTS:
                skipped[name] = UNPAIRED_VARIANTS[variant]
            else:
                shifted[name] = render_with_variant(self.game, states, variant)
        return PairedObservations(np.concatenate([self._frames[e] for e in episodes]), shifted, skipped)


Pairing = DMCPairing | ProcgenPairing


def paired_rollout(pairing: Pairing | None, name: str, first: int, envs: Any) -> AbstractContextManager:
    """`pairing.rollout(name, first, envs)`, or the envs unchanged without a pairing."""
    return nullcontext(envs) if pairing is None else pairing.rollout(name, first, envs)
