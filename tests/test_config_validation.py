"""validate_config: every bad value of the composed config is reported at once, before any stage writes a file."""

from __future__ import annotations

import copy
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from omegaconf import DictConfig, OmegaConf, open_dict

from synthvis.config_validation import ConfigError, validate_config
from synthvis.envs.procgen import PROCGEN_GAMES
from synthvis.lightning_modules.components.drq_encoder import conv_output_size, min_image_size
from synthvis.stages import STAGES
from tests.helpers import compose_config

REPO = Path(__file__).resolve().parents[1]
PROCGEN = ["suite=procgen"]


@pytest.fixture(scope="module")
def dmc_config(tmp_path_factory: pytest.TempPathFactory) -> DictConfig:
    return compose_config([], tmp_path_factory.mktemp("dmc"))


@pytest.fixture(scope="module")
def procgen_config(tmp_path_factory: pytest.TempPathFactory) -> DictConfig:
    return compose_config(PROCGEN, tmp_path_factory.mktemp("procgen"))


def with_values(cfg: DictConfig, **values: Any) -> DictConfig:
    """A copy of `cfg` with dotted keys (written with `__` for `.`) set to `values`."""
    changed = copy.deepcopy(cfg)
    with open_dict(changed):
        for key, value in values.items():
            OmegaConf.update(changed, key.replace("__", "."), value, force_add=True)
    return changed


def problems_of(cfg: DictConfig) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        validate_config(cfg)
    assert str(caught.value).count("\n  ") == len(caught.value.problems)  # every problem is in the message
    return caught.value.problems


BAD_VALUES: list[tuple[str, Any]] = [
    ("seed", "abc"), ("seed", -1), ("seed", True), ("seed", 1.5), ("seed", 2**32),
    ("latent_dim", 0), ("latent_dim", -5), ("latent_dim", "abc"), ("latent_dim", True),
    ("image_size", 7), ("image_size", min_image_size() - 1), ("action_repeat", 0),
    ("env.image_size", 7), ("env.action_repeat", 0), ("env.frame_stack", 0),
    ("agent_steps", -1), ("diffusion.steps", 0), ("finetune.steps", "many"),
    ("sample.num_samples", 0), ("sample.batch_size", 0), ("latents.augmented_views", -1),
    ("latents.batch_size", 0),
    ("data.batch_size", 0), ("data.batch_size", 2.0), ("data.nstep", 0), ("data.frame_stack", 0),
    ("data.val_fraction", 1.0), ("data.val_fraction", -0.1), ("data.fdd_fraction", 1), ("data.gamma", 1.5),
    ("agent.lr", 0), ("agent.lr", -1e-3), ("agent.lr", math.nan), ("agent.lr", math.inf), ("agent.lr", "fast"),
    ("diffusion.model.lr", 0.0), ("finetune.module.lr", -3e-4),
    ("finetune.synthetic_ratio", 1.5), ("finetune.synthetic_ratio", -0.1), ("finetune.datamodule.batch_size", 0),
    ("eval.num_episodes", 0), ("eval.workers", -1), ("sample.sampler.num_steps", 0),
    ("diffusion.model.denoiser.width", 0), ("diffusion.model.denoiser.depth", 0),
    ("augment.p", 1.5), ("augment.p", -0.5),
    ("trainer.log_every_n_steps", 0), ("callbacks.model_checkpoint.every_n_train_steps", 0),
]


@pytest.mark.parametrize(("key", "value"), BAD_VALUES, ids=[f"{k}={v!r}" for k, v in BAD_VALUES])
def test_a_bad_value_is_reported_with_its_key_range_and_fix(dmc_config: DictConfig, key: str, value: Any) -> None:
    problems = problems_of(with_values(dmc_config, **{key.replace(".", "__"): value}))
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{key}={value!r}: ")
    assert f"(e.g. {key}=" in problems[0]  # the fix names the key with a valid value


