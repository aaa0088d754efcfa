"""Every option of every config group composes and instantiates; the sweep knobs reach their consumers."""

from __future__ import annotations

import functools

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from synthvis.datamodules.pixel import PixelDataModule
from tests.helpers import CONF_DIR, compose_config


def group_options(group: str) -> list[str]:
    """Selectable options of a config group (bases under base/ are building blocks, not options)."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


ENV_DATA_PAIRS = [(env, "generated_procgen" if env == "procgen" else "generated_dmc") for env in group_options("env")]


@pytest.mark.parametrize(("env", "data"), ENV_DATA_PAIRS)
def test_every_env_composes_and_instantiates_a_factory(env, data, tmp_path):
    cfg = compose_config([f"env={env}", f"data={data}"], tmp_path)
    factory = instantiate(cfg.env)
    assert isinstance(factory, functools.partial)
    datamodule = instantiate(cfg.data)
    assert isinstance(datamodule, PixelDataModule)


@pytest.mark.parametrize("data", group_options("data"))
def test_every_data_option_instantiates(data, tmp_path):
    env = "procgen" if data in ("generated_procgen", "gen_dgrl") else "dmc_cheetah_run"
    cfg = compose_config([f"data={data}", f"env={env}"], tmp_path)
    datamodule = instantiate(cfg.data)
    assert isinstance(datamodule, PixelDataModule)
    assert datamodule.cache_dir == tmp_path / "data_cache"


def test_resolved_run_and_sweep_dirs_are_safe(tmp_path):
    cfg = compose_config(["latent_dim=64"], tmp_path)
    for key in ("run.dir", "sweep.dir"):
        path = OmegaConf.select(cfg.hydra, key)
        assert all(ch.isalnum() or ch in "/._-" for ch in path), path


def test_frame_stack_follows_the_env(tmp_path):
    cfg = compose_config(["env=dmc_walker_walk", "env.frame_stack=4", "env.image_size=64"], tmp_path)
    assert cfg.data.frame_stack == 4
    assert instantiate(cfg.data).frame_stack == 4
