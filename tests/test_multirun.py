"""`python train.py -m latent_dim=32,64` as written: one collision-free job dir per value, each complete."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.helpers import write_tiny_experiment

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_latent_dim_sweep_runs_one_complete_job_per_value(tmp_path):
    # The tiny settings go in an experiment file of an extra config dir, as a user's own presets would.
    write_tiny_experiment(tmp_path / "conf")
    sweep = tmp_path / "sweep"
    command = [sys.executable, str(REPO / "train.py"), "-m", "--config-dir", str(tmp_path / "conf"),
               "experiment=tiny", "agent=drqbc", "latent_dim=32,64", f"paths.root_dir={tmp_path}",
               f"hydra.sweep.dir={sweep}"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=1800, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [job.name.split("_", 1)[0] for job in jobs] == ["0", "1"]
    for job, latent_dim in zip(jobs, (32, 64), strict=True):
        assert f"latent_dim={latent_dim}" in job.name
        layout = json.loads((job / "latents" / "layout.json").read_text())
        assert sum(field["size"] for field in layout["fields"]) == 4 * latent_dim + 2 + 1
        events = EventAccumulator(str(job / "tensorboard" / "agent"))
        events.Reload()
        assert "train/critic_loss" in events.Tags()["scalars"]
        assert (job / "report.md").exists() and (job / "eval.json").exists() and (job / "js.json").exists()
    # The multirun ended with one report of both jobs in the sweep dir (synthvis.sweep_report.SweepReport).
    assert "| aug_upsampled | 32 |" in (sweep / "report.md").read_text()
    assert "sweep report: " in result.stderr + result.stdout
    report = subprocess.run([sys.executable, "-m", "synthvis.evaluation.report", str(sweep)], capture_output=True, text=True,
                            check=False, cwd=REPO)
    assert report.returncode == 0, report.stderr[-2000:]
    assert "| aug_upsampled | 32 |" in report.stdout and "| aug_upsampled | 64 |" in report.stdout


@pytest.mark.slow
def test_a_failing_job_does_not_stop_the_sweep_and_a_rerun_resumes_it(tmp_path):
    sweep = tmp_path / "sweep"
    command = [sys.executable, str(REPO / "train.py"), "-m", "stages=[fly],[data]", "image_size=16",
               "env.action_repeat=8", "data.source.num_episodes=1", f"paths.root_dir={tmp_path}",
               f"hydra.sweep.dir={sweep}"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode != 0 and "unknown stage(s) ['fly']" in result.stderr  # reported at the end
    second = next(p for p in sweep.iterdir() if p.name.startswith("1_"))
    assert (second / "data" / "done.json").exists()  # the job after the failing one still ran

    rerun = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False)
    assert "[data] already finished" in rerun.stderr + rerun.stdout  # the same sweep dir resumes its jobs
