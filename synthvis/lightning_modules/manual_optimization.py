"""Manual optimization where one update steps several optimizers but counts as one step."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.core.optimizer import LightningOptimizer


def step_uncounted(module: L.LightningModule, optimizer: LightningOptimizer) -> None:
    """Step `optimizer` through the strategy without advancing `global_step`.

    Lightning counts every optimizer step into global_step under manual optimization (Lightning issue #17958),
    which would make one update count 2-3 steps; all but one optimizer of an update step here, so max_steps,
    checkpoint intervals and the sigma schedule count updates.
    """
    module.trainer.strategy.optimizer_step(optimizer.optimizer, closure=lambda: None, model=module)
