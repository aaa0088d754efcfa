"""Zero-shot evaluation: fixed-seed episodes on the training environment and on every visually shifted test env."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from synthvis.envs.distractions import DISTRACTION_KINDS
from synthvis.envs.dmc import DMCPixelEnv
from synthvis.envs.procgen import ProcgenPixelEnv
from synthvis.evaluation.chunks import EpisodeChunk, episode_chunks
from synthvis.evaluation.paired_states import DMCPairing, Pairing, ProcgenPairing
from synthvis.evaluation.rollouts import agent_policy, random_policy
from synthvis.evaluation.workers import EpisodeWorkers, play
from synthvis.metrics.generalization import TRAIN_ENV
from synthvis.utils.files import atomic_write_json

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self from Python 3.11


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
        return stack_observations(self.kept)


def stack_observations(batches: list[np.ndarray]) -> np.ndarray:
    """Batches of observations as one (N, C, H, W) uint8 array; an empty (0,) array when there are none."""
    return np.concatenate(batches) if batches else np.zeros((0,), dtype=np.uint8)


class ZeroShotEvaluator:
    """Runs `num_episodes` deterministic, seeded episodes on the training env and each test env.

    Episode i of a DMC env uses task seed `seed + i` and, for per-episode distraction modes, distraction seed
    `seed + i` (fixed modes keep their one distraction); Procgen uses level seeds drawn from `seed` on the
    env's split. Evaluation seeds are disjoint from the data-generation seeds by default (seed 100000).
    Episodes are played in chunks of `parallel_envs` (chunks.py), in this process or spread over `workers`
    processes (workers.py) with the same results. Inside `with evaluator:` the workers serve every call.
    """

    def __init__(self, env: Callable, test_envs: dict[str, dict[str, Any]] | None = None, num_episodes: int = 10,
                 seed: int = 100_000, parallel_envs: int = 10, epsilon: float = 0.001, video: bool = False,
                 workers: int | None = None) -> None:
        if num_episodes < 1 or parallel_envs < 1:
            raise ValueError(f"eval num_episodes and parallel_envs must be >= 1, got {num_episodes}, {parallel_envs}")
        if workers is not None and workers < 0:
            raise ValueError(f"eval.workers must be >= 0 (0 = evaluate in this process) or null, got {workers}")
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
        self.epsilon, self.video, self.workers = epsilon, video, workers
        self._pool: EpisodeWorkers | None = None

    def num_workers(self) -> int:
        """Worker processes to use: `workers`, or this job's CPU share (its torch threads) when it is null; a
        share of one evaluates in this process."""
        if self.workers is not None:
            return self.workers
        share = torch.get_num_threads()
        return share if share > 1 else 0

    def __enter__(self) -> Self:
        if self.num_workers():
            self._pool = EpisodeWorkers(self.num_workers())
        return self

    def __exit__(self, error_type, *exc_info) -> None:
        if self._pool is not None:
            self._pool.close(terminate=error_type is not None)
            self._pool = None

    def protocol(self) -> dict[str, Any]:
        """How the numbers were made, saved next to them."""
        return {"episodes": self.num_episodes, "seed": self.seed, "deterministic": True,
                "epsilon": self.epsilon if self.procgen else 0.0, "test_envs": self.test_envs}

    def evaluate(self, agent, log_video: Callable[[str, list], None] | None = None,
                 envs: Sequence[str] | None = None) -> dict[str, list[float]]:
        """Episode returns per env name, of `envs` (default: all); the agent is in eval mode for the duration."""
        return self.evaluate_with_observations(agent, log_video, envs=envs)[0]

    def evaluate_with_observations(self, agent, log_video: Callable[[str, list], None] | None = None,
                                   observation_stride: int = 0, pairing: Pairing | None = None,
                                   envs: Sequence[str] | None = None
                                   ) -> tuple[dict[str, list[float]], dict[str, np.ndarray]]:
        """Returns per env of `envs` (default: the training env and every test env) and, with `observation_stride`
        > 0, every stride-th batch of observations the agent saw in each chunk; a `pairing` (from `pairing()`)
        collects its training-env states rendered clean and under each test env."""
        record = log_video is not None and self.video
        unknown = set(envs or ()) - set(self.test_envs)
        if unknown:
            raise ValueError(f"no env {sorted(unknown)} to evaluate; the envs are {list(self.test_envs)}")
        chunks = {name: self._chunks(name, record) for name in (envs or self.test_envs)}
        observed: dict[EpisodeChunk, ObservedPolicy] = {}

        def make_policy(chunk: EpisodeChunk) -> ObservedPolicy:
            policy = agent_policy(agent, deterministic=True, epsilon=self.epsilon, seed=chunk.policy_seed)
            observed[chunk] = ObservedPolicy(policy, observation_stride)
            return observed[chunk]

        # A pairing renders the training env's sampled states in every test env: the training env plays first.
        phases = [[TRAIN_ENV], [name for name in chunks if name != TRAIN_ENV]] if pairing else [list(chunks)]
        phases = [[name for name in phase if name in chunks] for phase in phases]
        was_training = agent.training
        agent.eval()
        played: dict[EpisodeChunk, tuple[list[float], list]] = {}
        try:
            with self._workers(sum(map(len, chunks.values()))) as workers:
                for phase in phases:
                    todo = [chunk for name in phase for chunk in chunks[name]]
                    played.update(zip(todo, play(todo, make_policy, pairing, workers), strict=True))
        finally:
            agent.train(was_training)
        results = {name: [r for chunk in env_chunks for r in played[chunk][0]] for name, env_chunks in chunks.items()}
        observations = {}
        if observation_stride:
            observations = {name: stack_observations([batch for chunk in env_chunks for batch in observed[chunk].kept])
                            for name, env_chunks in chunks.items()}
        if record:
            for name, env_chunks in chunks.items():
                if played[env_chunks[0]][1]:
                    log_video(name, played[env_chunks[0]][1])
        return results, observations

    def random_returns(self) -> list[float]:
        """Training-env returns of uniformly random actions on the same episodes: the floor an agent must beat."""
        action_dim = None
        if not self.procgen:
            env = self.env_factory(seed=self.seed)
            action_dim = env.action_dim
            env.close()
        chunks = self._chunks(TRAIN_ENV, record=False)
        with self._workers(len(chunks)) as workers:
            played = play(chunks, lambda chunk: random_policy(action_dim, chunk.policy_seed), None, workers)
        return [r for returns, _ in played for r in returns]

    def pairing(self, num_states: int, seed: int) -> Pairing:
        """A pairing of `num_states` training-env states for `evaluate_with_observations` (paired_states.py)."""
        if self.procgen:
            return ProcgenPairing(num_states, self.num_episodes, seed, self.test_envs)
        return DMCPairing(num_states, self.num_episodes, seed)

    def _chunks(self, name: str, record: bool) -> list[EpisodeChunk]:
        return episode_chunks(self.env_factory, self.procgen, self.seed, name, self.test_envs[name],
                              self.num_episodes, self.parallel_envs, record)

    def _workers(self, chunks: int) -> AbstractContextManager[EpisodeWorkers | None]:
        """The open pool inside `with evaluator:`; else a pool for this call's `chunks` (no more workers than
        chunks), or none (in this process) when fewer than two would play at once."""
        if self._pool is not None:
            return nullcontext(self._pool)
        count = min(self.num_workers(), chunks)
        return EpisodeWorkers(count) if count > 1 else nullcontext(None)


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
