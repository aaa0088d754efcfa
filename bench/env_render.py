"""Environment throughput: dm_control transitions/s per render profile, with and without distractions; Procgen.

    python bench/env_render.py [--steps 300] [--image-size 64 84]

A dm_control transition is `action_repeat` (2) physics steps plus one render, as in data generation and
evaluation. Distracted rows use `hard` per-episode distractions (color + camera + static background).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from synthvis.envs.distractions import make_distractions
from synthvis.envs.dmc import DMCPixelEnv
from synthvis.envs.procgen import ProcgenPixelEnv


def dmc_rate(domain: str, task: str, size: int, profile: str, distracted: bool, steps: int) -> float:
    """Transitions per second over `steps` random-action steps (after one warm-up reset)."""
    env = DMCPixelEnv(domain, task, image_size=size, render_profile=profile)
    if distracted:
        env.distractions = make_distractions(domain, "hard", camera_id=env.camera_id)
    rng = np.random.default_rng(0)
    step = env.reset()
    started = time.perf_counter()
    for _ in range(steps):
        step = env.reset() if step.last else env.step(rng.uniform(-1, 1, env.action_dim))
    rate = steps / (time.perf_counter() - started)
    env.close()
    return rate


def procgen_rate(game: str, num_envs: int, steps: int) -> float:
    """Environment steps per second (num_envs steps per batch call) with random actions."""
    env = ProcgenPixelEnv(game, num_envs=num_envs)
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    for _ in range(steps):
        env.step(rng.integers(0, env.num_actions, num_envs))
    rate = steps * num_envs / (time.perf_counter() - started)
    env.close()
    return rate


def main() -> None:
    """Print a markdown table of the measurements."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--image-size", type=int, nargs="+", default=[64, 84])
    parser.add_argument("--tasks", nargs="+", default=["cheetah_run", "walker_walk", "point_mass_easy"])
    args = parser.parse_args()
    print("| env | px | profile | distractions | transitions/s |\n|---|---|---|---|---|")
    for name in args.tasks:
        domain, task = name.split("_", 1) if not name.startswith("point_mass") else ("point_mass", name[11:])
        for size in args.image_size:
            for profile in ("fast", "fidelity"):
                for distracted in (False, True):
                    rate = dmc_rate(domain, task, size, profile, distracted, args.steps)
                    print(f"| {name} | {size} | {profile} | {'hard' if distracted else 'none'} | {rate:.0f} |",
                          flush=True)
    print("\n| procgen game | envs | steps/s |\n|---|---|---|")
    for game in ("coinrun", "bigfish"):
        for num_envs in (1, 16):
            print(f"| {game} | {num_envs} | {procgen_rate(game, num_envs, 2000 // num_envs * 10):.0f} |", flush=True)


if __name__ == "__main__":
    main()
