"""Per-dimension standardization of latent transitions, saved with the model (SynthER's 'standard' normalizer)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class StandardNormalizer(nn.Module):
    """x -> (x - mean) / std with std = unbiased std + 1e-5; `skip_dims` (terminal flags) pass through unchanged."""

    def __init__(self, dim: int, skip_dims: Sequence[int] = ()) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        self.skip_dims = list(skip_dims)

    @classmethod
    def fit(cls, data: torch.Tensor, skip_dims: Sequence[int] = ()) -> StandardNormalizer:
        """Statistics of `data` (N, D), as SynthER's norm.py computes them."""
        if data.ndim != 2 or len(data) < 2:
            raise ValueError(f"need at least 2 rows of (N, D) data to fit a normalizer, got shape {tuple(data.shape)}")
        if not torch.isfinite(data).all():
            raise ValueError("latent data holds NaN or inf values; check the agent that encoded them")
        normalizer = cls(data.shape[1], skip_dims)
        data = data.double()
        normalizer.mean.copy_(data.mean(0))
        normalizer.std.copy_(data.std(0) + 1e-5)
        normalizer.mean[normalizer.skip_dims] = 0.0
        normalizer.std[normalizer.skip_dims] = 1.0
        return normalizer

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """To zero mean, unit std per dimension."""
        return (x - self.mean) / self.std

    def unnormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Back to the data's scale."""
        return x * self.std + self.mean
