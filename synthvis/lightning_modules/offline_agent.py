"""The interface every offline pixel agent exposes to evaluation, latent extraction and head fine-tuning."""

from __future__ import annotations

from abc import ABC, abstractmethod

import lightning as L
import torch
from torch import nn


class OfflineAgent(L.LightningModule, ABC):
    """An offline RL agent on pixels, split into encoder -> trunks -> heads.

    Later stages rely only on this interface: `encoder` (frozen for latents), `latents` (the trunk features
    z_pi / z_q of an observation), `heads` (the modules head fine-tuning trains), and `act` (evaluation).
    Observations are uint8 (or float in [0, 255]) tensors of shape (B, C, H, W).
    """

    encoder: nn.Module
    discrete: bool  # True for integer actions (Procgen)

    @abstractmethod
    def latents(self, obs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Trunk features of `obs`: {'z_pi': (B, F), 'z_q': (B, F)}, or {'z_q'} for agents without an actor."""

    @abstractmethod
    def heads(self) -> dict[str, nn.Module]:
        """The modules that map trunk features to actions / Q-values (what head fine-tuning trains)."""

    @abstractmethod
    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        """Actions for a batch of observations: (B, A) in [-1, 1], or (B,) int64 for discrete agents."""
