"""The Lightning loggers' TensorBoard writer, for what only TensorBoard shows (images, figures, histograms)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from lightning.pytorch.loggers import Logger, TensorBoardLogger


def tensorboard_writer(loggers: Iterable[Logger]) -> Any | None:
    """The SummaryWriter of the first TensorBoard logger (None without one)."""
    return next((logger.experiment for logger in loggers if isinstance(logger, TensorBoardLogger)), None)