def test_the_message_states_the_valid_range_and_an_example(dmc_config: DictConfig) -> None:
    assert problems_of(with_values(dmc_config, agent_steps=-1)) == [
        "agent_steps=-1: an int >= 1 (e.g. agent_steps=1000)"]
    assert problems_of(with_values(dmc_config, data__val_fraction=1.0)) == [
        "data.val_fraction=1.0: a number in [0, 1) (e.g. data.val_fraction=0.1)"]
    assert problems_of(with_values(dmc_config, agent__lr=0)) == [
        "agent.lr=0: a finite number > 0 (e.g. agent.lr=0.0003)"]
    [image] = problems_of(with_values(dmc_config, image_size=7))
    assert image.startswith(f"image_size=7: an int >= {min_image_size()} (e.g. image_size=84; the DrQ encoder")


def test_the_minimum_image_size_follows_the_encoder_geometry(dmc_config: DictConfig) -> None:
    smallest = min_image_size()
    assert conv_output_size(smallest) == 1 and conv_output_size(smallest - 1) == 0
    for size in (smallest, 32, 64, 84):
        validate_config(with_values(dmc_config, image_size=size))


GOOD_VALUES: list[tuple[str, Any]] = [
    ("seed", 0), ("seed", 2**32 - 1), ("data.val_fraction", 0.0), ("data.fdd_fraction", 0.05),
    ("finetune.synthetic_ratio", 0), ("finetune.synthetic_ratio", 1.0), ("augment.p", 0), ("augment.p", 1),
    ("latents.augmented_views", 0), ("agent.lr", 1), ("callbacks.model_checkpoint.every_n_train_steps", None),
    ("diffusion.datamodule.batch_size", None),
]


@pytest.mark.parametrize(("key", "value"), GOOD_VALUES, ids=[f"{k}={v!r}" for k, v in GOOD_VALUES])
def test_values_at_the_edges_of_their_range_pass(dmc_config: DictConfig, key: str, value: Any) -> None:
    validate_config(with_values(dmc_config, **{key.replace(".", "__"): value}))


def test_every_bad_value_is_reported_at_once(tmp_path: Path) -> None:
    cfg = compose_config(["seed=abc", "latent_dim=0", "agent_steps=-1", "data.val_fraction=1.0", "augment.p=2",
                          "env.task=sprint"], tmp_path)
    problems = problems_of(cfg)
    assert [problem.split("=")[0] for problem in problems] == [
        "seed", "latent_dim", "agent_steps", "data.val_fraction", "augment.p", "env.task"]
    assert problems[0].startswith("seed='abc': an int in [0, 4294967295]")


def test_a_value_copied_by_interpolation_is_reported_once_under_the_key_the_user_sets(
        dmc_config: DictConfig) -> None:
    assert OmegaConf.is_interpolation(dmc_config.agent, "latent_dim")
    assert OmegaConf.is_interpolation(dmc_config.env, "image_size")
    problems = problems_of(with_values(dmc_config, latent_dim=0, image_size=7))
    assert [problem.split("=")[0] for problem in problems] == ["latent_dim", "image_size"]


def test_interpolated_values_are_checked_resolved(dmc_config: DictConfig) -> None:
    cfg = with_values(dmc_config, zero=0, eval__num_episodes="${zero}", data__batch_size="${latent_dim}")
    assert problems_of(cfg) == ["eval.num_episodes=0: an int >= 1 (e.g. eval.num_episodes=10)"]
    [broken] = problems_of(with_values(dmc_config, data__batch_size="${no_such_key}"))
    assert broken.startswith("data.batch_size: cannot be resolved") and "no_such_key" in broken


def test_values_a_stage_fills_later_are_skipped(dmc_config: DictConfig) -> None:
    for key in ("agent.obs_shape", "agent.action_dim", "finetune.module.base_updates", "diffusion.datamodule.data"):
        assert OmegaConf.is_missing(OmegaConf.select(dmc_config, key.rsplit(".", 1)[0]), key.rsplit(".", 1)[1])
    validate_config(dmc_config)
    validate_config(with_values(dmc_config, agent_steps="???"))


