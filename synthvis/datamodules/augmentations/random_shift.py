"""DrQ's random shift, applied by the agents inside every training step."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from synthvis.datamodules.augmentations.generators import SeededGenerators


class RandomShift(nn.Module):
    """DrQ-v2's RandomShiftsAug: replicate-pad by `pad`, then translate each sample by integers in [−pad, pad].

    Takes (B, C, H, W) uint8 or float in [0, 255] and returns float in [0, 255]. Every call draws fresh shifts
    per sample, so calling it on obs and then on next_obs shifts them independently, as DrQ does.
    """

    def __init__(self, pad: int = 4, seed: int | None = None) -> None:
        super().__init__()
        if pad < 0:
            raise ValueError(f"random shift pad must be >= 0, got {pad}")
        self.pad = pad
        self.generators = SeededGenerators(seed)

    def seed(self, seed: int) -> None:
        """Restart the shift stream from `seed` on every device."""
        self.generators.seed(seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Shifted float copy of `x`."""
        n, _, height, width = x.shape
        if height != width:
            raise ValueError(f"RandomShift needs square images (as DrQ), got {height}x{width}")
        padded_size = height + 2 * self.pad
        x = F.pad(x.float(), (self.pad,) * 4, mode="replicate")
        # DrQ's grid: the centres of the first H padded pixels in normalised coordinates (align_corners=False) ...
        eps = 1.0 / padded_size
        arange = torch.linspace(-1.0 + eps, 1.0 - eps, padded_size, device=x.device, dtype=x.dtype)[:height]
        arange = arange.unsqueeze(0).repeat(height, 1).unsqueeze(2)
        base_grid = torch.cat([arange, arange.transpose(1, 0)], dim=2).unsqueeze(0).repeat(n, 1, 1, 1)
        # ... moved by whole pixels: an offset s in {0..2·pad} samples padded pixel i + s exactly.
        shift = torch.randint(0, 2 * self.pad + 1, (n, 1, 1, 2), generator=self.generators(x.device),
                              device=x.device).to(x.dtype) * (2.0 / padded_size)
        return F.grid_sample(x, base_grid + shift, padding_mode="zeros", align_corners=False)
