"""Grayscale: RAD's random_grayscale, an extra op beyond the paper's four."""

from __future__ import annotations

import torch
from kornia.color import rgb_to_grayscale


class Grayscale:
    """Replace every frame of a transition by its luma, kept as three equal channels (no parameters)."""

    def __call__(self, frames: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(n, F, 3, H, W) gray frames."""
        return rgb_to_grayscale(frames).expand_as(frames)
