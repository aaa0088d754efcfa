"""DrQ-v2's clipped Gaussian policy distribution."""

from __future__ import annotations

import torch
from torch.distributions import Normal


class TruncatedNormal(Normal):
    """N(loc, scale) whose samples have clipped noise and a straight-through clamp to (low, high).

    V-D4RL drqbc/utils.py TruncatedNormal: x = loc + clamp(scale * eps, -clip, clip), then clamped to
    [low + eps, high - eps] in the forward pass while the gradient flows to loc as if unclamped.
    """

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor, low: float = -1.0, high: float = 1.0,
                 eps: float = 1e-6) -> None:
        super().__init__(loc, scale, validate_args=False)
        self.low, self.high, self.eps = low, high, eps

    def _clamp(self, x: torch.Tensor) -> torch.Tensor:
        clamped = torch.clamp(x, self.low + self.eps, self.high - self.eps)
        return x - x.detach() + clamped.detach()

    def sample(self, clip: float | None = None) -> torch.Tensor:
        """One reparameterised sample per loc; `clip` bounds the noise (DrQ-v2's stddev_clip), None does not."""
        noise = torch.randn_like(self.loc) * self.scale
        if clip is not None:
            noise = torch.clamp(noise, -clip, clip)
        return self._clamp(self.loc + noise)
