"""The trunk that turns encoder features into the latent z (what the diffusion model is trained on)."""

from __future__ import annotations

from torch import nn


class Trunk(nn.Sequential):
    """Linear -> LayerNorm -> Tanh: z in (-1, 1)^latent_dim (V-D4RL drqv2.py Actor.trunk / Critic.trunk)."""

    def __init__(self, in_dim: int, latent_dim: int) -> None:
        super().__init__(nn.Linear(in_dim, latent_dim), nn.LayerNorm(latent_dim), nn.Tanh())
