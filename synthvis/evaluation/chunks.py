"""A chunk of evaluation episodes: the envs of one test env stepped together, and the rollout that plays them.

A chunk is the unit the evaluator hands out, in its own process or in a worker (workers.py): its envs are built
from the chunk alone (factory, seeds, overrides), so where it runs does not change what it plays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from synthvis.envs.distractions import make_distractions
from synthvis.envs.dmc import DMCPixelEnv
from synthvis.evaluation.paired_states import Pairing, paired_rollout
from synthvis.evaluation.rollouts import Policy, rollout_dmc, rollout_procgen


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: the evaluator keys its results by chunk
class EpisodeChunk:
    """Episodes first .. first + count - 1 of test env `name`, stepped together through one policy call per step."""

    env_factory: Callable
    procgen: bool
    seed: int  # the evaluation seed: episode i uses seed + i
    name: str
    first: int
    count: int
    overrides: dict[str, Any] = field(default_factory=dict)
    record: bool = False  # keep the frames of the chunk's first episode (for a video)

    @property
    def policy_seed(self) -> list[int]:
        """Seed of this chunk's policy randomness (epsilon-greedy, random actions): one stream per chunk, so the
        draws do not depend on which chunks ran before it."""
        return [self.seed, self.first]


def episode_chunks(env_factory: Callable, procgen: bool, seed: int, name: str, overrides: dict[str, Any],
                   num_episodes: int, parallel_envs: int, record: bool = False) -> list[EpisodeChunk]:
    """`num_episodes` episodes of one test env in chunks of at most `parallel_envs`; the first chunk may record."""
    return [EpisodeChunk(env_factory, procgen, seed, name, first, min(parallel_envs, num_episodes - first),
                         dict(overrides), record and first == 0)
            for first in range(0, num_episodes, parallel_envs)]


def dmc_env(chunk: EpisodeChunk, episode: int) -> DMCPixelEnv:
    """The dm_control env of `episode`: task seed seed + episode, and the chunk's distraction drawn for it."""
    env = chunk.env_factory(seed=chunk.seed + episode)
    distraction = chunk.overrides.get("distraction")
    if distraction:
        fixed = distraction["mode"].startswith("fixed_")
        env.distractions = make_distractions(env.domain, camera_id=env.camera_id,
                                             seed=None if fixed else chunk.seed + episode, **distraction)
    return env


def run_chunk(chunk: EpisodeChunk, policy: Policy, pairing: Pairing | None = None) -> tuple[list[float], list]:
    """Play the chunk's episodes with `policy`: (returns in episode order, the first episode's frames if recorded)."""
    keep = 0 if chunk.record else None
    if chunk.procgen:
        env = chunk.env_factory(num_envs=chunk.count, seed=chunk.seed + chunk.first, **chunk.overrides)
        try:
            with paired_rollout(pairing, chunk.name, chunk.first, env) as rollout_env:
                return rollout_procgen(rollout_env, policy, record=keep)
        finally:
            env.close()
    envs = [dmc_env(chunk, chunk.first + i) for i in range(chunk.count)]
    try:
        with paired_rollout(pairing, chunk.name, chunk.first, envs) as rollout_envs:
            return rollout_dmc(rollout_envs, policy, record=keep)
    finally:
        for env in envs:
            env.close()
