"""`python train.py` as a user runs it: a real subprocess, real generation, real files, rerun skips."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_train(*overrides: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "train.py"), *overrides],
        cwd=cwd,
        capture_output=True,
        check=False,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_data_stage_generates_indexes_and_is_skipped_on_rerun(tmp_path):
    overrides = [
        "stages=[data]",
        "env=dmc_reacher_easy",
        "env.image_size=32",
        "env.action_repeat=4",
        "data.source.num_episodes=2",
        "data.source.format=vd4rl_npz",
        "data.batch_size=16",
        f"paths.root_dir={tmp_path}",
        f"hydra.run.dir={tmp_path}/run",
    ]
    result = run_train(*overrides, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    marker = json.loads((tmp_path / "run" / "data" / "done.json").read_text())
    summary = marker["result"]
    assert summary["episodes"] == 2 and summary["transitions"] == 2 * 250
    assert summary["batch"]["obs"] == [[4, 9, 32, 32], "torch.uint8"]
    generated = Path(summary["dataset_path"])
    assert len(list(generated.glob("*-251.npz"))) == 2
    metadata = json.loads((generated / "metadata.json").read_text())
    assert metadata["source"]["quality"] == "expert" and metadata["return_mean"] > 300
    assert (tmp_path / "run" / "config.yaml").exists() and (tmp_path / "run" / "versions.json").exists()

    rerun = run_train(*overrides, cwd=tmp_path)
    assert rerun.returncode == 0
    assert "already finished" in rerun.stderr + rerun.stdout


@pytest.mark.slow
def test_unknown_stage_and_bad_dataset_path_fail_clearly(tmp_path):
    result = run_train(
        "stages=[data,fly]", f"paths.root_dir={tmp_path}", f"hydra.run.dir={tmp_path}/a", cwd=tmp_path
    )
    assert result.returncode != 0 and "unknown stage(s) ['fly']" in result.stderr
    result = run_train(
        "stages=[data]",
        "data=vd4rl",
        f"data.source.path.root={tmp_path}/missing",
        f"paths.root_dir={tmp_path}",
        f"hydra.run.dir={tmp_path}/b",
        cwd=tmp_path,
    )
    assert result.returncode != 0 and "dataset path does not exist" in result.stderr
