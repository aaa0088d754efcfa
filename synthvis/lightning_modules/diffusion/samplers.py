"""EDM samplers (Karras et al. 2022): stochastic Algorithm 2 (SynthER's) and deterministic Algorithm 1.

Both are pure functions of a denoiser D(x; sigma), a shape, a sigma schedule and a torch.Generator, and return
samples in the normalized space. `KarrasSDE` and `HeunODE` bind a schedule and its parameters: they are what
the Hydra group `conf/sampler/` instantiates.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from synthvis.lightning_modules.diffusion.edm import karras_sigmas

DenoiseFn = Callable[[torch.Tensor, float], torch.Tensor]  # D(x; sigma), eq. 7, in the normalized space
StepCallback = Callable[[int], None]  # called with i after each step (progress bars)


def churn_gammas(sigmas: Sequence[float], s_churn: float, s_tmin: float, s_tmax: float) -> list[float]:
    """gamma_i = min(S_churn / N, sqrt(2) - 1) if S_tmin <= sigma_i <= S_tmax else 0, i < N (Algorithm 2)."""
    num_steps = len(sigmas) - 1
    gamma = min(s_churn / num_steps, math.sqrt(2) - 1)
    return [gamma if s_tmin <= sigma <= s_tmax else 0.0 for sigma in sigmas[:-1]]


def stochastic_sampler(denoise_fn: DenoiseFn, shape: Sequence[int], sigmas: torch.Tensor | Sequence[float],
                       generator: torch.Generator, s_churn: float = 80.0, s_tmin: float = 0.05,
                       s_tmax: float = 50.0, s_noise: float = 1.003,
                       callback: StepCallback | None = None) -> torch.Tensor:
    """EDM Algorithm 2: Heun steps with stochastic churn; 2N - 1 evaluations of D for N = len(sigmas) - 1.

    Noise is drawn from `generator` on its device, so a seeded generator gives the same samples. SynthER's
    values (S_churn 80, S_tmin 0.05, S_tmax 50, S_noise 1.003) are the defaults; s_churn = 0 is Algorithm 1.
    No clamping: SynthER clamps only with its min-max normalizer.
    """
    sigmas = [float(s) for s in sigmas]  # Python floats: no device syncs or tensor ops on scalars in the loop
    gammas = churn_gammas(sigmas, s_churn, s_tmin, s_tmax)
    # Line 2: x_0 ~ N(0, t_0^2 I).
    x = sigmas[0] * torch.randn(tuple(shape), generator=generator, device=generator.device)
    for i, (sigma, sigma_next, gamma) in enumerate(zip(sigmas[:-1], sigmas[1:], gammas)):
        sigma_hat = sigma * (1.0 + gamma)  # line 5: t_hat = t_i + gamma_i t_i
        # Line 6: x_hat = x_i + sqrt(t_hat^2 - t_i^2) eps, eps ~ N(0, S_noise^2 I); skipped if gamma = 0.
        if gamma > 0:
            eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x = x + math.sqrt(sigma_hat**2 - sigma**2) * s_noise * eps
        d = (x - denoise_fn(x, sigma_hat)) / sigma_hat  # line 7: dx/dt at t_hat
        x_next = x + (sigma_next - sigma_hat) * d  # line 8: Euler step
        if sigma_next != 0:  # lines 9-11: second-order (trapezoidal) correction, not on the last step to 0
            d_next = (x_next - denoise_fn(x_next, sigma_next)) / sigma_next
            x_next = x + (sigma_next - sigma_hat) * 0.5 * (d + d_next)
        x = x_next
        if callback is not None:
            callback(i)
    return x


def heun_sampler(denoise_fn: DenoiseFn, shape: Sequence[int], sigmas: torch.Tensor | Sequence[float],
                 generator: torch.Generator, callback: StepCallback | None = None) -> torch.Tensor:
    """EDM Algorithm 1: the deterministic Heun ODE solver (Algorithm 2 without churn: noise only at start)."""
    return stochastic_sampler(denoise_fn, shape, sigmas, generator, s_churn=0.0, callback=callback)


@dataclass(frozen=True)
class KarrasSchedule:
    """The eq. 5 schedule: num_steps noise levels from sigma_max down to sigma_min, then 0."""

    num_steps: int = 128
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0

    def sigmas(self) -> torch.Tensor:
        """(num_steps + 1,) float64 noise levels."""
        return karras_sigmas(self.num_steps, self.sigma_min, self.sigma_max, self.rho)

    @property
    def nfe(self) -> int:
        """Network evaluations per sample: two per step, one on the last (Euler) step."""
        return 2 * self.num_steps - 1


@dataclass(frozen=True)
class KarrasSDE(KarrasSchedule):
    """Algorithm 2 on the eq. 5 schedule with SynthER's values (128 steps, 255 NFE)."""

    s_churn: float = 80.0
    s_tmin: float = 0.05
    s_tmax: float = 50.0
    s_noise: float = 1.003

    def __call__(self, denoise_fn: DenoiseFn, shape: Sequence[int], generator: torch.Generator,
                 callback: StepCallback | None = None) -> torch.Tensor:
        """Normalized samples of `shape`."""
        return stochastic_sampler(denoise_fn, shape, self.sigmas(), generator, self.s_churn, self.s_tmin,
                                  self.s_tmax, self.s_noise, callback)


@dataclass(frozen=True)
class HeunODE(KarrasSchedule):
    """Algorithm 1 on the eq. 5 schedule: deterministic from the first noise, so fewer steps (EDM: 18)."""

    num_steps: int = 32

    def __call__(self, denoise_fn: DenoiseFn, shape: Sequence[int], generator: torch.Generator,
                 callback: StepCallback | None = None) -> torch.Tensor:
        """Normalized samples of `shape`."""
        return heun_sampler(denoise_fn, shape, self.sigmas(), generator, callback)


class Sampler(Protocol):
    """What `LatentDiffusion.sample` calls: normalized samples of `shape` from D, seeded by `generator`."""

    num_steps: int

    def __call__(self, denoise_fn: DenoiseFn, shape: Sequence[int], generator: torch.Generator,
                 callback: StepCallback | None = None) -> torch.Tensor: ...
