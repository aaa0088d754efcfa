"""The two-hidden-layer ReLU MLP of DrQ-v2's policy and Q heads."""

from __future__ import annotations

from torch import nn


class MLP(nn.Sequential):
    """Linear -> ReLU -> Linear -> ReLU -> Linear (V-D4RL drqv2.py Actor.policy, Critic.Q1/Q2)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__(
            nn.Linear(in_dim, hidden_dim), nn.ReLU(),
            nn.Linear(hidden_dim, hidden_dim), nn.ReLU(),
            nn.Linear(hidden_dim, out_dim),
        )
