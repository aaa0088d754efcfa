"""gen_dgrl's Procgen Q-network split into encoder -> trunk (z_q) -> Q head."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from synthvis.lightning_modules.components.impala_encoder import ImpalaEncoder


class ProcgenQNetwork(nn.Module):
    """IMPALA encoder -> trunk ReLU -> fc -> ReLU (z_q, latent_dim) -> head Linear -> Q-values.

    gen_dgrl procgen/utils/archs.py PPOResNetBaseEncoder with hidden_size = latent_dim (gen_dgrl uses 256):
    fc is orthogonal with ReLU gain, the head (gen_dgrl's actor_linear) orthogonal with gain 1, biases 0.
    """

    def __init__(self, obs_shape: Sequence[int], num_actions: int = 15, latent_dim: int = 256,
                 channels: Sequence[int] = (16, 32, 32)) -> None:
        super().__init__()
        self.encoder = ImpalaEncoder(obs_shape, channels)
        fc = nn.Linear(self.encoder.repr_dim, latent_dim)
        nn.init.orthogonal_(fc.weight, nn.init.calculate_gain("relu"))
        nn.init.zeros_(fc.bias)
        self.trunk = nn.Sequential(nn.ReLU(), fc, nn.ReLU())
        self.head = nn.Linear(latent_dim, num_actions)
        nn.init.orthogonal_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [0, 255] -> Q-values (B, num_actions)."""
        return self.head(self.trunk(self.encoder(obs)))
