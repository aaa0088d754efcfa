"""Checkpoints and weights that cannot be half-trusted: atomic writes, a real write failure, corrupt files set
aside, bounded disk, readable names, and a stage interrupted mid-training that resumes to the same weights."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import open_dict

from synthvis.core.latent_layout import dmc_layout
from synthvis.datamodules.latent_files import save_latents
from synthvis.stages import diffusion
from synthvis.stages.context import RunContext
from synthvis.utils.checkpoints import AtomicCheckpointIO, resumable_checkpoint
from synthvis.utils.files import atomic_write_text
from synthvis.utils.seeding import seed_stage
from tests.helpers import compose_config

pytestmark = pytest.mark.usefixtures("one_thread")
REPO = Path(__file__).resolve().parents[1]


def test_atomic_files_get_the_umask_mode_and_leave_no_temp_file(tmp_path):
    umask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "done.json", "{}")
        AtomicCheckpointIO().save_checkpoint({"step": 1}, tmp_path / "last.ckpt")
    finally:
        os.umask(umask)
    assert {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()} == {"done.json": 0o644, "last.ckpt": 0o644}


def test_a_write_that_fails_midway_keeps_the_previous_checkpoint(tmp_path):
    """A real failing write (the file-size limit, as a full disk, raises mid-write): last.ckpt stays the old one."""
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"step": 1}, path)
    script = textwrap.dedent(f"""
        import resource, signal, torch
        from synthvis.utils.checkpoints import AtomicCheckpointIO
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2**20, 2**20))
        try:
            AtomicCheckpointIO().save_checkpoint({{"step": 2, "w": torch.zeros(2**20)}}, {str(path)!r})
        except (OSError, RuntimeError) as error:
            print("failed:", error)
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120,
                            check=False)
    assert "failed:" in result.stdout, result.stdout + result.stderr
    assert torch.load(path, weights_only=False) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temp file left behind


def test_a_checkpoint_that_does_not_load_is_set_aside_for_the_previous_good_one(tmp_path, caplog):
    folder = tmp_path / "checkpoints"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": 4}, folder / "step_00000004.ckpt")
    io.save_checkpoint({"step": 8}, folder / "last.ckpt")
    (folder / "last.ckpt").write_bytes((folder / "last.ckpt").read_bytes()[:40])  # truncated
    assert resumable_checkpoint(folder) == str(folder / "step_00000004.ckpt")
    assert "does not load" in caplog.text
    assert sorted(p.name.split("-")[0] for p in folder.iterdir()) == ["last.ckpt.corrupt", "step_00000004.ckpt"]
    (folder / "step_00000004.ckpt").write_bytes(b"not a checkpoint")
    assert resumable_checkpoint(folder) is None  # nothing usable: the stage restarts
    assert resumable_checkpoint(tmp_path / "absent") is None


def latent_run(tmp_path: Path, name: str, *overrides: str):
    """A run directory holding real-format latents, and a config for a tiny diffusion stage on them."""
    cfg = compose_config(["diffusion.model.denoiser.width=32", "diffusion.steps=10", "diffusion.datamodule.batch_size=16",
                          "callbacks.model_checkpoint.every_n_train_steps=4", "trainer.val_check_interval=3",
                          "trainer.log_every_n_steps=1", *overrides], tmp_path / name)
    run_dir = tmp_path / name / "run"
    layout = dmc_layout(4, 2, discount=0.97)
    rng = np.random.default_rng(0)
    save_latents(run_dir / "latents", rng.uniform(-1, 1, (200, layout.dim)).astype(np.float32), layout)
    return cfg, run_dir


def run_diffusion(cfg, run_dir: Path) -> dict:
    """The diffusion stage as the pipeline runs it: seeded for the stage first."""
    seed_stage(cfg.seed, "diffusion")
    return diffusion.run(RunContext(cfg, run_dir))


class Interrupt(RuntimeError):
    """Stands in for a kill in the middle of training."""


class InterruptAt:
    def __init__(self, step: int) -> None:
        self.step = step

    def __call__(self, trainer, *args) -> None:
        if trainer.global_step == self.step:
            raise Interrupt


def state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


def test_an_interrupted_stage_resumes_to_the_same_weights_and_keeps_only_last_ckpt(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="synthvis")
    cfg, straight = latent_run(tmp_path, "straight")
    run_diffusion(cfg, straight)
    assert [p.name for p in (straight / "diffusion" / "checkpoints").iterdir()] == ["last.ckpt"]
    assert "checkpoints: ~" in caplog.text and "keeping last.ckpt only" in caplog.text

    cfg, resumed = latent_run(tmp_path, "resumed")
    from synthvis.callbacks.finite_guard import FiniteGuard
    monkeypatch.setattr(FiniteGuard, "on_train_batch_end", lambda self, trainer, *a: InterruptAt(6)(trainer))
    with pytest.raises(Interrupt):
        run_diffusion(cfg, resumed)
    assert torch.load(resumed / "diffusion" / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 4
    assert not (resumed / "diffusion" / "model.pt").exists()
    monkeypatch.undo()
    run_diffusion(cfg, resumed)
    expected, actual = state(straight / "diffusion" / "model.pt"), state(resumed / "diffusion" / "model.pt")
    assert expected.keys() == actual.keys()
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], rtol=0, atol=0, msg=key)


def test_kept_checkpoints_are_named_by_update(tmp_path):
    cfg, run_dir = latent_run(tmp_path, "run", "callbacks.model_checkpoint.save_top_k=-1")
    diffusion.run(RunContext(cfg, run_dir))
    names = sorted(p.name for p in (run_dir / "diffusion" / "checkpoints").iterdir())
    assert names == ["last.ckpt", "step_00000004.ckpt", "step_00000008.ckpt"]


def test_the_saved_config_rebuilds_the_diffusion_model(tmp_path):
    """config.yaml is saved resolved; the denoiser's width must not be an interpolation that resolved to null."""
    from omegaconf import OmegaConf

    from synthvis.pipeline import run_config
    cfg, run_dir = latent_run(tmp_path, "run")
    with open_dict(cfg):
        cfg.pop("hydra")  # as train.py sees it
        cfg.paths.output_dir = str(run_dir)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))  # as the pipeline saves it
    saved = run_config(cfg, run_dir, [f"run_dir={run_dir}"])
    assert diffusion.run(RunContext(saved, run_dir))["d_in"] == dmc_layout(4, 2).dim
