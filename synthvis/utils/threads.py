"""How many intra-op threads a job takes: its share of the machine, so parallel jobs do not oversubscribe it.

Two 2-thread training processes on a 2-core machine ran 10-20x slower than one (BENCHMARKS.md): each job must
take only the cores it is given.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import torch

log = logging.getLogger(__name__)


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask: a container's or a scheduler's limit)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def parallel_jobs(n_jobs: int | None, cpus: int) -> int:
    """Jobs running at once on this machine under joblib's convention (-1 = one per CPU, -2 = all but one)."""
    if n_jobs is None or n_jobs == 0:
        return 1
    return max(1, cpus + 1 + n_jobs) if n_jobs < 0 else n_jobs


def job_threads(configured: int | None, environ: Mapping[str, str], cpus: int, jobs: int,
                launcher_cpus: int | None = None) -> tuple[int, str]:
    """(threads, why): the config's value, else SLURM's cpus-per-task, else OMP_NUM_THREADS, else the launcher's
    cpus_per_task, else cpus ÷ jobs."""
    if configured is not None:
        return configured, "threads"
    for variable in ("SLURM_CPUS_PER_TASK", "OMP_NUM_THREADS"):
        if environ.get(variable, "").isdigit() and int(environ[variable]) > 0:
            return int(environ[variable]), variable
    if launcher_cpus:  # submitit's local executor runs the jobs at once and exports no SLURM variable
        return launcher_cpus, "hydra.launcher.cpus_per_task"
    return max(1, cpus // jobs), f"{cpus} CPUs / {jobs} parallel job{'s' * (jobs > 1)}"


def launcher_share() -> tuple[int | None, int | None]:
    """(n_jobs, cpus_per_task) of the Hydra launcher running this job (joblib's, submitit's); None for each that it
    does not set, or outside Hydra."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None, None
    launcher = HydraConfig.get().launcher
    return launcher.get("n_jobs"), launcher.get("cpus_per_task")


def set_job_threads(configured: int | None) -> int:
    """Give torch this job's share of the CPUs (see job_threads) and log where the number came from."""
    cpus = available_cpus()
    n_jobs, launcher_cpus = launcher_share()
    threads, why = job_threads(configured, os.environ, cpus, parallel_jobs(n_jobs, cpus), launcher_cpus)
    torch.set_num_threads(threads)
    log.info("%d intra-op thread%s (%s)", threads, "s" * (threads > 1), why)
    return threads
