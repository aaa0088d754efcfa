"""One pass over the composed config before any stage runs: every bad value is reported at once, with its fix.

The checks are a table of rules (key, type, range) applied to whichever of those keys the composed config has
(config groups differ: dm_control and Procgen envs, agents, samplers), plus the env registries. Values are read
resolved, so `${...}` interpolations are checked where they land; values still `???` are filled in by a stage
later and are skipped.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import (
    InterpolationResolutionError,
    InterpolationToMissingValueError,
    MissingMandatoryValue,
)

from synthvis.envs.procgen import PROCGEN_GAMES
from synthvis.envs.rendering import RenderingUnavailableError, import_suite
from synthvis.lightning_modules.components.drq_encoder import min_image_size
from synthvis.metrics.js_divergence import BINNINGS
from synthvis.utils.distributed import relaunches_command_line

log = logging.getLogger(__name__)

_ABSENT = object()
_INTERPOLATION = re.compile(r"^\$\{([A-Za-z_][\w.]*)\}$")  # a plain `${other.key}`, not a resolver call
MATMUL_PRECISIONS = ("highest", "high", "medium")
MAX_SEED = 2**32 - 1  # numpy's and Lightning's seeds are 32-bit unsigned


class ConfigError(ValueError):
    """The composed config holds invalid values; `problems` lists each as `key=value: valid (fix)`."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        listed = "\n  ".join(problems)
        super().__init__(f"invalid config ({len(problems)} problem{'s' * (len(problems) > 1)}):\n  {listed}")


@dataclass(frozen=True)
class Rule:
    """What one config key must hold. A key ending in `.*` applies the rule to every child of that node."""

    key: str
    kind: type  # int, or float (ints are accepted as floats; never bools)
    low: float | None = None
    high: float | None = None
    bounds: str = "[]"  # whether low / high are inclusive: "[]", "[)", "(]" or "()"
    example: Any = None  # a valid value, shown in the fix
    env: str | None = None  # "dmc" or "procgen": checked only with that kind of env
    nullable: bool = False  # null is valid too (the component's own default)
    why: str = ""  # extra context for the fix

    def valid(self) -> str:
        """What a valid value is, in words."""
        bounded = self.low is not None and self.high is not None
        kind = "an int" if self.kind is int else "a number" if bounded else "a finite number"
        if bounded:
            text = f"{kind} in {self.bounds[0]}{self.low}, {self.high}{self.bounds[1]}"
        elif self.low is not None:
            text = f"{kind} {'>=' if self.bounds[0] == '[' else '>'} {self.low}"
        elif self.high is not None:
            text = f"{kind} {'<=' if self.bounds[1] == ']' else '<'} {self.high}"
        else:
            text = kind
        return f"{text} or null" if self.nullable else text

    def accepts(self, value: Any) -> bool:
        """Whether `value` has the right type and lies in range."""
        if value is None:
            return self.nullable
        if isinstance(value, bool) or not isinstance(value, (int, float) if self.kind is float else int):
            return False
        if not math.isfinite(value):
            return False
        if self.low is not None and (value < self.low or (self.bounds[0] == "(" and value == self.low)):
            return False
        return self.high is None or not (value > self.high or (self.bounds[1] == ")" and value == self.high))


# The variants whose agent sees the original pixels (conf/variant/*.yaml with `override /augment: none`).
UNAUGMENTED_VARIANTS = ("baseline", "upsampled", "fdd")
_MIN_IMAGE = min_image_size()
_IMAGE_WHY = f"the DrQ encoder's convolutions leave no pixels below {_MIN_IMAGE} px; V-D4RL uses 64 or 84"

