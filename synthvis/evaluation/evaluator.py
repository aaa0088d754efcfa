"""Zero-shot evaluation: fixed-seed episodes on the training environment and on every visually shifted test env."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from synthvis.envs.distractions import DISTRACTION_KINDS, make_distractions
from synthvis.envs.dmc import DMCPixelEnv
from synthvis.envs.procgen import ProcgenPixelEnv
from synthvis.evaluation.paired_states import DMCPairing, Pairing, ProcgenPairing, paired_rollout
from synthvis.evaluation.rollouts import agent_policy, random_policy, rollout_dmc, rollout_procgen
from synthvis.metrics.generalization import TRAIN_ENV
from synthvis.utils.files import atomic_write_json

log = logging.getLogger(__name__)

def dmc_test_envs(modes: Sequence[str] = ("fixed_easy", "fixed_medium", "fixed_hard", "easy", "medium", "hard"),
                  kinds: Sequence[str] = DISTRACTION_KINDS, background_source: str = "procedural",
                  background_path: str | None = None) -> dict[str, dict[str, Any]]:
    """DMC test envs: one per distraction mode, named by the mode (V-D4RL's eval_on_distracting set)."""
    spec = {"kinds": list(kinds), "background_source": background_source, "background_path": background_path}
    return {mode: {"distraction": {"mode": mode, **spec}} for mode in modes}


def procgen_test_envs(splits: Sequence[str] = ("test",), variants: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    """Procgen test envs: unseen-level splits, and each visual variant on unseen levels."""
    envs = {f"{split}_levels": {"split": split} for split in splits}
    envs.update({f"test_levels_{variant}": {"split": "test", "variant": variant} for variant in variants})
    return envs


class ObservedPolicy:
    """A batch policy that keeps every `stride`-th batch of observations it is asked to act on (0 = none)."""

    def __init__(self, policy: Callable[[np.ndarray], np.ndarray], stride: int) -> None:
        self.policy, self.stride, self.calls, self.kept = policy, stride, 0, []

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        if self.stride and self.calls % self.stride == 0:
            self.kept.append(obs.copy())
        self.calls += 1
        return self.policy(obs)

    def observations(self) -> np.ndarray:
        """The kept observations, (N, C, H, W) uint8."""
        return np.concatenate(self.kept) if self.kept else np.zeros((0,), dtype=np.uint8)


class ZeroShotEvaluator:
    """Runs `num_episodes` deterministic, seeded episodes on the training env and each test env.

    Episode i of a DMC env uses task seed `seed + i` and, for per-episode distraction modes, distraction seed
    `seed + i` (fixed modes keep their one distraction); Procgen uses level seeds drawn from `seed` on the
    env's split. Evaluation seeds are disjoint from the data-generation seeds by default (seed 100000).
    """

    def __init__(self, env: Callable, test_envs: dict[str, dict[str, Any]] | None = None, num_episodes: int = 10,
                 seed: int = 100_000, parallel_envs: int = 10, epsilon: float = 0.001, video: bool = False) -> None:
        if num_episodes < 1 or parallel_envs < 1:
            raise ValueError(f"eval num_episodes and parallel_envs must be >= 1, got {num_episodes}, {parallel_envs}")
        target = env.func if isinstance(env, functools.partial) else env
        if target not in (DMCPixelEnv, ProcgenPixelEnv):
            raise ValueError(f"evaluation supports DMCPixelEnv and ProcgenPixelEnv factories, got {target}")
        self.procgen = target is ProcgenPixelEnv
        self.env_factory = env
        self.test_envs = {TRAIN_ENV: {}, **dict(test_envs or {})}
        allowed = {"split", "variant"} if self.procgen else {"distraction"}
        for name, overrides in self.test_envs.items():
            if not set(overrides) <= allowed:
                kind = "Procgen" if self.procgen else "dm_control"
                raise ValueError(f"test env {name!r} ({overrides}) does not fit a {kind} env; use eval="
                                 f"{'procgen' if self.procgen else 'dmc'}")
        self.num_episodes, self.seed, self.parallel_envs = num_episodes, seed, parallel_envs
        self.epsilon, self.video = epsilon, video

    def protocol(self) -> dict[str, Any]:
        """How the numbers were made, saved next to them."""
        return {"episodes": self.num_episodes, "seed": self.seed, "deterministic": True,
                "epsilon": self.epsilon if self.procgen else 0.0, "test_envs": self.test_envs}

    def evaluate(self, agent, log_video: Callable[[str, list], None] | None = None) -> dict[str, list[float]]:
        """Episode returns per env name (the agent is put in eval mode for the duration)."""
        return self.evaluate_with_observations(agent, log_video)[0]

    def evaluate_with_observations(self, agent, log_video: Callable[[str, list], None] | None = None,
                                   observation_stride: int = 0, pairing: Pairing | None = None
                                   ) -> tuple[dict[str, list[float]], dict[str, np.ndarray]]:
        """Returns per env and, with `observation_stride` > 0, every stride-th batch of observations the agent saw;
        a `pairing` (from `pairing()`) collects its training-env states rendered clean and under each test env."""
        was_training = agent.training
        agent.eval()
        results, observations = {}, {}
        try:
            for name in tqdm(self.test_envs, desc="evaluate", unit="env", leave=False):
                policy = ObservedPolicy(agent_policy(agent, deterministic=True, epsilon=self.epsilon, seed=self.seed),
                                        observation_stride)
                returns, frames = self._evaluate_env(name, policy, record=log_video is not None and self.video,
                                                     pairing=pairing)
                results[name] = returns
                if observation_stride:
                    observations[name] = policy.observations()
                if frames and log_video is not None:
                    log_video(name, frames)
        finally:
            agent.train(was_training)
        return results, observations

    def random_returns(self) -> list[float]:
        """Training-env returns of uniformly random actions on the same episodes: the floor an agent must beat."""
        action_dim = None
        if not self.procgen:
            env = self.env_factory(seed=self.seed)
            action_dim = env.action_dim
            env.close()
        return self._evaluate_env(TRAIN_ENV, random_policy(action_dim, self.seed), record=False)[0]

    def pairing(self, num_states: int, seed: int) -> Pairing:
        """A pairing of `num_states` training-env states for `evaluate_with_observations` (paired_states.py)."""
        if self.procgen:
            return ProcgenPairing(num_states, self.num_episodes, seed, self.test_envs)
        return DMCPairing(num_states, self.num_episodes, seed)

    def _evaluate_env(self, name: str, policy, record: bool, pairing: Pairing | None = None
                      ) -> tuple[list[float], list]:
        overrides, returns, frames = self.test_envs[name], [], []
        for first in range(0, self.num_episodes, self.parallel_envs):
            count = min(self.parallel_envs, self.num_episodes - first)
            keep = 0 if record and first == 0 else None
            if self.procgen:
                env = self.env_factory(num_envs=count, seed=self.seed + first, **overrides)
                try:
                    with paired_rollout(pairing, name, first, env) as rollout_env:
                        chunk, chunk_frames = rollout_procgen(rollout_env, policy, record=keep)
                finally:
                    env.close()
            else:
                envs = [self._dmc_env(first + i, overrides) for i in range(count)]
                try:
                    with paired_rollout(pairing, name, first, envs) as rollout_envs:
                        chunk, chunk_frames = rollout_dmc(rollout_envs, policy, record=keep)
                finally:
                    for env in envs:
                        env.close()
            returns += chunk
            frames = frames or chunk_frames
        return returns, frames

    def _dmc_env(self, episode: int, overrides: dict[str, Any]) -> DMCPixelEnv:
        env = self.env_factory(seed=self.seed + episode)
        distraction = overrides.get("distraction")
        if distraction:
            fixed = distraction["mode"].startswith("fixed_")
            env.distractions = make_distractions(env.domain, camera_id=env.camera_id,
                                                 seed=None if fixed else self.seed + episode, **distraction)
        return env


def summarize(results: dict[str, list[float]]) -> dict[str, dict[str, Any]]:
    """Mean, std and every episode's return per env."""
    return {name: {"return_mean": float(np.mean(r)), "return_std": float(np.std(r)), "returns": list(map(float, r))}
            for name, r in results.items()}


def write_eval_json(path: Path, results: dict[str, list[float]], evaluator: ZeroShotEvaluator, step: int,
                    extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the evaluation (protocol, per-env summary, every return) atomically; returns what was written."""
    payload = {"step": step, "protocol": evaluator.protocol(), "envs": summarize(results), **(extra or {})}
    atomic_write_json(path, payload)
    return payload
