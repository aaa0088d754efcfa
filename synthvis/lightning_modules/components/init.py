"""DrQ-v2 / V-D4RL weight initialisation."""

from __future__ import annotations

from torch import nn


def drq_weight_init(module: nn.Module) -> None:
    """V-D4RL drqbc/utils.py weight_init: orthogonal Linear (gain 1) and Conv2d (ReLU gain), zero biases."""
    if isinstance(module, nn.Linear):
        nn.init.orthogonal_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Conv2d):
        nn.init.orthogonal_(module.weight, nn.init.calculate_gain("relu"))
        if module.bias is not None:
            nn.init.zeros_(module.bias)
