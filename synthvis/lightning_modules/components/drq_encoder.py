"""DrQ-v2's convolutional pixel encoder (V-D4RL drqbc/drqv2.py Encoder)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from synthvis.lightning_modules.components.init import drq_weight_init

CHANNELS = 32
# (kernel, stride) of the unpadded convs, in order: the whole geometry the output size follows from.
CONV_LAYERS: tuple[tuple[int, int], ...] = ((3, 2), (3, 1), (3, 1), (3, 1))


def conv_output_size(image_size: int) -> int:
    """Side of the feature map the convs leave from an `image_size` input; 0 when the input is too small."""
    size = image_size
    for kernel, stride in CONV_LAYERS:
        if size < kernel:
            return 0
        size = (size - kernel) // stride + 1
    return size


def min_image_size() -> int:
    """The smallest input side the convs leave at least one pixel of (15 px)."""
    size = 1
    for kernel, stride in reversed(CONV_LAYERS):
        size = (size - 1) * stride + kernel
    return size


class DrQEncoder(nn.Module):
    """obs / 255 - 0.5 -> 4 x (3x3 conv, 32 channels, ReLU; the first with stride 2) -> flatten.

    `repr_dim` is computed from `obs_shape` (V-D4RL hard-codes 32*35*35, valid only at 84 px):
    32 * ((H - 3) // 2 - 5)^2, i.e. 39200 at 84 px and 20000 at 64 px.
    """

    def __init__(self, obs_shape: Sequence[int]) -> None:
        super().__init__()
        if len(obs_shape) != 3:
            raise ValueError(f"obs_shape must be (C, H, W), got {tuple(obs_shape)}")
        channels, height, width = obs_shape
        if min(height, width) < min_image_size():
            raise ValueError(f"obs_shape {tuple(obs_shape)}: the DrQ encoder needs images of at least "
                             f"{min_image_size()} px (image_size >= {min_image_size()}; V-D4RL uses 64 or 84)")
        layers: list[nn.Module] = []
        for index, (kernel, stride) in enumerate(CONV_LAYERS):
            layers += [nn.Conv2d(channels if index == 0 else CHANNELS, CHANNELS, kernel, stride=stride), nn.ReLU()]
        self.convnet = nn.Sequential(*layers)
        self.repr_dim = CHANNELS * conv_output_size(height) * conv_output_size(width)
        self.apply(drq_weight_init)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) uint8 or float in [0, 255] -> (B, repr_dim)."""
        return self.convnet(obs.float() / 255.0 - 0.5).flatten(1)
