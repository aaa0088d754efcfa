"""The report of a whole multirun, written and printed when its last job ends (a Hydra callback)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from synthvis.evaluation.report import build_report

log = logging.getLogger(__name__)


class SweepReport(Callback):
    """On multirun end: report.md, results.csv and plots of every finished job, in the sweep directory."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Build the sweep's report and print its answer; a job that failed is left out, not fatal."""
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            report = build_report(sweep_dir)
        except FileNotFoundError as error:  # no job finished its eval stage
            log.warning("no sweep report: %s", error)
            return
        log.info("sweep report: %s\n%s", sweep_dir / "report.md", "\n".join(report["answer"]))
