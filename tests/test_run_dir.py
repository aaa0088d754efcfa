"""Which directory a run writes to, and which config an existing run directory continues with."""

from __future__ import annotations

import os

import pytest
from omegaconf import OmegaConf, open_dict

from synthvis.pipeline import run_config
from synthvis.resolvers import run_directory
from tests.helpers import compose_config


def started_run(root, name: str, mtime: float):
    """A run directory as the pipeline leaves it at start: config.yaml written."""
    run = root / name
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("seed: 0\n")
    os.utime(run / "config.yaml", (mtime, mtime))
    return run


def test_run_dir_resume_and_fresh_runs_choose_their_directory(tmp_path):
    assert run_directory("/data/my_run", True, str(tmp_path), "fresh") == "/data/my_run"
    assert run_directory(None, False, str(tmp_path), "2026-01-01") == f"{tmp_path}/2026-01-01"
    started_run(tmp_path, "b_older_by_name_newer_by_start", 2000)
    started_run(tmp_path, "c_started_first", 1000)
    (tmp_path / "d_no_config").mkdir()  # a run that crashed before writing config.yaml is not resumable
    assert run_directory(None, True, str(tmp_path), "fresh") == str(tmp_path / "b_older_by_name_newer_by_start")


def test_resume_without_a_previous_run_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no run to resume under .*run_dir=<dir>"):
        run_directory(None, True, str(tmp_path / "runs"), "fresh")


def test_composed_run_dir_and_resume_reach_hydra(tmp_path):
    cfg = compose_config([f"run_dir={tmp_path}/mine"], tmp_path)
    assert cfg.hydra.run.dir == f"{tmp_path}/mine"
    started_run(tmp_path / "logs" / "runs", "2026-11-22_10-00-00_000000", 1000)
    resumed = compose_config(["resume=true"], tmp_path)
    assert resumed.hydra.run.dir == str(tmp_path / "logs" / "runs" / "2026-11-22_10-00-00_000000")


def job_config(overrides: list[str], tmp_path):
    """The config train.py's main receives: composed, without the hydra node."""
    cfg = compose_config(overrides, tmp_path)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def saved_run(tmp_path, overrides: list[str]):
    """A run directory holding the resolved config of `overrides`, as run_pipeline saves it."""
    cfg = job_config(overrides, tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    return run


def test_a_new_run_uses_the_composed_config(tmp_path):
    cfg = job_config(["latent_dim=64"], tmp_path)
    assert run_config(cfg, tmp_path / "new_run", ["latent_dim=64"]) is cfg


def test_rerun_without_overrides_continues_with_the_saved_config(tmp_path):
    run = saved_run(tmp_path, ["experiment=paper_vd4rl_cheetah_run", "seed=3"])
    default = job_config([], tmp_path)  # what `python train.py run_dir=<run>` composes
    cfg = run_config(default, run, [f"run_dir={run}"])
    assert cfg.seed == 3 and cfg.agent_steps == 550000 and cfg.image_size == 84
    assert cfg.paths.output_dir == str(run)

    fewer = job_config(["stages=[data,agent]"], tmp_path)
    cfg = run_config(fewer, run, ["resume=true", "stages=[data,agent]"])
    assert list(cfg.stages) == ["data", "agent"] and cfg.seed == 3


def test_rerun_with_the_same_overrides_is_accepted_and_changed_ones_are_refused(tmp_path):
    run = saved_run(tmp_path, ["latent_dim=64", "seed=1"])
    same = job_config(["latent_dim=64", "seed=1"], tmp_path)
    assert run_config(same, run, ["latent_dim=64", "seed=1", f"hydra.run.dir={run}"]) is same

    changed = job_config(["latent_dim=128", "seed=1"], tmp_path)
    with pytest.raises(ValueError, match=r"another config.*\n  agent\.latent_dim: 64 -> 128") as error:
        run_config(changed, run, ["latent_dim=128", "seed=1"])
    assert "latent_dim: 64 -> 128" in str(error.value) and "seed" not in str(error.value)


def test_a_run_saved_with_another_config_layout_is_refused_by_name(tmp_path):
    run = saved_run(tmp_path, [])
    saved = OmegaConf.load(run / "config.yaml")
    saved.pop("latents")
    saved.steps = {"agent": 1000}  # as an older synthvis wrote it
    (run / "config.yaml").write_text(OmegaConf.to_yaml(saved))
    with pytest.raises(ValueError, match=r"another config layout \(it has no latents\).*start a new run"):
        run_config(job_config([], tmp_path), run, [f"run_dir={run}"])


def test_a_moved_run_writes_into_its_new_directory(tmp_path):
    run = saved_run(tmp_path, [])
    saved = OmegaConf.load(run / "config.yaml")
    old = saved.paths.output_dir
    assert saved.logger.tensorboard.save_dir == old  # saved resolved: the old directory, written out
    moved = run.rename(tmp_path / "moved")
    cfg = run_config(job_config([], tmp_path), moved, [f"run_dir={moved}"])
    assert cfg.paths.output_dir == cfg.logger.tensorboard.save_dir == str(moved)
    assert cfg.paths.data_dir == saved.paths.data_dir  # paths outside the run stay
