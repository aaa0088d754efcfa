"""The transition batches the pixel datamodules yield and the agents train on."""

from __future__ import annotations

from typing import NamedTuple

import torch


class ContinuousBatch(NamedTuple):
    """DMC transitions: stacked uint8 frames, action, n-step reward, gamma^n * discount, next stacked frames."""

    obs: torch.Tensor  # (B, 3k, H, W) uint8
    action: torch.Tensor  # (B, A) float32
    reward: torch.Tensor  # (B,) float32
    discount: torch.Tensor  # (B,) float32
    next_obs: torch.Tensor  # (B, 3k, H, W) uint8


class DiscreteBatch(NamedTuple):
    """Procgen transitions; `next_obs` is zeros where `done` (gen_dgrl's convention)."""

    obs: torch.Tensor  # (B, 3k, H, W) uint8
    action: torch.Tensor  # (B,) int64
    reward: torch.Tensor  # (B,) float32
    next_obs: torch.Tensor  # (B, 3k, H, W) uint8
    done: torch.Tensor  # (B,) float32
