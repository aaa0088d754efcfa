"""The report stage: this run's returns, gap closed and JS table as report.md, results.csv and plots."""

from __future__ import annotations

import logging
from typing import Any

from synthvis.evaluation.report import build_report
from synthvis.stages.context import RunContext

log = logging.getLogger(__name__)


def run(ctx: RunContext) -> dict[str, Any]:
    """Write the report into the run directory and print its table."""
    report = build_report(ctx.run_dir)
    log.info("report written to %s:\n%s", ctx.run_dir / "report.md", report["markdown"])
    return {"files": [str(path) for path in report["files"]]}
