"""Jobs sharing a machine: one job alone against two at once, with and without synthvis's thread rule.

    python bench/parallel_jobs.py --out DIR [--updates 1500] [-- train.py overrides]

Runs the agent stage of the quickstart (data cached first) three ways, nothing else running:
1. one job alone (`threads` null: all the CPUs it may use);
2. two jobs at once under the joblib launcher (`hydra.launcher.n_jobs=2`), each taking its share by the rule
   (CPUs / 2 intra-op threads);
3. the same two jobs with `threads=<all CPUs>` each, as a job that ignores its share would run.
Prints each job's agent-stage seconds and updates/s, the wall time of the whole command and the machine's
throughput (updates/s summed over the jobs running at once).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from synthvis.utils.threads import available_cpus


def agent_seconds(job: Path) -> float:
    """Seconds the agent stage of one job took (its done.json)."""
    return json.loads((job / "agent" / "done.json").read_text())["seconds"]


def main() -> None:
    """Run the three settings and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--updates", type=int, default=1500)
    parser.add_argument("overrides", nargs="*", help="train.py overrides shared by every run")
    args = parser.parse_args()
    common = ["stages=[data,agent]", f"agent_steps={args.updates}", "reuse_agent=false", *args.overrides]
    subprocess.run([sys.executable, "train.py", f"run_dir={args.out / 'warm'}", "stages=[data]", *args.overrides],
                   check=True)  # the dataset, cached for every run below
    cpus = available_cpus()
    two = ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=0,1"]
    settings = {  # name -> (overrides, the folder of its job(s))
        "one job alone": ([f"run_dir={args.out / 'alone'}"], args.out / "alone"),
        f"two jobs, {max(1, cpus // 2)} thread(s) each (the rule)": (
            [*two, f"hydra.sweep.dir={args.out / 'rule'}"], args.out / "rule"),
        f"two jobs, {cpus} threads each": (
            [*two, f"hydra.sweep.dir={args.out / 'oversubscribed'}", f"threads={cpus}"], args.out / "oversubscribed"),
    }
    print(f"{cpus} CPUs; agent stage, {args.updates} updates per job")
    print("| setting | agent stage per job | updates/s per job | command wall time | machine updates/s |\n"
          "|---|---|---|---|---|")
    for name, (overrides, folder) in settings.items():
        started = time.perf_counter()
        subprocess.run([sys.executable, "train.py", *overrides, *common], check=True, capture_output=True)
        wall = time.perf_counter() - started
        jobs = [folder] if (folder / "agent").exists() else sorted(p for p in folder.iterdir() if (p / "agent").is_dir())
        seconds = [agent_seconds(job) for job in jobs]
        rates = [args.updates / s for s in seconds]
        print(f"| {name} | {', '.join(f'{s:.0f} s' for s in seconds)} | {', '.join(f'{r:.1f}' for r in rates)} | "
              f"{wall:.0f} s | {sum(rates):.1f} |", flush=True)

if __name__ == "__main__":
    main()
