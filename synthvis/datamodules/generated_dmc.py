"""DMC pixel datasets collected by synthvis with a behaviour policy, in V-D4RL's formats."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from synthvis.core.episode import Episode
from synthvis.datamodules.sources import GeneratedDataset, _describe_factory
from synthvis.envs.distractions import make_distractions
from synthvis.envs.dmc import DMCPixelEnv
from synthvis.envs.pixel_step import PixelStep
from synthvis.envs.policies import make_policy


def rollout_episode(env: DMCPixelEnv, act: Callable[[DMCPixelEnv, PixelStep], np.ndarray]) -> Episode:
    """Run one episode, storing single frames in V-D4RL's row convention."""
    step = env.reset()
    steps = [step]
    while not step.last:
        step = env.step(act(env, step))
        steps.append(step)
    return Episode(
        frames=np.stack([s.frame for s in steps]),
        action=np.stack([s.action for s in steps]).astype(np.float32),
        reward=np.array([s.reward for s in steps], dtype=np.float32),
        discount=np.array([s.discount for s in steps], dtype=np.float32),
    )


class GeneratedDMCDataset(GeneratedDataset):
    """`num_episodes` episodes of a dm_control task under a behaviour policy of the given quality.

    Episode k is a pure function of (seed, k): the env is built with `task_kwargs={'random': seed}` and the
    policy reseeded per episode, so an interrupted generation resumes by replaying k resets. `distraction`
    (keyword arguments of `make_distractions`, e.g. `{mode: fixed_easy}`) renders the data under a visual
    distraction: the fixed-distraction data of the FDD variant.
    """

    def __init__(
        self,
        env: Callable[..., DMCPixelEnv],
        quality: str = "expert",
        num_episodes: int = 10,
        seed: int = 0,
        format: str | None = None,
        cache_dir: str | Path = "data_cache",
        episodes_per_file: int = 10,
        policy_kwargs: dict[str, Any] | None = None,
        distraction: dict[str, Any] | None = None,
    ) -> None:
        probe = env.keywords if hasattr(env, "keywords") else {}
        if format is None:  # V-D4RL's convention: 64 px data as DreamerV2 npz episodes, 84 px as HDF5 shards
            format = "vd4rl_npz" if probe.get("image_size") == 64 else "vd4rl_hdf5"
        super().__init__(cache_dir, quality, seed, format, episodes_per_file)
        if num_episodes < 1:
            raise ValueError(f"num_episodes must be >= 1, got {num_episodes}")
        self.env_factory = env
        self.num_episodes = num_episodes
        self.policy_kwargs = dict(policy_kwargs or {})
        self.distraction = dict(distraction) if distraction else None
        self._env_name = f"{probe.get('domain', 'dmc')}_{probe.get('task', 'task')}"

    @property
    def env_name(self) -> str:
        if self.distraction:
            return f"{self._env_name}-{self.distraction['mode']}"
        return self._env_name

    @property
    def progress_total(self) -> int:
        return self.num_episodes

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "env": _describe_factory(self.env_factory), "num_episodes": self.num_episodes,
                "policy_kwargs": self.policy_kwargs, "distraction": self.distraction}

    def collect(self, skip_episodes: int) -> Iterator[Episode]:
        env = self.env_factory(seed=self.seed)
        if self.distraction:
            env.distractions = make_distractions(env.domain, camera_id=env.camera_id, **self.distraction)
        policy = make_policy(self.quality, env.domain, **self.policy_kwargs)
        try:
            for _ in range(skip_episodes):  # replay resets so episode k sees the same initial state as before
                env.reset()
            for index in range(skip_episodes, self.num_episodes):
                policy.reset(seed=self.seed * 1_000_003 + index)
                yield rollout_episode(env, policy.act)
        finally:
            env.close()
