"""Every option of every config group composes, validates and instantiates; the sweep knobs reach their consumers."""

from __future__ import annotations

import functools
import re

import pytest
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from synthvis.config_validation import validate_config
from synthvis.datamodules.formats import DatasetError, iter_episodes
from synthvis.datamodules.pixel import PixelDataModule
from synthvis.datamodules.sources import LocalDataset
from synthvis.envs.procgen import PROCGEN_GAMES
from tests.helpers import CONF_DIR, compose_config


def group_options(group: str) -> list[str]:
    """Selectable options of a config group (bases under base/ are building blocks, not options)."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


ENV_DATA_PAIRS = [(env, "generated_procgen" if env == "procgen" else "generated_dmc") for env in group_options("env")]


@pytest.mark.parametrize(("env", "data"), ENV_DATA_PAIRS)
def test_every_env_composes_and_instantiates_a_factory(env, data, tmp_path):
    cfg = compose_config([f"env={env}", f"data={data}"], tmp_path)
    validate_config(cfg)
    factory = instantiate(cfg.env)
    assert isinstance(factory, functools.partial)
    datamodule = instantiate(cfg.data)
    assert isinstance(datamodule, PixelDataModule)


@pytest.mark.parametrize("data", group_options("data"))
def test_every_data_option_instantiates(data, tmp_path):
    env = "procgen" if data in ("generated_procgen", "gen_dgrl") else "dmc_cheetah_run"
    cfg = compose_config([f"data={data}", f"env={env}"], tmp_path)
    validate_config(cfg)
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


def all_group_options() -> list[tuple[str, str]]:
    """(group, option) for every selectable config file (bases under base/ excluded)."""
    groups = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir())
    return [(group, option) for group in groups for option in group_options(group)]


# Procgen pieces go together: each Procgen option is composed inside suite=procgen.
PROCGEN_OPTIONS = {("env", "procgen"), ("data", "generated_procgen"), ("data", "gen_dgrl"), ("agent", "cql"),
                   ("eval", "procgen")}


def companions(group: str, option: str) -> list[str]:
    """The overrides an option needs beside it to make sense."""
    return ["suite=procgen"] if (group, option) in PROCGEN_OPTIONS else []


def test_one_override_switches_the_suite(tmp_path):
    targets = ("env._target_", "data.source._target_", "agent._target_", "eval.test_envs._target_")
    picked = {}
    for suite in ("dmc", "procgen"):
        cfg = compose_config([f"suite={suite}"], tmp_path)
        validate_config(cfg)
        picked[suite] = [OmegaConf.select(cfg, key).rsplit(".", 1)[-1] for key in targets]
    assert picked == {"dmc": ["DMCPixelEnv", "GeneratedDMCDataset", "BC", "dmc_test_envs"],
                      "procgen": ["ProcgenPixelEnv", "GeneratedProcgenDataset", "DiscreteCQL", "procgen_test_envs"]}
    assert compose_config([], tmp_path).hydra.runtime.choices.suite == "dmc"


# Objects built from values a stage has at run time (a trained agent, the latents); tests/test_finetune.py and
# tests/test_latents.py build them.
NEEDS_STAGE_VALUES = {"finetune.module", "finetune.datamodule", "diffusion.datamodule"}
# Values a stage fills in at run time.
RUNTIME_VALUES = {"agent": ["agent.obs_shape=[9,64,64]", "agent.action_dim=6"], "diffusion": ["diffusion.model.d_in=207"]}


@pytest.mark.parametrize(("group", "option"), all_group_options())
def test_every_option_of_every_group_composes_and_builds(group, option, tmp_path):
    import torch

    overrides = [f"{group}={option}", *companions(group, option), *RUNTIME_VALUES.get(group, [])]
    cfg = compose_config(overrides, tmp_path)
    validate_config(cfg)  # every preset and option is valid as shipped
    resolvable = {key: value for key, value in cfg.items() if key != "hydra"}  # hydra.job.* exist only at run time
    OmegaConf.to_container(OmegaConf.create(resolvable), resolve=True, throw_on_missing=False)
    node = cfg.get(group) if group not in ("hydra", "experiment", "variant", "suite", "sweep") else None
    if node is None:
        return
    # A group is one object (env, agent, ...) or a stage's settings holding several (diffusion.model, ...).
    parts = {group: node} if "_target_" in node else {
        f"{group}.{name}": child for name, child in node.items() if isinstance(child, DictConfig) and "_target_" in child}
    if group == "trainer" and node.accelerator == "gpu" and not torch.cuda.is_available():
        return  # a GPU Trainer cannot be built on this machine; composing it is checked above
    for key, part in parts.items():
        if key in NEEDS_STAGE_VALUES:
            continue
        assert instantiate(part) is not None or group == "augment", key


@pytest.mark.parametrize("variant", group_options("variant"))
def test_variants_set_stages_and_augmentation(variant, tmp_path):
    cfg = compose_config([f"variant={variant}"], tmp_path)
    upsampling = variant in ("upsampled", "aug_upsampled")  # fdd: the baseline on a 5% fixed-distraction mix
    assert ("diffusion" in cfg.stages) == upsampling and list(cfg.stages[-2:]) == ["eval", "report"]
    augmented = variant in ("augmented", "aug_upsampled")
    assert (instantiate(cfg.augment) is not None) == augmented
    assert cfg.hydra.runtime.choices.augment == ("paper" if augmented else "none")  # a group choice, not p = 0
    assert cfg.latents.augmented_views == (1 if variant == "aug_upsampled" else 0)


def test_sweep_presets_list_their_jobs(tmp_path):
    comparison = compose_config(["sweep=comparison"], tmp_path).hydra.sweeper.params
    assert comparison == {"variant": "baseline,augmented,upsampled,aug_upsampled", "seed": "range(5)"}
    assert compose_config(["sweep=baseline_vs_method"], tmp_path).hydra.sweeper.params == {
        "variant": "baseline,aug_upsampled"}
    assert compose_config([], tmp_path).hydra.sweeper.params is None  # a plain run sweeps nothing


def test_the_fdd_variant_mixes_in_fixed_distraction_data(tmp_path):
    cfg = compose_config(["variant=fdd"], tmp_path)
    assert cfg.data.fdd_fraction == 0.05 and instantiate(cfg.augment) is None and "diffusion" not in cfg.stages
    assert instantiate(cfg.data.fdd_source).distraction["mode"] == "fixed_easy"


def test_latent_dim_reaches_every_consumer(tmp_path):
    cfg = compose_config(["latent_dim=128"], tmp_path)
    assert cfg.agent.latent_dim == 128
    cql = compose_config(["latent_dim=32", "suite=procgen"], tmp_path)
    assert cql.agent.latent_dim == 32


def test_sweep_job_names_stay_short_and_distinct():
    from synthvis.resolvers import MAX_DIRNAME, bounded_dirname

    assert bounded_dirname("latent_dim=32") == "latent_dim=32"
    long_a = ",".join(f"key{i}=value{i}" for i in range(40)) + ",latent_dim=32"
    long_b = long_a.replace("latent_dim=32", "latent_dim=64")
    assert len(bounded_dirname(long_a)) <= MAX_DIRNAME and bounded_dirname(long_a) != bounded_dirname(long_b)
    assert "/" not in bounded_dirname("data.source.path.root=/data/vd4rl")


def test_shortened_sweep_job_names_keep_every_override():
    from synthvis.resolvers import MAX_DIRNAME, bounded_dirname

    # As Hydra sorts them: the swept seed comes after two long overrides that alone exceed the limit.
    common = ("data.source.path.root=/data/vd4rl/main/cheetah_run/medium_replay/84px,"
              "eval.test_envs.modes=[fixed_easy,fixed_medium,fixed_hard,easy,medium,hard],latent_dim=128,")
    first, second = bounded_dirname(common + "seed=3"), bounded_dirname(common + "seed=4")
    assert len(common) > MAX_DIRNAME and first != second
    assert len(first) <= MAX_DIRNAME and len(second) <= MAX_DIRNAME
    assert ",seed=3-" in first and ",seed=4-" in second and ",latent_dim=128," in first
    # the long ones keep their key (leading parts abbreviated) and both ends of their value
    assert first.startswith("d.s.p.root=_data_vd4rl") and "84px,e.t.modes=[fixed_easy," in first
    assert "medium,hard]," in first and "~" in first


@pytest.mark.parametrize("game", PROCGEN_GAMES)
def test_every_procgen_game_has_a_paper_preset(game, tmp_path):
    cfg = compose_config([f"experiment=paper_procgen_{game}"], tmp_path)
    validate_config(cfg)
    assert cfg.env.game == game and cfg.data.source.path.game == game
    assert cfg.agent._target_.endswith("DiscreteCQL") and cfg.trainer.accelerator == "gpu"


def test_missing_dataset_hints_name_keys_that_exist(tmp_path):
    configs = [compose_config(["data=vd4rl", "env=dmc_cheetah_run"], tmp_path),
               compose_config(["data=gen_dgrl", *companions("data", "gen_dgrl")], tmp_path)]
    for fail in (LocalDataset(tmp_path / "missing").prepare, lambda: list(iter_episodes(tmp_path / "missing"))):
        with pytest.raises(DatasetError) as caught:
            fail()
        named = set(re.findall(r"\bdata(?:\.\w+)+", str(caught.value)))
        assert "data.source.path.root" in named
        for key in named:
            assert any(OmegaConf.select(cfg, key, default=None) is not None for cfg in configs), key
