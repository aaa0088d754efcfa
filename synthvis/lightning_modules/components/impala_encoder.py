"""The IMPALA ResNet encoder of gen_dgrl's Procgen agents (gen_dgrl procgen/utils/archs.py PPOResNetBaseEncoder)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def same_conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    """3x3 stride-1 conv with TF "SAME" padding (gen_dgrl's Conv2d_tf; for stride 1 it is padding='same')."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding="same")


class ResidualBlock(nn.Module):
    """gen_dgrl BasicBlock: relu(x) + conv(relu(conv(relu(x)))).

    gen_dgrl applies nn.ReLU(inplace=True) to x after saving it as the identity, so the skip path carries
    relu(x), not x; we reproduce that computation.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = same_conv(channels, channels)
        self.conv2 = same_conv(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Same shape in and out."""
        x = F.relu(x)
        return x + self.conv2(F.relu(self.conv1(x)))


class ImpalaEncoder(nn.Module):
    """Per stage: SAME conv -> MaxPool(3, 2, pad 1) -> 2 residual blocks; then flatten (2048 at 64 px).

    Input is float in [0, 255] without normalisation, as gen_dgrl feeds it. Convs are xavier-uniform with
    zero bias (gen_dgrl's apply_init_).
    """

    def __init__(self, obs_shape: Sequence[int], channels: Sequence[int] = (16, 32, 32)) -> None:
        super().__init__()
        if len(obs_shape) != 3:
            raise ValueError(f"obs_shape must be (C, H, W), got {tuple(obs_shape)}")
        stages, in_channels = [], obs_shape[0]
        for out_channels in channels:
            stages += [same_conv(in_channels, out_channels), nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
                       ResidualBlock(out_channels), ResidualBlock(out_channels)]
            in_channels = out_channels
        self.stages = nn.Sequential(*stages)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        with torch.no_grad():
            self.repr_dim = self.stages(torch.zeros(1, *obs_shape)).numel()

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) uint8 or float in [0, 255] -> (B, repr_dim)."""
        return self.stages(obs.float()).flatten(1)
