"""Agents shared across runs: the key separates what shapes an agent, a second job trains nothing, same bytes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from synthvis.stages import agent_cache
from synthvis.stages.agent_cache import agent_cache_dir, cached_agent, publish_agent, restore_agent
from tests.helpers import compose_config, write_tiny_experiment

REPO = Path(__file__).resolve().parents[1]


def cache_dir(tmp_path: Path, *overrides: str) -> Path:
    return agent_cache_dir(compose_config(list(overrides), tmp_path))


def test_variants_that_train_the_same_agent_share_a_key_and_the_others_do_not(tmp_path):
    baseline, upsampled, augmented, method = (cache_dir(tmp_path, f"variant={v}") for v in
                                              ("baseline", "upsampled", "augmented", "aug_upsampled"))
    assert baseline == upsampled and augmented == method
    assert baseline != augmented  # augment=none against the paper's augmentations
    assert cache_dir(tmp_path, "variant=baseline", "seed=1") != baseline
    assert cache_dir(tmp_path, "variant=baseline", "agent_steps=7") != baseline
    assert cache_dir(tmp_path, "variant=baseline", "data.source.num_episodes=7") != baseline
    # Settings of later stages do not shape the agent.
    assert cache_dir(tmp_path, "variant=baseline", "diffusion.steps=7", "sample.num_samples=9") == baseline


def test_edited_synthvis_source_changes_the_key(tmp_path, monkeypatch):
    before = cache_dir(tmp_path)
    monkeypatch.setattr(agent_cache, "source_fingerprint", lambda: "edited")
    assert cache_dir(tmp_path) != before


def test_publish_then_restore_copies_the_weights_and_records_where_they_came_from(tmp_path):
    cfg = compose_config([], tmp_path)
    trained = tmp_path / "run_a" / "agent"
    trained.mkdir(parents=True)
    (trained / "agent.pt").write_bytes(b"weights")
    assert cached_agent(cfg) is None
    folder = publish_agent(cfg, trained, {"updates": 5, "weights": str(trained / "agent.pt")})
    assert cached_agent(cfg) == folder and not list(folder.parent.glob(".*"))  # no staging folder left
    assert publish_agent(cfg, trained, {"updates": 6}) == folder  # published once: the first stays
    target = tmp_path / "run_b" / "agent"
    result = restore_agent(folder, target)
    assert (target / "agent.pt").read_bytes() == b"weights" and not (target / "eval.json").exists()
    assert result["updates"] == 5 and result["weights"] == str(target / "agent.pt")
    assert result["reused"] == {"cache": str(folder), "trained_in": str(tmp_path / "run_a")}


@pytest.mark.slow
def test_a_second_sweep_job_with_the_same_agent_trains_nothing_and_ends_identical(tmp_path):
    write_tiny_experiment(tmp_path / "conf")
    train = [sys.executable, str(REPO / "train.py")]
    common = ["--config-dir", str(tmp_path / "conf"), "experiment=tiny", f"paths.root_dir={tmp_path}"]
    sweep = tmp_path / "sweep"
    result = subprocess.run([*train, "-m", *common, "variant=baseline,upsampled", f"hydra.sweep.dir={sweep}",
                             "stages=[data,agent,eval]"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=900, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    first, second = sorted(p for p in sweep.iterdir() if p.is_dir())
    trained = json.loads((first / "agent" / "done.json").read_text())["result"]
    reused = json.loads((second / "agent" / "done.json").read_text())["result"]
    assert "reused" not in trained
    assert reused["reused"]["trained_in"] == str(first) and reused["updates"] == trained["updates"]
    assert not (second / "agent" / "checkpoints").exists() and not (second / "tensorboard" / "agent").exists()
    assert (second / "agent" / "agent.pt").read_bytes() == (first / "agent" / "agent.pt").read_bytes()
    assert json.loads((second / "eval.json").read_text())["envs"] == json.loads((first / "eval.json").read_text())["envs"]
    assert "reusing the agent trained in" in (second / "train.log").read_text()
    # Training it again gives the same bytes: reuse changes no result.
    fresh = tmp_path / "fresh"
    result = subprocess.run([*train, *common, "variant=upsampled", "reuse_agent=false", f"hydra.run.dir={fresh}",
                             "stages=[data,agent]"], cwd=tmp_path, capture_output=True, text=True, timeout=900,
                            check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "reused" not in json.loads((fresh / "agent" / "done.json").read_text())["result"]
    assert (fresh / "agent" / "agent.pt").read_bytes() == (first / "agent" / "agent.pt").read_bytes()
