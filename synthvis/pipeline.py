"""Runs the configured stages in order, each once: a finished stage leaves a marker and is skipped on rerun."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from synthvis.config_validation import validate_config
from synthvis.stages import STAGES, TRAINING_STAGES
from synthvis.stages.common import stage_marker, stage_result
from synthvis.stages.context import RunContext
from synthvis.utils.checkpoints import drop_resume_state
from synthvis.utils.distributed import nonzero_rank
from synthvis.utils.files import atomic_write_json, atomic_write_text
from synthvis.utils.seeding import seed_stage
from synthvis.utils.threads import set_job_threads
from synthvis.utils.versions import package_versions

log = logging.getLogger(__name__)

# Config keys a rerun may change without changing what the run computes.
RERUN_KEYS = frozenset({"run_dir", "resume", "stages", "paths.output_dir"})
POLL_SECONDS = 1.0  # how often a DDP rank other than 0 looks for the marker of a stage rank 0 runs alone


def override_key(override: str) -> str:
    """The config key (or group) a command-line override sets: `+a.b=1` -> `a.b`."""
    return override.split("=", 1)[0].lstrip("+~")


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as {dotted.key: leaf}."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def config_differences(saved: DictConfig, current: DictConfig) -> list[str]:
    """`key: saved -> current` for every resolved value that differs, ignoring RERUN_KEYS."""
    old, new = (flatten(OmegaConf.to_container(c, resolve=True)) for c in (saved, current))
    return [f"{key}: {old.get(key, '<absent>')!r} -> {new.get(key, '<absent>')!r}"
            for key in sorted(old.keys() | new.keys()) if key not in RERUN_KEYS and old.get(key) != new.get(key)]


def run_config(cfg: DictConfig, run_dir: Path, overrides: Sequence[str]) -> DictConfig:
    """The config to run `run_dir` with: its saved config when it has one, else `cfg`.

    Rerunning an existing run with no overrides (`run_dir=<dir>` or `resume=true`) continues it with its own saved
    config; `stages=[...]` may pick other stages. Overrides that change what the run computes are refused, so a
    resumed run never mixes two configurations.
    """
    saved_path = run_dir / "config.yaml"
    if not saved_path.exists():
        return cfg
    saved = OmegaConf.load(saved_path)
    keys = {override_key(o) for o in overrides if not override_key(o).startswith("hydra")}
    if keys - RERUN_KEYS:
        differences = config_differences(saved, cfg)
        if differences:
            listed = "\n  ".join(differences[:20]) + ("\n  ..." if len(differences) > 20 else "")
            raise ValueError(f"{run_dir} was started with another config ({saved_path}); these values differ:\n  "
                             f"{listed}\nRerun it with its own overrides (or just run_dir={run_dir}), or start a new "
                             "run without run_dir/resume.")
        return cfg
    missing = sorted(set(cfg) - set(saved) - {"hydra"})
    if missing:
        raise ValueError(f"{saved_path} was written by a synthvis with another config layout (it has no "
                         f"{', '.join(missing)}): this version cannot resume it; start a new run without "
                         "run_dir/resume")
    if "stages" in keys:
        saved.stages = cfg.stages
    return relocated(saved, saved.paths.output_dir, str(run_dir))  # the directory may have moved since


def relocated(cfg: DictConfig, old: str, new: str) -> DictConfig:
    """`cfg` with every path in directory `old` (saved resolved: the logger's save_dir, run_dir) moved to `new`."""
    def move(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: move(item) for key, item in value.items()}
        if isinstance(value, list):
            return [move(item) for item in value]
        if isinstance(value, str) and (value == old or value.startswith(old.rstrip("/") + "/")):
            return new + value[len(old.rstrip("/")):]
        return value

    return cfg if old == new else OmegaConf.create(move(OmegaConf.to_container(cfg)))


def run_dir_given(cfg: DictConfig) -> bool:
    """Whether the run directory was given (run_dir, resume, or hydra.run.dir: Lightning's launcher passes rank 0's
    to the ranks it starts) rather than made fresh from this process's clock."""
    hydra_overrides = HydraConfig.get().overrides.hydra if HydraConfig.initialized() else []
    return bool(cfg.run_dir or cfg.resume) or any(override_key(o) == "hydra.run.dir" for o in hydra_overrides)


def run_pipeline(cfg: DictConfig, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Run `cfg.stages` in order inside `cfg.paths.output_dir`; returns each stage's result.

    `overrides` are the command line's; an existing run directory continues with its saved config (see run_config).
    A DDP rank other than 0 only joins rank 0's training stages (see follow_stages).
    """
    run_dir = Path(cfg.paths.output_dir).resolve()
    rank = nonzero_rank(os.environ)
    if rank is not None and not run_dir_given(cfg):
        raise ValueError(f"{rank} makes this process a rank other than 0, but its run directory {run_dir} is a fresh "
                         "one of its own, not rank 0's: start every rank with the same run_dir=<a directory every "
                         "machine sees> (Lightning's launcher passes rank 0's to the ranks it starts)")
    cfg = run_config(cfg, run_dir, overrides)
    validate_config(cfg)  # every bad value at once, before anything is written
    unknown = [stage for stage in cfg.stages if stage not in STAGES]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown} in stages={list(cfg.stages)}; available: {list(STAGES)}")
    torch.set_float32_matmul_precision(cfg.matmul_precision)
    threads = set_job_threads(cfg.threads)
    if rank is not None:
        return follow_stages(cfg, run_dir, rank)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    atomic_write_json(run_dir / "versions.json", {**package_versions(), "seed": cfg.seed, "threads": threads})
    context = RunContext(cfg, run_dir)  # what each stage hands on to the next, in memory
    results: dict[str, Any] = {}
    for stage in cfg.stages:
        finished = stage_result(run_dir, stage)
        if finished is not None:
            log.info("[%s] already finished in %s; skipping", stage, run_dir / stage)
            results[stage] = finished
            continue
        log.info("[%s] starting -> %s", stage, run_dir / stage)
        started = time.time()
        seed_stage(cfg.seed, stage)  # a stage's randomness never depends on which stages ran before it here
        result = STAGES[stage](context)
        seconds = time.time() - started
        marker = {"stage": stage, "seconds": round(seconds, 2), "result": result}
        atomic_write_json(stage_marker(run_dir, stage), marker)
        if stage in TRAINING_STAGES:
            drop_resume_state(run_dir / stage / "checkpoints")  # disk: paper scale's three are ~280 MB per run
        log.info("[%s] finished in %.1f s", stage, seconds)
        results[stage] = result
    return results


def follow_stages(cfg: DictConfig, run_dir: Path, rank: str) -> dict[str, Any]:
    """The pipeline on a DDP rank other than 0 (`rank`: the variable that says so): train with rank 0, write nothing.

    Lightning's subprocess launcher (strategy ddp) starts the other ranks by running the command line again in
    rank 0's run directory, when rank 0's first training stage starts to fit; launchers that start every rank at
    once must give each the same run_dir. Each rank runs the training stages with rank 0 (their Trainers are
    collective: DDP syncs the gradients, rank 0 alone writes checkpoints, logs and weights) and waits for rank 0's
    marker of every other stage, whose files it then reads as a resumed run would. It stops after the last
    training stage: nothing after it needs this rank.
    """
    trained = [index for index, stage in enumerate(cfg.stages) if stage in TRAINING_STAGES]
    stages = list(cfg.stages)[:trained[-1] + 1] if trained else []
    context = RunContext(cfg, run_dir)
    parent = os.getppid()  # under Lightning's launcher, rank 0
    results: dict[str, Any] = {}
    for stage in stages:
        result = stage_result(run_dir, stage)
        if result is None and stage in TRAINING_STAGES:
            log.info("[%s] %s: training with rank 0", stage, rank)
            seed_stage(cfg.seed, stage)
            result = STAGES[stage](context)
        elif result is None:
            result = await_stage(run_dir, stage, parent)
        results[stage] = result
    log.info("%s: no training stage left; rank 0 finishes the run in %s", rank, run_dir)
    return results


def await_stage(run_dir: Path, stage: str, parent: int) -> dict[str, Any]:
    """`stage`'s result once rank 0 has written its marker; fails when the process that started this one exits."""
    log.info("[%s] waiting for rank 0 to finish it in %s", stage, run_dir / stage)
    while (result := stage_result(run_dir, stage)) is None:
        if os.getppid() != parent:
            raise RuntimeError(f"the process that started this rank (rank 0 under Lightning's launcher) exited "
                               f"before finishing [{stage}] in {run_dir}; its log says why")
        time.sleep(POLL_SECONDS)
    return result
