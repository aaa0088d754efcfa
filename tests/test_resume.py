"""Killed and resumed runs end with the same results as uninterrupted ones (real subprocesses, real SIGKILL)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import TINY_PIPELINE

REPO = Path(__file__).resolve().parents[1]
# Checkpoints every 4 updates: a kill after update 6 resumes from update 4 and redoes updates 5 and 6.
CHECKPOINTED = [*TINY_PIPELINE, "callbacks.model_checkpoint.every_n_train_steps=4"]
# Inside each training stage, and at each boundary around it: before its first update (after the previous stage's
# marker), after its last update (before its weights and marker are written).
KILLS = [f"{stage}-{point}" for stage, mid in (("agent", 6), ("diffusion", 10), ("finetune", 6))
         for point in ("start", f"step-{mid}", "end")]
# A half-written last.ckpt (as a full disk leaves one) after this kill.
CORRUPTED = "diffusion-step-10"
# What each stage leaves for the next: a difference here names the stage that stopped being reproducible.
ARTIFACTS = ["agent/agent.pt", "latents/latents.npy", "diffusion/model.pt", "synthetic/latents.npy",
             "finetune/agent.pt"]


def train(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(REPO / "train.py"), *overrides]
    return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900, check=False)


def load(path: Path) -> dict[str, np.ndarray]:
    if path.suffix == ".npy":
        return {"array": np.load(path)}
    return {k: v.numpy() for k, v in torch.load(path, map_location="cpu", weights_only=False)["state_dict"].items()}


@pytest.mark.slow
def test_a_run_killed_anywhere_and_resumed_ends_as_an_uninterrupted_one(tmp_path):
    straight = train(tmp_path, *CHECKPOINTED, f"paths.root_dir={tmp_path}", f"run_dir={tmp_path / 'straight'}")  # cold data cache
    assert straight.returncode == 0, straight.stderr[-4000:]

    triggers = tmp_path / "triggers"
    triggers.mkdir()
    for kill in KILLS:
        (triggers / kill).touch()
    killed = tmp_path / "killed"
    result = train(tmp_path, *CHECKPOINTED, f"paths.root_dir={tmp_path}", f"run_dir={killed}", "reuse_agent=false",
                   "+callbacks.sigkill._target_=tests.kill.SigkillAt",
                   f"+callbacks.sigkill.folder={triggers}")  # warm data cache
    for kill in KILLS:
        assert result.returncode == -signal.SIGKILL, f"expected a SIGKILL at {kill}:\n{result.stderr[-4000:]}"
        assert not (triggers / kill).exists()
        last = killed / kill.split("-")[0] / "checkpoints" / "last.ckpt"
        if kill == CORRUPTED:
            last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
        result = train(tmp_path, f"run_dir={killed}")  # the saved config alone, triggers included
        output = result.stdout + result.stderr
        if kill == CORRUPTED:  # set aside with a warning; the stage restarts instead of failing on it forever
            assert f"checkpoint {last} does not load" in output and "resuming from" not in output, output[-4000:]
            assert [p.name.split("-")[0] for p in last.parent.glob("last.ckpt.corrupt-*")] == ["last.ckpt.corrupt"]
        elif "-step-" in kill:  # resumed from the checkpoint before the kill, not restarted
            assert f"resuming from {last}" in output, output[-4000:]
    assert result.returncode == 0, result.stderr[-4000:]

    for artifact in ARTIFACTS:
        expected, actual = load(tmp_path / "straight" / artifact), load(killed / artifact)
        assert expected.keys() == actual.keys(), artifact
        for key in expected:
            np.testing.assert_array_equal(actual[key], expected[key], err_msg=f"{artifact}: {key}")
    expected, actual = (json.loads((run / "eval.json").read_text())["envs"] for run in (tmp_path / "straight", killed))
    assert actual == expected
