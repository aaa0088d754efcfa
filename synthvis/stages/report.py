"""The report stage: this run's returns, gap closed and JS table as report.md, results.csv and plots."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from synthvis.evaluation.report import build_report

log = logging.getLogger(__name__)


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Write the report into the run directory and print its table."""
    report = build_report(run_dir)
    log.info("report written to %s:\n%s", run_dir / "report.md", report["markdown"])
    return {"files": [str(path) for path in report["files"]]}
