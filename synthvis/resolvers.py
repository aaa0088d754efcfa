"""OmegaConf resolvers the config tree uses (registered when synthvis is imported)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from omegaconf import OmegaConf

MAX_DIRNAME = 120  # well under the 255-byte file-name limit, with room for the job number


def bounded_dirname(overrides: str) -> str:
    """A sweep job's override string as a folder name: kept whole when short, else a prefix plus a hash."""
    name = overrides.replace("/", "_")
    if len(name) <= MAX_DIRNAME:
        return name
    return f"{name[:MAX_DIRNAME - 9]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def newest_run(runs_root: str | Path) -> Path:
    """The run under `runs_root` worked on last: the one whose config.yaml (rewritten at every start) is newest."""
    runs = sorted(Path(runs_root).glob("*/config.yaml"), key=lambda config: config.stat().st_mtime)
    if not runs:
        raise FileNotFoundError(f"resume=true: no run to resume under {Path(runs_root).resolve()} (no <run>/config.yaml); "
                                "start one with `python train.py`, or name a run directory with run_dir=<dir>")
    return runs[-1].parent


def run_directory(run_dir: str | None, resume: bool, runs_root: str, fresh_name: str) -> str:
    """Where a single run writes: `run_dir` if given, the newest run if `resume`, else a fresh `runs_root/fresh_name`."""
    if run_dir:
        return str(run_dir)
    if resume:
        return str(newest_run(runs_root))
    return f"{runs_root}/{fresh_name}"


def register_resolvers() -> None:
    """Register `${synthvis.dirname:...}` and `${synthvis.run_dir:...}` (idempotent)."""
    if not OmegaConf.has_resolver("synthvis.dirname"):
        OmegaConf.register_new_resolver("synthvis.dirname", bounded_dirname)
    if not OmegaConf.has_resolver("synthvis.run_dir"):
        # Cached: Hydra resolves hydra.run.dir more than once, and every read must name the same directory.
        OmegaConf.register_new_resolver("synthvis.run_dir", run_directory, use_cache=True)
