"""An update's metrics: logged on the updates whose logs the Trainer writes, returned on every update."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
import torch


def log_update(module: L.LightningModule, prefix: str, metrics: Mapping[str, torch.Tensor | float],
               **log_options: Any) -> dict[str, torch.Tensor | float]:
    """Name `metrics` `<prefix>/<name>`, log them if this update's logs are written, and return them.

    Lightning's `self.log` costs about as much as a small update's arithmetic (each value is moved into its
    result collection), so it runs only on the updates the Trainer writes to its loggers (every
    `log_every_n_steps`, counted as Lightning counts them) and on the last update, whose values become the stage's
    result. The training step returns the named metrics on every update, for `FiniteGuard`.
    """
    named = {f"{prefix}/{name}": value for name, value in metrics.items()}
    trainer = module.trainer
    # The counter Lightning writes logs by (its logger connector's should_update_logs): global_step would be one
    # ahead here in the modules that step their optimizers before logging.
    update = trainer.fit_loop.epoch_loop._batches_that_stepped + 1
    every = trainer.log_every_n_steps
    if (every > 0 and update % every == 0) or 0 < trainer.max_steps <= update:
        module.log_dict(named, **log_options)
    return named