RULES: tuple[Rule, ...] = (
    Rule("seed", int, 0, MAX_SEED, example=0),
    Rule("threads", int, 1, example=2, nullable=True, why="null = this job's share of the CPUs"),
    Rule("latent_dim", int, 1, example=50),
    Rule("image_size", int, _MIN_IMAGE, example=84, env="dmc", why=_IMAGE_WHY),
    Rule("action_repeat", int, 1, example=2, env="dmc"),
    Rule("agent_steps", int, 1, example=1000),
    Rule("diffusion.steps", int, 1, example=1000),
    Rule("finetune.steps", int, 1, example=1000),
    Rule("env.image_size", int, _MIN_IMAGE, example=84, env="dmc", why=_IMAGE_WHY),
    Rule("env.action_repeat", int, 1, example=2, env="dmc"),
    Rule("env.frame_stack", int, 1, example=3),
    Rule("env.num_envs", int, 1, example=1),
    Rule("data.batch_size", int, 1, example=256),
    Rule("data.nstep", int, 1, example=3, why="DrQ+BC uses 3, discrete CQL 1"),
    Rule("data.frame_stack", int, 1, example=3),
    Rule("data.gamma", float, 0, 1, example=0.99),
    Rule("data.val_fraction", float, 0, 1, "[)", example=0.1),
    Rule("data.fdd_fraction", float, 0, 1, "[)", example=0.05),
    Rule("data.num_workers", int, 0, example=0),
    Rule("data.source.num_episodes", int, 1, example=30),
    Rule("data.source.num_transitions", int, 1, example=10000),
    Rule("data.source.episodes_per_file", int, 1, example=10),
    Rule("data.source.num_envs", int, 1, example=8),
    Rule("data.fdd_source.num_episodes", int, 1, example=2),
    Rule("augment.p", float, 0, 1, example=0.5),
    Rule("agent.lr", float, 0, bounds="()", example=3.0e-4),
    Rule("agent.hidden_dim", int, 1, example=1024),
    Rule("agent.target_update_every", int, 1, example=1000),
    Rule("sample.num_samples", int, 1, example=10000),
    Rule("sample.batch_size", int, 1, example=2048),
    Rule("latents.batch_size", int, 1, example=1024),
    Rule("latents.augmented_views", int, 0, example=1),
    Rule("latents.view_p", float, 0, 1, "(]", example=1.0),
    Rule("diffusion.datamodule.batch_size", int, 1, example=256, nullable=True),
    Rule("diffusion.datamodule.val_fraction", float, 0, 1, "[)", example=0.05),
    Rule("diffusion.model.lr", float, 0, bounds="()", example=3.0e-4),
    Rule("diffusion.model.denoiser.width", int, 1, example=1024),
    Rule("diffusion.model.denoiser.depth", int, 1, example=6),
    Rule("diffusion.model.denoiser.dim_t", int, 1, example=128),
    Rule("diffusion.model.ema_decay", float, 0, 1, example=0.995),
    Rule("sample.sampler.num_steps", int, 1, example=32),
    Rule("finetune.synthetic_ratio", float, 0, 1, example=0.5),
    Rule("finetune.module.lr", float, 0, bounds="()", example=3.0e-4),
    Rule("finetune.datamodule.batch_size", int, 1, example=256),
    Rule("eval.num_episodes", int, 1, example=10),
    Rule("eval.parallel_envs", int, 1, example=10),
    Rule("eval.epsilon", float, 0, 1, example=0.0),
    Rule("analysis.bins", int, 1, example=100),
    Rule("analysis.observation_stride", int, 0, example=10),
    Rule("eval.workers", int, 0, example=2, nullable=True, why="null = this job's CPU share, 0 = in this process"),
    Rule("analysis.paired_states", int, 0, 10_000, example=256,
         why="each state is rendered once per test env, and the latent distance scale compares every two states"),
    Rule("trainer.log_every_n_steps", int, 1, example=20),
    Rule("callbacks.model_checkpoint.every_n_train_steps", int, 1, example=1000, nullable=True),
    Rule("callbacks.evaluation.every_n_updates", int, 0, example=5000),
)


def validate_config(cfg: DictConfig) -> None:
    """Raise ConfigError listing every invalid value of `cfg` (types, ranges, env names); return if all is well."""
    raw = OmegaConf.to_container(cfg, resolve=False)  # unresolved: tells which values are copies of other keys
    env_kind = _env_kind(raw)
    problems: list[str] = []
    checked: list[tuple[str, Rule]] = [(key, rule) for rule in RULES if rule.env in (None, env_kind)
                                       for key in _expand(cfg, rule.key)]
    checked_keys = {key for key, _ in checked}
    for key, rule in checked:
        reference = _INTERPOLATION.match(str(_raw_value(raw, key)))
        if reference and reference[1] in checked_keys:
            continue  # `${other}`: a bad value is reported once, under the key the user sets
        value, error = _resolved(cfg, key)
        if error:
            problems.append(error)
        elif value is not _ABSENT and not rule.accepts(value):
            fix = f"e.g. {key}={rule.example}" + (f"; {rule.why}" if rule.why else "")
            problems.append(f"{key}={value!r}: {rule.valid()} ({fix})")
    if cfg.get("matmul_precision") not in MATMUL_PRECISIONS:
        problems.append(f"matmul_precision={cfg.get('matmul_precision')!r}: one of {', '.join(MATMUL_PRECISIONS)} "
                        "(torch.set_float32_matmul_precision; e.g. matmul_precision=high)")
    problems += _variant_problems(cfg)
    problems += _multirun_problems(cfg)
    if env_kind == "dmc":
        problems += _dmc_problems(cfg)
    elif env_kind == "procgen":
        problems += _procgen_problems(cfg)
    if "analysis" in cfg and cfg.analysis.get("binning") not in BINNINGS:
        problems.append(f"analysis.binning={cfg.analysis.get('binning')!r}: one of {', '.join(BINNINGS)} "
                        "(the latent JS divergence's bin edges; e.g. analysis.binning=quantile)")
    if problems:
        raise ConfigError(problems)


