"""SynthER's residual-MLP denoiser F_theta(x, c_noise) (SynthER synther/diffusion/denoiser_network.py)."""

from __future__ import annotations

import math

import torch
from torch import nn


class RandomFourierFeatures(nn.Module):
    """t -> [t, sin(2 pi t w), cos(2 pi t w)] with fixed w ~ N(0, 1) (SynthER: random Fourier features)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError(f"random Fourier feature dim must be even, got {dim}")
        # A frozen Parameter rather than a buffer, as in SynthER: it is part of the 6,687,319 parameters.
        self.weights = nn.Parameter(torch.randn(dim // 2), requires_grad=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """(B,) -> (B, dim + 1)."""
        t = t[:, None]
        freqs = t * self.weights[None, :] * (2 * math.pi)
        return torch.cat((t, freqs.sin(), freqs.cos()), dim=-1)


class ResidualBlock(nn.Module):
    """x + Linear(ReLU(LayerNorm or Identity(x)))."""

    def __init__(self, width: int, layer_norm: bool) -> None:
        super().__init__()
        self.linear = nn.Linear(width, width)
        self.ln = nn.LayerNorm(width) if layer_norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-activation residual update."""
        return x + self.linear(torch.relu(self.ln(x)))


class ResidualMLPDenoiser(nn.Module):
    """proj(x) + time_mlp(t) -> Linear(dim_t, W) -> depth residual blocks -> [LN] -> ReLU -> Linear(W, d_in).

    SynthER's gin values: dim_t 128, width 1024 (resmlp_w1024_denoiser.gin; the base gin uses 2048), depth 6,
    16 random Fourier features, layer_norm False (the class default in SynthER is True; its gin overrides it).
    Parameters: (rff_dim/2) + (rff_dim+1)*dim_t + dim_t + dim_t*(dim_t+1) + (d_in+1)*dim_t + (dim_t+1)*width
    + depth*(width+1)*width + (width+1)*d_in [+ (2*depth+2)*width with layer_norm]: 6,687,319 for d_in=207.
    """

    def __init__(self, d_in: int, width: int = 1024, depth: int = 6, dim_t: int = 128, rff_dim: int = 16,
                 layer_norm: bool = False) -> None:
        super().__init__()
        self.d_in = d_in
        self.time_mlp = nn.Sequential(RandomFourierFeatures(rff_dim), nn.Linear(rff_dim + 1, dim_t),
                                      nn.SiLU(), nn.Linear(dim_t, dim_t))
        self.proj = nn.Linear(d_in, dim_t)
        self.residual_mlp = nn.Sequential(
            nn.Linear(dim_t, width),
            *(ResidualBlock(width, layer_norm) for _ in range(depth)),
            nn.LayerNorm(width) if layer_norm else nn.Identity(),
            nn.ReLU(),
            nn.Linear(width, d_in),
        )

    def forward(self, x: torch.Tensor, noise_level: torch.Tensor) -> torch.Tensor:
        """F_theta(x, t): x (B, d_in), t = c_noise(sigma) of shape (B,) -> (B, d_in)."""
        return self.residual_mlp(self.proj(x) + self.time_mlp(noise_level))
