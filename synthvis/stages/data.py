"""The data stage: generate or locate the offline pixel dataset, index it, and report what was written."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from synthvis.datamodules.pixel import PixelDataModule
from synthvis.stages.context import RunContext

log = logging.getLogger(__name__)


def dataset_summary(datamodule: PixelDataModule) -> dict[str, Any]:
    """Counts, returns and shapes of a set-up datamodule's dataset."""
    store = datamodule.store
    starts, ends = store.episode_bounds()
    returns = [float(store.reward[s + 1:e].sum()) for s, e in zip(starts, ends)]
    batch = datamodule.train_set.__getitems__(list(range(min(4, len(datamodule.train_set)))))
    summary = {
        "dataset": store.layout.__dict__ | {"frame_store": str(store.directory)},
        "episodes": store.layout.num_episodes,
        "transitions": int(sum(ends - starts - 1)),
        "train_transitions": len(datamodule.train_set),
        "val_transitions": len(datamodule.val_set),
        "return_mean": sum(returns) / len(returns),
        "return_min": min(returns),
        "return_max": max(returns),
        "batch": {name: [list(value.shape), str(value.dtype)] for name, value in batch._asdict().items()},
        "memory": datamodule.memory_summary(),
    }
    dataset_path = Path(json.loads((store.directory / "store.json").read_text())["source"])
    files = sorted(p.name for p in ([dataset_path] if dataset_path.is_file() else dataset_path.iterdir())
                   if not p.name.startswith("."))
    summary["dataset_path"] = str(dataset_path)
    summary["files"] = files
    return summary


def run(ctx: RunContext) -> dict[str, Any]:
    """Prepare the configured dataset (`data` for later stages) and log a summary of it."""
    datamodule = ctx.pixel_data()
    summary = dataset_summary(datamodule)
    log.info("dataset: %d episodes, %d transitions (%d train / %d validation), return mean %.1f [%.1f, %.1f]",
             summary["episodes"], summary["transitions"], summary["train_transitions"], summary["val_transitions"],
             summary["return_mean"], summary["return_min"], summary["return_max"])
    log.info("dataset files: %d in %s (%s%s)", len(summary["files"]), summary["dataset_path"],
             ", ".join(summary["files"][:3]), ", ..." if len(summary["files"]) > 3 else "")
    for name, (shape, dtype) in summary["batch"].items():
        log.info("  batch.%-8s %s %s", name, shape, dtype)
    return summary