def test_unknown_dm_control_domain_and_task_list_the_valid_names(dmc_config: DictConfig) -> None:
    [domain] = problems_of(with_values(dmc_config, env__domain="cheetahh"))
    assert domain.startswith("env.domain='cheetahh': a dm_control domain: ") and "cheetah, " in domain
    assert "walker" in domain and "point_mass" in domain
    [task] = problems_of(with_values(dmc_config, env__domain="point_mass", env__task="sprint"))
    assert task == "env.task='sprint': a task of dm_control domain 'point_mass': easy, hard (e.g. env.task=easy)"
    validate_config(with_values(dmc_config, env__domain="cheetah", env__task="run"))


def test_unknown_procgen_game_lists_the_games(procgen_config: DictConfig) -> None:
    [game] = problems_of(with_values(procgen_config, env__game="mazee"))
    assert game == f"env.game='mazee': a Procgen game: {', '.join(PROCGEN_GAMES)} (e.g. env.game=coinrun)"


def test_analysis_binning_is_one_of_the_two_modes(dmc_config: DictConfig) -> None:
    assert dmc_config.analysis.binning == "quantile"
    validate_config(with_values(dmc_config, analysis__binning="width"))
    [problem] = problems_of(with_values(dmc_config, analysis__binning="equal"))
    assert problem == ("analysis.binning='equal': one of quantile, width (the latent JS divergence's bin edges; "
                       "e.g. analysis.binning=quantile)")


@pytest.mark.parametrize("variant", ["baseline", "upsampled", "fdd"])
def test_a_variant_on_original_pixels_refuses_an_augmentation_choice(variant: str, tmp_path: Path) -> None:
    validate_config(compose_config([f"variant={variant}"], tmp_path))
    validate_config(compose_config([f"variant={variant}", "augment=none"], tmp_path))
    [problem] = problems_of(compose_config([f"variant={variant}", "augment=all"], tmp_path))
    assert problem.startswith(f"variant={variant} trains on the original pixels, but augmentation is on (rotation, ")
    assert problem.endswith("use variant=augmented or aug_upsampled")
    validate_config(compose_config(["variant=augmented", "augment=all"], tmp_path))


def test_matmul_precision_is_one_of_torchs_settings(dmc_config: DictConfig) -> None:
    assert dmc_config.matmul_precision == "high"  # TF32 matmuls on CUDA; CPU products stay fp32
    validate_config(with_values(dmc_config, matmul_precision="highest"))
    [problem] = problems_of(with_values(dmc_config, matmul_precision="tf32"))
    assert problem == ("matmul_precision='tf32': one of highest, high, medium (torch.set_float32_matmul_precision; "
                       "e.g. matmul_precision=high)")


def test_dm_control_only_knobs_are_not_checked_for_procgen(procgen_config: DictConfig) -> None:
    validate_config(with_values(procgen_config, image_size=7, action_repeat=0))
    assert problems_of(with_values(procgen_config, agent_steps=0, data__nstep=0)) == [
        "agent_steps=0: an int >= 1 (e.g. agent_steps=1000)", 
        "data.nstep=0: an int >= 1 (e.g. data.nstep=3; DrQ+BC uses 3, discrete CQL 1)"]


def test_validation_takes_well_under_a_second(dmc_config: DictConfig) -> None:
    validate_config(dmc_config)  # the first call imports dm_control's task registry
    started = time.perf_counter()
    validate_config(dmc_config)
    assert time.perf_counter() - started < 0.25


@pytest.mark.parametrize(("override", "message"), [("agent_steps=-1", "agent_steps=-1: an int >= 1"),
                                                   ("env.domain=nosuch", "env.domain='nosuch': a dm_control domain")])
def test_train_py_refuses_a_bad_value_before_writing_anything(tmp_path: Path, override: str, message: str) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(REPO / "train.py"), override, f"run_dir={tmp_path}/r", f"paths.data_dir={tmp_path}/cache"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode != 0
    assert time.monotonic() - started < 60  # Python and Hydra start-up; no stage ran
    assert message in result.stderr
    assert not (tmp_path / "cache").exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["r"]  # nor logs/ or a data cache in the cwd
    run_files = {path.name for path in (tmp_path / "r").iterdir()}
    assert not run_files & set(STAGES) and "config.yaml" not in run_files  # only Hydra's own .hydra/ and log
