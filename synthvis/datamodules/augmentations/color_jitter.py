"""Colour jitter: brightness, contrast, saturation and hue factors per transition (RAD's magnitudes)."""

from __future__ import annotations

import math

import torch
from kornia.enhance import adjust_contrast_with_mean_subtraction, adjust_hue, adjust_saturation

from synthvis.datamodules.augmentations.frame_op import uniform


class ColorJitter:
    """RAD's random_color_jitter with one set of factors per transition, shared by all its frames.

    Factors: brightness, contrast and saturation ~ U[max(0, 1 − m), 1 + m]; hue shift ~ U[−m, m] turns of the
    colour wheel (m ≤ 0.5; RAD's 0.5 covers the whole wheel). A magnitude of 0 skips that adjustment. Contrast
    blends with the frame's gray mean (torchvision; RAD uses per-channel means). Fixed order brightness →
    contrast → saturation → hue (torchvision's order; RAD flips a coin between two orders per batch).
    """

    def __init__(self, brightness: float = 0.4, contrast: float = 0.4, saturation: float = 0.4, hue: float = 0.5) -> None:
        if min(brightness, contrast, saturation, hue) < 0 or hue > 0.5:
            raise ValueError(f"jitter magnitudes must be >= 0 and hue <= 0.5, got brightness={brightness}, "
                             f"contrast={contrast}, saturation={saturation}, hue={hue}")
        self.brightness, self.contrast, self.saturation, self.hue = brightness, contrast, saturation, hue

    def __call__(self, frames: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Jittered (n, F, 3, H, W) frames in [0, 1]."""
        n, num_frames = frames.shape[:2]
        images = frames.reshape(n * num_frames, *frames.shape[2:])

        def per_frame(low: float, high: float) -> torch.Tensor:
            # Drawn per transition, then repeated over its F frames (flattened transition-major above).
            return uniform(generator, n, low, high).to(frames.dtype).repeat_interleave(num_frames)

        if self.brightness:
            # Multiplicative, as RAD (V·f) and torchvision; kornia's adjust_brightness adds instead (kornia#565).
            factor = per_frame(max(0.0, 1 - self.brightness), 1 + self.brightness)
            images = (images * factor.view(-1, 1, 1, 1)).clamp(0, 1)
        if self.contrast:
            images = adjust_contrast_with_mean_subtraction(
                images, per_frame(max(0.0, 1 - self.contrast), 1 + self.contrast))
        if self.saturation:
            images = adjust_saturation(images, per_frame(max(0.0, 1 - self.saturation), 1 + self.saturation))
        if self.hue:
            # kornia takes the hue shift in radians.
            images = adjust_hue(images, per_frame(-self.hue, self.hue) * (2 * math.pi))
        return images.reshape(frames.shape)
