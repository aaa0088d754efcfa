"""Zero-shot evaluation speed against the number of worker processes: episodes/s and the speed-up over serial.

    python bench/eval_workers.py [--workers 0 1 2] [--episodes 10] [--repeats 2] [-- HYDRA OVERRIDES]

Composes the run config (the quickstart by default: point_mass_easy at 32 px, action repeat 8, the training env
and six distracted test envs, 10 episodes each) and evaluates one agent with `eval.workers` = each value; the
agent is the config's (a fresh one, or the weights of --weights). Every setting must return the same episode
returns: the script checks it. Time per setting is the best of --repeats full evaluations, worker start included.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from synthvis.lightning_modules.bc import BC
from synthvis.utils.weights import load_weights

CONF = Path(__file__).resolve().parents[1] / "conf"


def main() -> None:
    """Time the evaluation at each worker count and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--weights", type=Path, default=None, help="an agent.pt to evaluate (default: a fresh BC)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the run config")
    args = parser.parse_args()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", [f"eval.num_episodes={args.episodes}", *args.overrides])
    if args.weights is not None:
        agent = load_weights(args.weights)[0]
    else:
        env = instantiate(cfg.env)(seed=0)
        agent = BC((3 * env.frame_stack, env.image_size, env.image_size), env.action_dim, hidden_dim=256)
        env.close()
    print(f"torch threads {torch.get_num_threads()}; {args.episodes} episodes per env")
    print("| workers | envs | episodes | seconds | episodes/s | speed-up |\n|---|---|---|---|---|---|")
    reference, serial = None, None
    for workers in args.workers:
        evaluator = instantiate(cfg.eval, workers=workers)
        times = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            with evaluator:
                returns = evaluator.evaluate(agent)
            times.append(time.perf_counter() - started)
        if reference is None:
            reference = returns
        elif returns != reference:
            raise SystemExit(f"workers={workers} returned {returns}, not {reference}")
        seconds = min(times)
        serial = serial or seconds
        episodes = sum(map(len, returns.values()))
        print(f"| {workers} | {len(returns)} | {episodes} | {seconds:.1f} | {episodes / seconds:.2f} | "
              f"{serial / seconds:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
