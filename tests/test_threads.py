"""Each job takes its share of the CPUs: the config, SLURM, OMP_NUM_THREADS, the launcher's cpus_per_task, else CPUs / jobs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from synthvis.utils.threads import available_cpus, job_threads, parallel_jobs

REPO = Path(__file__).resolve().parents[1]


def test_joblib_n_jobs_conventions():
    assert parallel_jobs(None, 16) == 1 and parallel_jobs(4, 16) == 4
    assert parallel_jobs(-1, 16) == 16 and parallel_jobs(-2, 16) == 15 and parallel_jobs(-40, 16) == 1


def test_the_thread_count_comes_from_the_first_source_that_sets_it():
    slurm = {"SLURM_CPUS_PER_TASK": "6", "OMP_NUM_THREADS": "3"}
    assert job_threads(5, slurm, 16, 4) == (5, "threads")
    assert job_threads(None, slurm, 16, 4) == (6, "SLURM_CPUS_PER_TASK")
    assert job_threads(None, {"OMP_NUM_THREADS": "3"}, 16, 4) == (3, "OMP_NUM_THREADS")
    assert job_threads(None, {"OMP_NUM_THREADS": ""}, 16, 4) == (4, "16 CPUs / 4 parallel jobs")
    assert job_threads(None, {}, 2, 2) == (1, "2 CPUs / 2 parallel jobs")
    assert job_threads(None, {}, 2, 5) == (1, "2 CPUs / 5 parallel jobs")  # never 0
    assert job_threads(None, {}, 8, 1) == (8, "8 CPUs / 1 parallel job")
    # submitit_local: the launcher's cpus_per_task, below the variables a cluster or the user sets
    assert job_threads(None, {}, 8, 1, launcher_cpus=2) == (2, "hydra.launcher.cpus_per_task")
    assert job_threads(None, slurm, 8, 1, launcher_cpus=2) == (6, "SLURM_CPUS_PER_TASK")


@pytest.mark.slow
def test_jobs_launched_two_at_a_time_each_take_half_the_cpus(tmp_path):
    environ = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK")}
    sweep = tmp_path / "sweep"
    command = [sys.executable, str(REPO / "train.py"), "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
               "seed=0,1", "stages=[data]", "image_size=32", "env.action_repeat=8", "data.source.num_episodes=2",
               f"paths.root_dir={tmp_path}", f"hydra.sweep.dir={sweep}"]
    result = subprocess.run(command, cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=600,
                            check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    jobs = [p for p in sweep.iterdir() if p.is_dir()]
    assert len(jobs) == 2
    for job in jobs:
        assert json.loads((job / "versions.json").read_text())["threads"] == max(1, available_cpus() // 2)
