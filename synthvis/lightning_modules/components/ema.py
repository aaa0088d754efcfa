"""Exponential moving average of a network's weights with ema_pytorch's warm-up (SynthER samples from it)."""

from __future__ import annotations

import copy

import torch
from torch import nn


def ema_decay(step: int, beta: float = 0.995, update_every: int = 10, update_after_step: int = 100,
              inv_gamma: float = 1.0, power: float = 2 / 3) -> float:
    """Decay of the EMA update at counter `step` (0 = copy the online weights), as in lucidrains/ema-pytorch.

    ema_pytorch copies the online weights at every update with step <= update_after_step, and once more at
    its first update past that (its `initted` flag), so averaging starts from that step's weights. Later
    updates use min(beta, 1 - (1 + epoch / inv_gamma)^-power) with epoch = k - update_after_step - 1, where
    k = step + 1 is its counter after the increment: 1 - 21^(-2/3) = 0.8687 at step 120, 0.995 from 2,928 on.
    """
    if step - update_every <= update_after_step:
        return 0.0
    epoch = step - update_after_step
    return min(beta, 1.0 - (1.0 + epoch / inv_gamma) ** -power)


class EMA(nn.Module):
    """A frozen copy of `model` that `update(model)` moves toward the online weights every few calls.

    Call `update` once per optimizer step; use `ema.model` for inference. The counter is a buffer, so a
    checkpoint resumes the warm-up where it was. The online model is not a submodule (its parameters would be
    saved and optimized twice).
    """

    def __init__(self, model: nn.Module, beta: float = 0.995, update_every: int = 10,
                 update_after_step: int = 100, inv_gamma: float = 1.0, power: float = 2 / 3) -> None:
        super().__init__()
        self.model = copy.deepcopy(model).requires_grad_(False)
        self.beta, self.update_every, self.update_after_step = beta, update_every, update_after_step
        self.inv_gamma, self.power = inv_gamma, power
        self.register_buffer("step", torch.tensor(0, dtype=torch.long))

    def decay(self, step: int) -> float:
        """This EMA's decay at counter `step`."""
        return ema_decay(step, self.beta, self.update_every, self.update_after_step, self.inv_gamma,
                         self.power)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """ema <- decay * ema + (1 - decay) * online, on every `update_every`-th call (as ema_pytorch)."""
        step = int(self.step)
        self.step += 1
        if step % self.update_every:
            return
        weight = 1.0 - self.decay(step)
        for ema_param, param in zip(self.model.parameters(), model.parameters(), strict=True):
            # Weight 1 copies exactly: for w >= 0.5 lerp computes b - (b - a)(1 - w).
            ema_param.lerp_(param, weight)
        for ema_buffer, buffer in zip(self.model.buffers(), model.buffers(), strict=True):
            ema_buffer.copy_(buffer)  # running statistics, if any, follow the online model
