"""Procgen splits, visual variants, the episode collector and return normalization."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from synthvis.envs.procgen import (
    NUM_ACTIONS,
    PROCGEN_GAMES,
    SPLITS,
    VISUAL_VARIANTS,
    ProcgenPixelEnv,
    collect_episodes,
)


def random_policy(seed: int):
    """A batch policy drawing uniform actions from its own generator."""
    rng = np.random.default_rng(seed)
    return lambda obs: rng.integers(0, NUM_ACTIONS, size=len(obs), dtype=np.int64)


def rollout(env: ProcgenPixelEnv, steps: int, seed: int = 0) -> tuple[np.ndarray, list[np.ndarray]]:
    """Frames (steps + 1, n, 3, 64, 64) under random actions, and each step's level seeds."""
    policy = random_policy(seed)
    obs, _ = env.observe()
    frames, seeds = [obs], []
    for _ in range(steps):
        step = env.step(policy(obs))
        obs = step.obs
        frames.append(obs)
        seeds.append(step.level_seed)
    return np.stack(frames), seeds


def test_import_is_lazy() -> None:
    code = (
        "import sys, synthvis.envs.procgen; assert 'procgen' not in sys.modules and 'gym' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("split", sorted(SPLITS))
def test_each_split_steps(split: str) -> None:
    env = ProcgenPixelEnv("coinrun", split, num_envs=3, seed=0)
    obs, seeds = env.observe()
    assert obs.shape == (3, 3, 64, 64) and obs.dtype == np.uint8 and seeds.shape == (3,)
    assert env.at_episode_start.all()
    step = env.step(np.zeros(3, dtype=np.int64))
    assert step.obs.shape == (3, 3, 64, 64) and step.obs.dtype == np.uint8
    assert step.obs.flags.c_contiguous
    assert step.reward.shape == (3,) and step.reward.dtype == np.float32
    assert step.done.shape == (3,) and step.done.dtype == bool
    assert step.level_seed.dtype == np.int64
    assert env.num_actions == NUM_ACTIONS == 15


def test_same_seed_reproduces_and_different_seeds_differ() -> None:
    first, _ = rollout(ProcgenPixelEnv("bigfish", num_envs=2, seed=5), 30)
    again, _ = rollout(ProcgenPixelEnv("bigfish", num_envs=2, seed=5), 30)
    other, _ = rollout(ProcgenPixelEnv("bigfish", num_envs=2, seed=6), 30)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize(("split", "low", "high"), [("train", 0, 200), ("validation", 200, 250)])
def test_level_seeds_lie_in_split(split: str, low: int, high: int) -> None:
    # bigfish episodes are short under random actions, so 300 steps of 8 envs cross many levels.
    env = ProcgenPixelEnv("bigfish", split, num_envs=8, seed=1)
    _, step_seeds = rollout(env, 300)
    seeds = np.concatenate([env.observe()[1], *step_seeds])
    assert seeds.min() >= low and seeds.max() < high
    assert len(np.unique(seeds)) > 10


def test_test_split_draws_from_the_full_distribution() -> None:
    _, seeds = ProcgenPixelEnv("coinrun", "test", num_envs=8, seed=0).observe()
    assert (seeds >= 250).all()


# Games where each variant visibly changes the reset frames (measured; see VISUAL_VARIANTS' comment).
VARIANT_GAMES = {
    "no_backgrounds": ("bigfish", "coinrun", "maze"),
    "monochrome": ("coinrun", "maze", "miner"),
    "restricted_themes": ("climber", "jumper", "ninja"),
    "generated_assets": ("bigfish", "coinrun", "starpilot"),
    "uncentered": ("caveflyer", "coinrun", "ninja"),
}


def test_every_variant_is_covered() -> None:
    assert set(VARIANT_GAMES) == set(VISUAL_VARIANTS)


@pytest.mark.parametrize("variant", sorted(VARIANT_GAMES))
def test_visual_variant_changes_pixels(variant: str) -> None:
    changed = []
    for game in VARIANT_GAMES[variant]:
        default, _ = rollout(ProcgenPixelEnv(game, num_envs=4, seed=7), 5)
        shifted, _ = rollout(ProcgenPixelEnv(game, num_envs=4, seed=7, variant=variant), 5)
        assert shifted.shape == default.shape and shifted.dtype == np.uint8
        changed.append((shifted != default).any(axis=2).mean() > 0.01)
    assert sum(changed) >= 2, f"{variant} changed pixels in {changed} of {VARIANT_GAMES[variant]}"


def test_collected_episodes_are_consistent() -> None:
    env = ProcgenPixelEnv("bigfish", "train", num_envs=4, seed=3)
    episodes = list(collect_episodes(env, random_policy(0), num_transitions=600))
    total = sum(episode.num_transitions for episode in episodes)
    assert total >= 600
    # Complete episodes only: stopping happens right after the episode that crossed the threshold.
    assert total - episodes[-1].num_transitions < 600
    for episode in episodes:
        length = len(episode)
        assert length >= 2
        assert episode.frames.shape == (length, 3, 64, 64) and episode.frames.dtype == np.uint8
        assert episode.action.shape == (length,) and episode.action.dtype == np.int64
        assert episode.action.min() >= 0 and episode.action.max() < NUM_ACTIONS and episode.action[0] == 0
        assert episode.reward.dtype == np.float32 and episode.reward[0] == 0.0
        assert episode.discount[-1] == 0.0 and (episode.discount[:-1] == 1.0).all()
        assert episode.discrete and episode.terminal
        assert episode.episode_return == pytest.approx(float(episode.reward.sum()))
        assert episode.level_seed is not None and 0 <= episode.level_seed < 200


def test_collection_reproduces_environment_steps() -> None:
    # Replaying an episode's actions in a fresh single env must give the stored frames and rewards; the last
    # row is the next episode's first frame (gen_dgrl's observations[T]).
    collector = collect_episodes(ProcgenPixelEnv("coinrun", num_envs=1, seed=2), random_policy(4), 10**6)
    episode, following = next(collector), next(collector)
    np.testing.assert_array_equal(episode.frames[-1], following.frames[0])
    env = ProcgenPixelEnv("coinrun", num_envs=1, seed=2)
    obs, seeds = env.observe()
    np.testing.assert_array_equal(obs[0], episode.frames[0])
    assert seeds[0] == episode.level_seed
    for t in range(1, len(episode)):
        step = env.step(episode.action[t : t + 1])
        np.testing.assert_array_equal(step.obs[0], episode.frames[t])
        assert step.reward[0] == episode.reward[t]
        assert step.done[0] == (t == len(episode) - 1)
    assert step.level_seed[0] == episode.level_seed


def test_collection_skips_partial_episodes() -> None:
    env = ProcgenPixelEnv("bigfish", num_envs=2, seed=0)
    mid_episode = env.step(np.zeros(2, dtype=np.int64)).obs.copy()
    assert not env.at_episode_start.any()
    episodes = list(collect_episodes(env, random_policy(1), num_transitions=50))
    assert episodes
    # The episodes in progress when collection started are dropped: no yielded episode begins at their frame.
    for episode in episodes:
        assert not any(np.array_equal(episode.frames[0], frame) for frame in mid_episode)


@pytest.mark.parametrize("game", PROCGEN_GAMES)
def test_every_game_constructs_and_steps(game: str) -> None:
    env = ProcgenPixelEnv(game, "train", num_envs=1, seed=0)
    frames, _ = rollout(env, 3)
    assert frames.shape == (4, 1, 3, 64, 64) and frames.dtype == np.uint8 and frames.any()
    env.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"game": "pong"}, "unknown procgen game 'pong'; choose one of bigfish, "),
        (
            {"game": "coinrun", "split": "val"},
            "unknown procgen split 'val'; choose one of train, validation, test",
        ),
        (
            {"game": "coinrun", "variant": "mono"},
            "unknown procgen visual variant 'mono'; choose one of no_backgr",
        ),
        ({"game": "coinrun", "num_envs": 0}, "num_envs must be positive"),
    ],
)
def test_bad_names_raise(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ProcgenPixelEnv(**kwargs)


def test_bad_actions_and_arguments_raise() -> None:
    env = ProcgenPixelEnv("coinrun", num_envs=2, seed=0)
    with pytest.raises(ValueError, match=r"actions must lie in \[0, 15\)"):
        env.step(np.array([0, 15]))
    with pytest.raises(ValueError, match="actions must be 2 integers"):
        env.step(np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="actions must be 2 integers"):
        env.step(np.zeros(2, dtype=np.float32))
    with pytest.raises(ValueError, match="num_transitions must be positive"):
        next(collect_episodes(env, random_policy(0), 0))
    with pytest.raises(ValueError, match="unknown procgen game 'pong'"):
        ProcgenPixelEnv("pong")
