"""Behaviour policies: experts beat random, seeding, noise mixing, the factory and its errors."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from synthvis.envs.dmc import DMCPixelEnv
from synthvis.envs.pixel_step import PixelStep
from synthvis.envs.policies import (
    EXPERTS,
    CheckpointPolicy,
    MixedPolicy,
    NoisyPolicy,
    RandomDiscretePolicy,
    RandomPolicy,
    make_expert,
    make_policy,
)


class BlindEnv(DMCPixelEnv):
    """`DMCPixelEnv` with the camera replaced by black frames: rendering dominates episode time, and
    scripted experts and random actions never look at pixels."""

    def render(self) -> np.ndarray:
        return np.zeros((3, self.image_size, self.image_size), np.uint8)


def episode_return(env: DMCPixelEnv, policy, seed: int | None = None) -> float:
    policy.reset(seed)
    step, total = env.reset(), 0.0
    while not step.last:
        step = env.step(policy.act(env, step))
        total += step.reward
    return total


def fake_step(action_dim: int = 2) -> PixelStep:
    frame = np.zeros((3, 8, 8), np.uint8)
    return PixelStep(frame, frame, np.zeros(action_dim, np.float32), 0.0, 1.0, first=True, last=False)


class ConstantPolicy:
    """Always the same action, to tell base actions from random ones."""

    def __init__(self, value: float) -> None:
        self.value = value

    def reset(self, seed: int | None = None) -> None:
        pass

    def act(self, env, step) -> np.ndarray:
        return np.full(env.action_dim, self.value, np.float32)


# Thresholds sit well below what the experts score (point_mass ≈ 920, reacher ≈ 970, swingup ≈ 860,
# balance ≈ 1000 over 5 episodes) and well above random (≈ 40, 55, 55, 290).
@pytest.mark.parametrize(
    ("domain", "task", "expert_min", "random_max"),
    [
        ("point_mass", "easy", 700, 300),
        ("point_mass", "hard", 600, 300),
        ("reacher", "easy", 700, 300),
        ("cartpole", "swingup", 750, 300),
        ("cartpole", "balance", 950, 700),
    ],
)
def test_expert_beats_random(domain, task, expert_min, random_max):
    env = BlindEnv(domain, task, seed=1, image_size=8, frame_stack=1)
    expert = episode_return(env, make_policy("expert", domain))
    random = episode_return(env, make_policy("random", domain, seed=1))
    assert expert > expert_min, (expert, random)
    assert random < random_max, (expert, random)


def test_policies_act_through_the_rendering_env():
    env = DMCPixelEnv("point_mass", "easy", seed=0, image_size=16, frame_stack=2)
    seen = []

    def agent(observation: np.ndarray) -> np.ndarray:
        seen.append(observation.shape)
        return np.array([3.0, -0.5])  # out of range on purpose: CheckpointPolicy clips

    step = env.reset()
    for policy in (make_expert("point_mass"), CheckpointPolicy(agent)):
        policy.reset()
        action = policy.act(env, step)
        assert action.shape == (2,) and action.dtype == np.float32
        step = env.step(action)
    assert seen == [(6, 16, 16)]
    np.testing.assert_array_equal(step.action, [1.0, -0.5])


@pytest.mark.parametrize(
    "domain,task,action_dim", [("point_mass", "easy", 2), ("reacher", "easy", 2), ("cartpole", "swingup", 1)]
)
@pytest.mark.parametrize("quality", ["random", "medium", "expert", "mixed"])
def test_actions_are_in_range_with_the_right_shape(domain, task, action_dim, quality):
    env = BlindEnv(domain, task, seed=0, image_size=8, frame_stack=1)
    policy = make_policy(quality, domain, seed=0)
    policy.reset()
    step = env.reset()
    for _ in range(30):
        action = policy.act(env, step)
        assert action.shape == (action_dim,) and action.dtype == np.float32
        assert np.all(np.abs(action) <= 1.0)
        step = env.step(action)


@pytest.mark.parametrize("quality", ["random", "medium", "mixed"])
def test_same_seed_same_actions(quality):
    def actions(seed: int) -> np.ndarray:
        env = BlindEnv("reacher", "easy", seed=0, image_size=8, frame_stack=1)
        policy = make_policy(quality, "reacher", seed=seed)
        out = []
        for _ in range(2):
            policy.reset()
            step = env.reset()
            for _ in range(20):
                out.append(policy.act(env, step))
                step = env.step(out[-1])
        return np.stack(out)

    np.testing.assert_array_equal(actions(3), actions(3))
    assert not np.array_equal(actions(3), actions(4))


def test_reset_with_a_seed_replays_the_stream():
    env = SimpleNamespace(action_dim=3)
    policy = NoisyPolicy(RandomPolicy(0), epsilon=0.5, noise_std=0.2, seed=0)
    policy.reset(7)
    first = [policy.act(env, fake_step(3)) for _ in range(10)]
    policy.reset(7)
    np.testing.assert_array_equal(first, [policy.act(env, fake_step(3)) for _ in range(10)])


def test_noisy_epsilon_one_is_uniform_random():
    env = SimpleNamespace(action_dim=2)
    noisy = NoisyPolicy(ConstantPolicy(0.9), epsilon=1.0, noise_std=0.0, seed=0)
    actions = np.stack([noisy.act(env, fake_step()) for _ in range(20_000)])
    reference = RandomPolicy(1)
    reference_actions = np.stack([reference.act(env, fake_step()) for _ in range(20_000)])
    for sample in (actions, reference_actions):
        assert np.all(np.abs(sample) <= 1.0)
        assert abs(sample.mean()) < 0.02
        assert abs(sample.var() - 1 / 3) < 0.01
        # Ten equal bins each hold a tenth of the draws.
        counts = np.histogram(sample, bins=10, range=(-1, 1))[0] / sample.size
        np.testing.assert_allclose(counts, 0.1, atol=0.01)


def test_noisy_without_noise_is_the_base():
    env = BlindEnv("cartpole", "swingup", seed=0, image_size=8, frame_stack=1)
    base, noisy = make_expert("cartpole"), NoisyPolicy(make_expert("cartpole"), epsilon=0.0, noise_std=0.0)
    step = env.reset()
    for _ in range(50):
        action = noisy.act(env, step)
        np.testing.assert_array_equal(action, base.act(env, step))
        step = env.step(action)


def test_noisy_rejects_bad_parameters():
    with pytest.raises(ValueError, match="epsilon"):
        NoisyPolicy(RandomPolicy(), epsilon=1.5, noise_std=0.1)


def test_mixed_draws_a_noise_level_per_episode():
    policy = MixedPolicy(ConstantPolicy(0.0), max_epsilon=0.8, max_noise_std=0.5, seed=0)
    levels = []
    for _ in range(20):
        policy.reset()
        levels.append((policy.epsilon, policy.noise_std))
    levels = np.array(levels)
    assert np.all((levels[:, 0] >= 0) & (levels[:, 0] <= 0.8)) and np.all(levels[:, 1] <= 0.5)
    assert len(np.unique(levels[:, 0])) == 20
    np.testing.assert_allclose(levels[:, 0] / 0.8, levels[:, 1] / 0.5)


def test_make_policy_maps_qualities():
    assert isinstance(make_policy("random", "walker"), RandomPolicy)  # random needs no expert
    assert isinstance(make_policy("expert", "reacher"), type(make_expert("reacher")))
    medium = make_policy("medium", "cartpole", medium_epsilon=0.1, medium_noise_std=0.2)
    assert isinstance(medium, NoisyPolicy) and (medium.epsilon, medium.noise_std) == (0.1, 0.2)
    mixed = make_policy("mixed", "point_mass", mixed_max_epsilon=0.5, mixed_max_noise_std=0.4)
    assert isinstance(mixed, MixedPolicy) and (mixed.max_epsilon, mixed.max_noise_std) == (0.5, 0.4)


def test_unknown_domain_and_quality_raise_clear_errors():
    with pytest.raises(ValueError, match="no scripted expert for domain 'walker'") as error:
        make_policy("expert", "walker")
    assert all(domain in str(error.value) for domain in EXPERTS)
    with pytest.raises(ValueError, match="unknown dataset quality 'medium_replay'.*random, medium"):
        make_policy("medium_replay", "cartpole")


def test_cartpole_expert_refuses_several_poles():
    env = BlindEnv("cartpole", "two_poles", seed=0, image_size=8, frame_stack=1)
    with pytest.raises(ValueError, match="one pole"):
        make_expert("cartpole").act(env, env.reset())


def test_random_discrete_policy():
    policy = RandomDiscretePolicy(15, seed=0)
    actions = policy.act_batch(10_000)
    assert actions.shape == (10_000,) and actions.dtype == np.int64
    assert actions.min() == 0 and actions.max() == 14
    policy.reset(0)
    np.testing.assert_array_equal(policy.act_batch(10_000), actions)
    with pytest.raises(ValueError, match="num_actions"):
        RandomDiscretePolicy(0)
