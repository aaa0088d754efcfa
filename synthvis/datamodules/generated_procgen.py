"""Procgen pixel datasets collected by synthvis on gen_dgrl's training levels, in gen_dgrl's episode format."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from synthvis.core.episode import Episode
from synthvis.datamodules.sources import GeneratedDataset
from synthvis.envs.policies import RandomDiscretePolicy
from synthvis.envs.procgen import ProcgenPixelEnv, collect_episodes

PROCGEN_QUALITIES = ("random",)  # trained behaviour agents plug in through CheckpointPolicy later


class GeneratedProcgenDataset(GeneratedDataset):
    """At least `num_transitions` transitions of complete episodes of `game` on a split's levels.

    Collection is deterministic for a seed (procgen's rand_seed and the policy's generator), so an interrupted
    run resumes by re-collecting and discarding the episodes it already wrote (Procgen steps at ~10k/s).
    """

    def __init__(
        self,
        game: str = "coinrun",
        split: str = "train",
        quality: str = "random",
        num_transitions: int = 10_000,
        num_envs: int = 8,
        seed: int = 0,
        format: str = "gen_dgrl",
        cache_dir: str | Path = "data_cache",
        episodes_per_file: int = 1,
    ) -> None:
        if quality not in PROCGEN_QUALITIES:
            raise ValueError(f"Procgen data quality {quality!r} is not available; choose one of {PROCGEN_QUALITIES}")
        if num_transitions < 1 or num_envs < 1:
            raise ValueError(f"num_transitions and num_envs must be >= 1, got {num_transitions}, {num_envs}")
        super().__init__(cache_dir, quality, seed, format, episodes_per_file)
        self.game, self.split = game, split
        self.num_transitions, self.num_envs = num_transitions, num_envs

    @property
    def env_name(self) -> str:
        return f"procgen_{self.game}_{self.split}"

    @property
    def progress_total(self) -> int:
        return self.num_transitions

    progress_unit = "transition"

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "game": self.game, "split": self.split,
                "num_transitions": self.num_transitions, "num_envs": self.num_envs}

    def collect(self, skip_episodes: int) -> Iterator[Episode]:
        env = ProcgenPixelEnv(self.game, split=self.split, num_envs=self.num_envs, seed=self.seed)
        policy = RandomDiscretePolicy(env.num_actions, seed=self.seed)
        try:
            episodes = collect_episodes(env, lambda obs: policy.act_batch(len(obs)), self.num_transitions)
            yield from islice(episodes, skip_episodes, None)
        finally:
            env.close()
