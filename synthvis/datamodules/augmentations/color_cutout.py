"""Colour cutout: RAD's random_cutout_color, one box and one colour per transition."""

from __future__ import annotations

import torch

from synthvis.datamodules.augmentations.frame_op import randint


class ColorCutout:
    """Paint one axis-aligned box per transition with one random RGB colour, on every frame of the transition.

    RAD's geometry, quirk included: along each axis a number s ~ U{min_cut, …, max_cut − 1} is both the box's
    offset and its size (the box spans [s, 2s)). `min_cut`/`max_cut` are pixels at `reference_size` (RAD's 84)
    and scale with the image. RAD draws an independent colour per channel, so each stacked frame gets its own
    colour; here the colour is shared by the whole stack and by s / s', so the box does not flicker over time
    (a flicker would read as motion in the stack, and s' must look like the same augmented scene as s).
    """

    def __init__(self, min_cut: int = 10, max_cut: int = 30, reference_size: int = 84) -> None:
        if not 0 < min_cut < max_cut or reference_size <= 0:
            raise ValueError(f"need 0 < min_cut < max_cut and reference_size > 0, got {min_cut}, {max_cut}, "
                             f"{reference_size}")
        self.min_cut, self.max_cut, self.reference_size = min_cut, max_cut, reference_size

    def __call__(self, frames: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(n, F, 3, H, W) frames with the box painted in."""
        n, _, _, height, width = frames.shape
        rows, cols = self.span(generator, n, height), self.span(generator, n, width)
        inside = (rows[:, :, None] & cols[:, None, :]).view(n, 1, 1, height, width)
        colour = randint(generator, 3 * n, 0, 256).to(frames.dtype).div(255).view(n, 1, 3, 1, 1)
        return torch.where(inside, colour, frames)

    def span(self, generator: torch.Generator, n: int, size: int) -> torch.Tensor:
        """(n, size) mask of the pixels [s, 2s) along an axis of `size` pixels, one s per transition."""
        low = max(1, round(self.min_cut * size / self.reference_size))
        high = max(low + 1, round(self.max_cut * size / self.reference_size))
        start = randint(generator, n, low, high)[:, None]
        pixels = torch.arange(size, device=start.device)
        return (pixels >= start) & (pixels < 2 * start)
