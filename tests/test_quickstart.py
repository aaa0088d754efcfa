"""`python train.py` as the README's main command runs it (the quickstart preset), at a tiny size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.helpers import TINY_PIPELINE

REPO = Path(__file__).resolve().parents[1]
STAGES = ["data", "agent", "latents", "diffusion", "sample", "finetune", "eval", "report"]


@pytest.mark.slow
def test_quickstart_runs_every_stage_and_prints_the_report(tmp_path):
    run = tmp_path / "run"
    command = [sys.executable, str(REPO / "train.py"), *TINY_PIPELINE, f"paths.root_dir={tmp_path}", f"run_dir={run}"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]

    assert [stage for stage in STAGES if (run / stage / "done.json").exists()] == STAGES
    config = OmegaConf.load(run / "config.yaml")
    assert config.variant == "aug_upsampled" and config.agent._target_.endswith("bc.BC")
    assert config.agent.std_schedule == 0.1 and config.image_size == 32
    evaluation = json.loads((run / "eval.json").read_text())
    assert evaluation["weights"].endswith("finetune/agent.pt") and set(evaluation["envs"]) == {"train", "hard"}
    references = evaluation["references"]
    assert references["random"]["episodes"] == 2 and references["dataset"]["episodes"] == 3
    assert references["dataset"]["return_mean"] > 300  # the scripted expert's data

    # The report table ends the output and is saved with its CSV and plots.
    assert "| aug_upsampled | 50 | 1 |" in output and "References on the training env" in output
    assert {"report.md", "results.csv", "returns.png", "js_heatmap.png"} <= {p.name for p in run.iterdir()}


@pytest.mark.slow
def test_make_train_compares_the_method_with_the_baseline_and_prints_the_answer(tmp_path):
    sweep = tmp_path / "sweep"
    command = [sys.executable, str(REPO / "train.py"), "-m", "sweep=baseline_vs_method", *TINY_PIPELINE,
               f"paths.root_dir={tmp_path}", f"hydra.sweep.dir={sweep}"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [OmegaConf.load(job / "config.yaml").variant for job in jobs] == ["baseline", "aug_upsampled"]
    report = (sweep / "report.md").read_text()
    assert "| baseline |" in report and "| aug_upsampled |" in report
    # The answer ends the output: both variants with intervals, G against the baseline, what one seed means.
    answer = output[output.rindex("sweep report: "):]
    assert "baseline" in answer and "aug_upsampled" in answer and "G vs baseline" in answer
    assert "CI over episodes of one seed" in answer
