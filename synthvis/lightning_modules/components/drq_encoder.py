"""DrQ-v2's convolutional pixel encoder (V-D4RL drqbc/drqv2.py Encoder)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from synthvis.lightning_modules.components.init import drq_weight_init


class DrQEncoder(nn.Module):
    """obs / 255 - 0.5 -> 4 x (3x3 conv, 32 channels, ReLU; the first with stride 2) -> flatten.

    `repr_dim` is computed from `obs_shape` (V-D4RL hard-codes 32*35*35, valid only at 84 px):
    32 * ((H - 3) // 2 - 5)^2, i.e. 39200 at 84 px and 20000 at 64 px.
    """

    def __init__(self, obs_shape: Sequence[int]) -> None:
        super().__init__()
        if len(obs_shape) != 3:
            raise ValueError(f"obs_shape must be (C, H, W), got {tuple(obs_shape)}")
        self.convnet = nn.Sequential(
            nn.Conv2d(obs_shape[0], 32, 3, stride=2), nn.ReLU(),
            nn.Conv2d(32, 32, 3, stride=1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, stride=1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, stride=1), nn.ReLU(),
        )
        with torch.no_grad():
            self.repr_dim = self.convnet(torch.zeros(1, *obs_shape)).numel()
        self.apply(drq_weight_init)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) uint8 or float in [0, 255] -> (B, repr_dim)."""
        return self.convnet(obs.float() / 255.0 - 0.5).flatten(1)
