"""Rotation: ±90° quarter turns (RAD's random_rotation) or a continuous angle."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from kornia.geometry.transform import rotate

from synthvis.datamodules.augmentations.frame_op import randint, uniform

ROTATION_MODES = ("rot90", "continuous")


class Rotation:
    """Rotate every frame of a transition by one angle drawn for that transition.

    `rot90`: k quarter turns, k drawn uniformly from `quarter_turns` (default ±1, i.e. ±90°; RAD uses 1, 2, 3);
    exact pixel permutation, needs square images. `continuous`: θ ~ U[−max_degrees, max_degrees], bilinear
    interpolation, corners outside the source filled with black (zeros).
    """

    def __init__(
        self, mode: str = "rot90", quarter_turns: Sequence[int] = (-1, 1), max_degrees: float = 90.0
    ) -> None:
        if mode not in ROTATION_MODES:
            raise ValueError(f"unknown rotation mode {mode!r}; choose one of {ROTATION_MODES}")
        if not quarter_turns or any(k % 4 == 0 for k in quarter_turns):
            raise ValueError(f"quarter_turns must be non-empty and hold no multiple of 4, got {list(quarter_turns)}")
        if max_degrees <= 0:
            raise ValueError(f"max_degrees must be > 0, got {max_degrees}")
        self.mode, self.quarter_turns, self.max_degrees = mode, [int(k) for k in quarter_turns], float(max_degrees)

    def __call__(self, frames: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Rotated (n, F, 3, H, W) frames, one angle per transition."""
        n, num_frames, channels, height, width = frames.shape
        if self.mode == "continuous":
            angle = uniform(generator, n, -self.max_degrees, self.max_degrees).to(frames.dtype)
            # kornia rotates (B, C, H, W) by one angle per B, so all F·3 channels of a transition turn together.
            flat = frames.reshape(n, num_frames * channels, height, width)
            return rotate(flat, angle, mode="bilinear", padding_mode="zeros").view_as(frames)
        if height != width:
            raise ValueError(f"rot90 rotation needs square images, got {height}x{width}; use mode=continuous")
        choice = randint(generator, n, 0, len(self.quarter_turns))
        # One rotated copy per option, selected per transition: no gather and no host sync on the choice.
        out = torch.rot90(frames, self.quarter_turns[0], dims=(-2, -1))
        for option, k in enumerate(self.quarter_turns[1:], start=1):
            selected = (choice == option).view(n, 1, 1, 1, 1)
            out = torch.where(selected, torch.rot90(frames, k, dims=(-2, -1)), out)
        return out
