"""DrQ-v2's twin-Q critic with its own trunk (V-D4RL drqbc/drqv2.py Critic)."""

from __future__ import annotations

import torch
from torch import nn

from synthvis.lightning_modules.components.init import drq_weight_init
from synthvis.lightning_modules.components.mlp import MLP
from synthvis.lightning_modules.components.trunk import Trunk


class Critic(nn.Module):
    """trunk (repr_dim -> latent_dim), then Q1, Q2 MLPs on cat(z_q, a) -> 1 each."""

    def __init__(self, repr_dim: int, action_dim: int, latent_dim: int = 50, hidden_dim: int = 1024) -> None:
        super().__init__()
        self.trunk = Trunk(repr_dim, latent_dim)
        self.Q1 = MLP(latent_dim + action_dim, hidden_dim, 1)
        self.Q2 = MLP(latent_dim + action_dim, hidden_dim, 1)
        self.apply(drq_weight_init)

    def forward(self, h: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(Q1, Q2), each (B, 1), from encoder features h."""
        return self.q_values(self.trunk(h), action)

    def q_values(self, z_q: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(Q1, Q2), each (B, 1), from trunk features (the heads alone: what head fine-tuning trains)."""
        za = torch.cat([z_q, action], dim=-1)
        return self.Q1(za), self.Q2(za)
