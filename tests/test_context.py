"""Stages hand values on in memory; a run whose stages each ran in a process of their own (reading what the
earlier ones wrote) ends with the same files."""

from __future__ import annotations

import json

import pytest
from omegaconf import open_dict

from synthvis.pipeline import run_pipeline
from synthvis.stages import TRAINING_STAGES
from tests.helpers import TINY_PIPELINE, compose_config

STAGES = ["data", "agent", "latents", "diffusion", "sample", "finetune", "eval"]
FILES = ["agent/agent.pt", "latents/latents.npy", "diffusion/model.pt", "synthetic/latents.npy", "finetune/agent.pt",
         "js.json"]


def tiny_config(tmp_path, stages: list[str]):
    cfg = compose_config([*TINY_PIPELINE, "reuse_agent=false", "analysis.paired_states=8",
                          f"stages=[{','.join(stages)}]"], tmp_path)
    with open_dict(cfg):
        cfg.pop("hydra")
    return cfg


@pytest.mark.slow
def test_one_process_and_one_process_per_stage_end_with_the_same_files(tmp_path):
    run_pipeline(tiny_config(tmp_path / "together", STAGES))
    for end in range(1, len(STAGES) + 1):  # a fresh context each time: every input comes from the run directory
        run_pipeline(tiny_config(tmp_path / "apart", STAGES[:end]), [f"stages=[{','.join(STAGES[:end])}]"])
    together, apart = tmp_path / "together" / "run", tmp_path / "apart" / "run"
    for name in FILES:
        assert (together / name).read_bytes() == (apart / name).read_bytes(), name
    returns = [json.loads((run / "eval.json").read_text())["envs"] for run in (together, apart)]
    assert returns[0] == returns[1]
    # A finished training stage keeps its weights, not the last.ckpt that only an unfinished one resumes from.
    for run in (together, apart):
        assert [path for stage in TRAINING_STAGES for path in (run / stage).rglob("*.ckpt")] == []
