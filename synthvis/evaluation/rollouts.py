"""Lockstep rollouts of an agent in several environments at once: one network call per step for all of them."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from synthvis.envs.dmc import DMCPixelEnv
from synthvis.envs.procgen import NUM_ACTIONS, ProcgenPixelEnv

Policy = Callable[[np.ndarray], np.ndarray]  # (n, C, H, W) uint8 -> actions


def agent_policy(agent, deterministic: bool = True, epsilon: float = 0.0, seed: int | Sequence[int] = 0) -> Policy:
    """Wrap an OfflineAgent as a numpy batch policy on the agent's device (epsilon-greedy for discrete agents)."""
    rng = np.random.default_rng(seed)

    @torch.no_grad()
    def act(obs: np.ndarray) -> np.ndarray:
        tensor = torch.from_numpy(np.ascontiguousarray(obs)).to(agent.device)
        actions = agent.act(tensor, deterministic=deterministic).cpu().numpy()
        if agent.discrete and epsilon > 0:
            # gen_dgrl evaluates Q-agents epsilon-greedily (eval_eps 0.001) so they cannot get stuck forever.
            explore = rng.random(len(actions)) < epsilon
            actions = np.where(explore, rng.integers(0, NUM_ACTIONS, len(actions)), actions)
        return actions

    return act


def random_policy(action_dim: int | None, seed: int | Sequence[int] = 0) -> Policy:
    """Uniformly random actions: in [-1, 1]^action_dim for dm_control, any of Procgen's actions if action_dim is None."""
    rng = np.random.default_rng(seed)

    def act(obs: np.ndarray) -> np.ndarray:
        if action_dim is None:
            return rng.integers(0, NUM_ACTIONS, len(obs))
        return rng.uniform(-1.0, 1.0, (len(obs), action_dim)).astype(np.float32)

    return act


def rollout_dmc(envs: Sequence[DMCPixelEnv], policy: Policy, record: int | None = None) -> tuple[list[float], list]:
    """One episode in each env, stepped together; returns episode returns and (optionally) env `record`'s frames."""
    steps = [env.reset() for env in envs]
    returns = np.zeros(len(envs))
    frames = [steps[record].frame] if record is not None else []
    active = np.ones(len(envs), dtype=bool)
    while active.any():
        index = np.flatnonzero(active)
        actions = policy(np.stack([steps[i].observation for i in index]))
        for i, action in zip(index, actions, strict=True):
            steps[i] = envs[i].step(action)
            returns[i] += steps[i].reward
            active[i] = not steps[i].last
        if record is not None and record in index:
            frames.append(steps[record].frame)
    return returns.tolist(), frames


def rollout_procgen(env: ProcgenPixelEnv, policy: Policy, record: int | None = None,
                    max_steps: int = 10_000) -> tuple[list[float], list]:
    """The first complete episode of each of the vector env's environments (all start at a level's first frame)."""
    obs, _ = env.observe()
    returns = np.zeros(env.num_envs)
    done = np.zeros(env.num_envs, dtype=bool)
    frames = [obs[record]] if record is not None else []
    for _ in range(max_steps):
        step = env.step(policy(obs).astype(np.int64))
        returns += step.reward * ~done
        if record is not None and not done[record] and not step.done[record]:
            frames.append(step.obs[record])
        done |= step.done
        obs = step.obs
        if done.all():
            return returns.tolist(), frames
    raise RuntimeError(f"Procgen evaluation did not finish {env.num_envs} episodes in {max_steps} steps")
