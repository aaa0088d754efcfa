"""The interface every offline pixel agent exposes to evaluation, latent extraction and head fine-tuning."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import lightning as L
import torch
from torch import nn

from synthvis.core.latent_layout import LatentLayout

Metrics = dict[str, torch.Tensor | float]
# optimize(loss, group): zero the group's gradients, backpropagate `loss` and step the group's optimizer.
Optimize = Callable[[torch.Tensor, int], None]


class OfflineAgent(L.LightningModule, ABC):
    """An offline RL agent on pixels, split into encoder -> trunks -> heads.

    Later stages rely only on this interface: `encoder` (frozen for latents), `latents` (the trunk features
    z_pi / z_q of an observation) and the `latent_layout` they are packed in, `heads` with their optimizer
    `head_groups` and `head_update` (what head fine-tuning trains, and how), and `act` (evaluation).
    Observations are uint8 (or float in [0, 255]) tensors of shape (B, C, H, W).
    """

    encoder: nn.Module
    discrete: bool  # True for integer actions (Procgen)

    @abstractmethod
    def latents(self, obs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Trunk features of `obs`: {'z_pi': (B, F), 'z_q': (B, F)}, or {'z_q'} for agents without an actor."""

    @abstractmethod
    def latent_layout(self, discount: float | None = None) -> LatentLayout:
        """How one transition of this agent's latents is packed (from its own sizes); `discount` is gamma^n."""

    @abstractmethod
    def heads(self) -> dict[str, nn.Module]:
        """The modules that map trunk features to actions / Q-values (what head fine-tuning trains)."""

    def head_groups(self) -> tuple[tuple[str, ...], ...]:
        """Names of `heads` per fine-tuning optimizer, in the order `head_update` steps them (default: one)."""
        return (tuple(self.heads()),)

    @abstractmethod
    def head_update(self, fields: dict[str, torch.Tensor], optimize: Optimize, step: int,
                    base_updates: int) -> Metrics:
        """One fine-tuning update of the heads on decoded latent `fields` with the agent's own losses.

        `fields` are `latent_layout().decode` of a batch, plus 'discount' (gamma^n per row) when the layout has
        one; `optimize(loss, g)` steps optimizer g of `head_groups` (g = 0 is the one counted as the update);
        `step` counts fine-tuning updates from 0 and `base_updates` is how long the base agent trained.
        """

    @abstractmethod
    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        """Actions for a batch of observations: (B, A) in [-1, 1], or (B,) int64 for discrete agents."""