def _variant_problems(cfg: DictConfig) -> list[str]:
    """A variant that trains on the original pixels (its config selects augment=none) with augmentation on."""
    augment = cfg.get("augment") or {}
    ops = [name for name, op in (augment.get("ops") or {}).items() if op is not None]
    if cfg.get("variant") not in UNAUGMENTED_VARIANTS or not ops or augment.get("p", 0.5) == 0:
        return []
    problem = (f"variant={cfg.variant} trains on the original pixels, but augmentation is on ({', '.join(ops)}): "
               "drop the augment override (the variant selects augment=none), or use variant=augmented or aug_upsampled")
    return [problem]


def _multirun_problems(cfg: DictConfig) -> list[str]:
    """A multirun job whose Trainer would start its other ranks by running the command line again: every rank
    would run the whole sweep (-m and its overrides) once more, each in a sweep directory of its own."""
    trainer = cfg.get("trainer")
    if trainer is None or not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return []
    if not relaunches_command_line(trainer):
        return []
    problem = (f"trainer.strategy={trainer.get('strategy', 'auto')!r} with trainer.devices={trainer.get('devices')!r} "
               "in a multirun (-m): Lightning starts this strategy's other processes by running the command line "
               "again, which reruns the whole sweep once per process; in a multirun use a spawned strategy "
               "(trainer=ddp_cpu, or trainer.strategy=ddp_spawn_find_unused_parameters_true), or start each job as "
               "its own `python train.py trainer=ddp ...` (one run directory per command)")
    return [problem]


def _env_kind(raw: dict[str, Any]) -> str | None:
    """"dmc" or "procgen", by which env keys the composed config has (dm_control's domain, Procgen's game)."""
    if _raw_value(raw, "env.domain") is not _ABSENT:
        return "dmc"
    if _raw_value(raw, "env.game") is not _ABSENT:
        return "procgen"
    return None


def _expand(cfg: DictConfig, pattern: str) -> Iterator[str]:
    """The keys a rule covers: itself, or every child of `node` for `node.*`."""
    if not pattern.endswith(".*"):
        yield pattern
        return
    node = OmegaConf.select(cfg, pattern[:-2], default=None)
    if isinstance(node, DictConfig):
        yield from (f"{pattern[:-2]}.{child}" for child in node)


def _raw_value(raw: Any, key: str) -> Any:
    """The value at dotted `key` of a plain nested dict, or _ABSENT."""
    for part in key.split("."):
        if not isinstance(raw, dict) or part not in raw:
            return _ABSENT
        raw = raw[part]
    return raw


def _resolved(cfg: DictConfig, key: str) -> tuple[Any, str]:
    """(value, "") with _ABSENT for a key the config lacks or a `???` a stage fills later; else (_, problem)."""
    try:
        return OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=True), ""
    except (MissingMandatoryValue, InterpolationToMissingValueError):
        return _ABSENT, ""
    except InterpolationResolutionError as err:
        first_line = str(err).splitlines()[0]
        return _ABSENT, f"{key}: cannot be resolved: {first_line} (fix or remove the interpolation)"


def _dmc_problems(cfg: DictConfig) -> list[str]:
    """An unknown env.domain / env.task, checked against dm_control.suite's registry."""
    domain, _ = _resolved(cfg, "env.domain")
    task, _ = _resolved(cfg, "env.task")
    if domain is _ABSENT:
        return []
    try:
        suite = import_suite()  # chooses the GL backend before dm_control is imported
    except RenderingUnavailableError as err:
        # The env stages fail with this same message; the config itself may still be fine (e.g. published data).
        log.warning("env.domain/env.task not checked against dm_control's tasks: %s", err)
        return []
    tasks = suite.TASKS_BY_DOMAIN
    if domain not in tasks:
        return [(f"env.domain={domain!r}: a dm_control domain: {', '.join(sorted(tasks))} "
                 f"(e.g. env.domain=cheetah env.task=run, or env=dmc_cheetah_run)")]
    if task is not _ABSENT and task not in tasks[domain]:
        valid = sorted(tasks[domain])
        return [(f"env.task={task!r}: a task of dm_control domain {domain!r}: {', '.join(valid)} "
                 f"(e.g. env.task={valid[0]})")]
    return []


def _procgen_problems(cfg: DictConfig) -> list[str]:
    """An unknown env.game."""
    game, _ = _resolved(cfg, "env.game")
    if game is _ABSENT or game in PROCGEN_GAMES:
        return []
    return [f"env.game={game!r}: a Procgen game: {', '.join(PROCGEN_GAMES)} (e.g. env.game=coinrun)"]
