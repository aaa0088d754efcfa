"""The contract of one pixel augmentation op, and the per-transition random draws the ops share."""

from __future__ import annotations

from typing import Protocol

import torch


class FrameOp(Protocol):
    """One augmentation applied to whole transitions.

    `frames` is (n, F, 3, H, W) float in [0, 1] (the range kornia's colour ops expect): row i holds every RGB
    frame of transition i, the obs stack followed by the next_obs stack. The op draws one set of parameters
    per row from `generator` (which lives on the frames' device) and applies it to all F frames of that row,
    so stacked frames and s / s' stay consistent. It returns the same shape, in [0, 1].
    """

    def __call__(self, frames: torch.Tensor, generator: torch.Generator) -> torch.Tensor: ...


def uniform(generator: torch.Generator, n: int, low: float, high: float) -> torch.Tensor:
    """`n` draws from U[low, high), made on the generator's device."""
    return torch.rand(n, generator=generator, device=generator.device) * (high - low) + low


def randint(generator: torch.Generator, n: int, low: int, high: int) -> torch.Tensor:
    """`n` integers from {low, ..., high - 1}, made on the generator's device."""
    return torch.randint(low, high, (n,), generator=generator, device=generator.device)
