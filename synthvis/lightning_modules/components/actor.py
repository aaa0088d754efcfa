"""DrQ-v2's deterministic-mean actor with a scheduled-noise truncated normal (V-D4RL drqbc/drqv2.py Actor)."""

from __future__ import annotations

import torch
from torch import nn

from synthvis.lightning_modules.components.init import drq_weight_init
from synthvis.lightning_modules.components.mlp import MLP
from synthvis.lightning_modules.components.truncated_normal import TruncatedNormal
from synthvis.lightning_modules.components.trunk import Trunk


class Actor(nn.Module):
    """trunk (repr_dim -> latent_dim) then policy MLP (latent_dim -> hidden -> hidden -> A); mean = tanh(policy)."""

    def __init__(self, repr_dim: int, action_dim: int, latent_dim: int = 50, hidden_dim: int = 1024) -> None:
        super().__init__()
        self.trunk = Trunk(repr_dim, latent_dim)
        self.policy = MLP(latent_dim, hidden_dim, action_dim)
        self.apply(drq_weight_init)

    def forward(self, h: torch.Tensor, std: float) -> TruncatedNormal:
        """pi(. | h) from encoder features h."""
        return self.distribution(self.trunk(h), std)

    def distribution(self, z_pi: torch.Tensor, std: float) -> TruncatedNormal:
        """pi(. | z_pi) from trunk features (the head alone: what head fine-tuning trains)."""
        mu = torch.tanh(self.policy(z_pi))
        return TruncatedNormal(mu, torch.full_like(mu, std))
