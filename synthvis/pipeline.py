"""Runs the configured stages in order, each once: a finished stage leaves a marker and is skipped on rerun."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import DictConfig, OmegaConf

from synthvis.stages import STAGES
from synthvis.utils.files import atomic_write_json, atomic_write_text
from synthvis.utils.versions import package_versions

log = logging.getLogger(__name__)

MARKER = "done.json"


def stage_marker(run_dir: Path, stage: str) -> Path:
    """Completion marker of `stage` in `run_dir` (written last, atomically)."""
    return run_dir / stage / MARKER


def run_pipeline(cfg: DictConfig) -> dict[str, Any]:
    """Run `cfg.stages` in order inside `cfg.paths.output_dir`; returns each stage's result."""
    unknown = [stage for stage in cfg.stages if stage not in STAGES]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown} in stages={list(cfg.stages)}; available: {list(STAGES)}")
    run_dir = Path(cfg.paths.output_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    atomic_write_json(run_dir / "versions.json", {**package_versions(), "seed": cfg.seed})
    L.seed_everything(cfg.seed, workers=True)
    results: dict[str, Any] = {}
    for stage in cfg.stages:
        marker = stage_marker(run_dir, stage)
        if marker.exists():
            log.info("[%s] already finished in %s; skipping", stage, marker.parent)
            results[stage] = json.loads(marker.read_text())["result"]
            continue
        log.info("[%s] starting -> %s", stage, run_dir / stage)
        started = time.time()
        result = STAGES[stage](cfg, run_dir)
        seconds = time.time() - started
        atomic_write_json(marker, {"stage": stage, "seconds": round(seconds, 2), "result": result})
        log.info("[%s] finished in %.1f s", stage, seconds)
        results[stage] = result
    return results
