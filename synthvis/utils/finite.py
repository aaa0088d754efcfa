"""Non-finite values are errors: training stops at the first one, and no file ever holds one."""

from __future__ import annotations

from collections.abc import Mapping

import torch


class NonFiniteError(RuntimeError):
    """A loss, metric or weight is NaN or infinite."""


def non_finite_entries(tensors: Mapping[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors in `tensors` holding a NaN or an infinity."""
    return [name for name, value in tensors.items()
            if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all()]
