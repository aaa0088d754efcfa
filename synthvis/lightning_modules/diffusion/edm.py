"""EDM (Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based Generative Models", 2206.00364).

Small pure functions, numbered as in the paper: preconditioning (Table 1, eq. 7), the training noise
distribution and loss (eq. 2, eq. 8, Table 1) and the sampling schedule (eq. 5). Everything is in the
normalized data space (SynthER's sigma_data = 1 for standard-normalized latents) with alpha = 1 (the VE form
that EDM and SynthER use: x_sigma = x + sigma * n).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # F_theta(c_in * x, c_noise(sigma))


# Preconditioning, Table 1 ("Network and preconditioning" rows, EDM column).
def c_skip(sigma: torch.Tensor, sigma_data: float) -> torch.Tensor:
    """c_skip(sigma) = sigma_data^2 / (sigma^2 + sigma_data^2): how much of the noisy input D passes on."""
    return sigma_data**2 / (sigma**2 + sigma_data**2)


def c_out(sigma: torch.Tensor, sigma_data: float) -> torch.Tensor:
    """c_out(sigma) = sigma * sigma_data / sqrt(sigma^2 + sigma_data^2): scale of the network's output."""
    return sigma * sigma_data * (sigma**2 + sigma_data**2) ** -0.5


def c_in(sigma: torch.Tensor, sigma_data: float) -> torch.Tensor:
    """c_in(sigma) = 1 / sqrt(sigma^2 + sigma_data^2): gives the network unit-variance inputs."""
    return (sigma**2 + sigma_data**2) ** -0.5


def c_noise(sigma: torch.Tensor) -> torch.Tensor:
    """c_noise(sigma) = ln(sigma) / 4, the network's noise input (sigma clamped at 1e-20 as in lucidrains)."""
    return sigma.clamp(min=1e-20).log() * 0.25


# Training, Table 1 ("Training" rows) and eq. 8.
def loss_weight(sigma: torch.Tensor, sigma_data: float) -> torch.Tensor:
    """lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2 = 1 / c_out^2 (EDM: unit weight)."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


def sample_training_sigma(batch: int, p_mean: float = -1.2, p_std: float = 1.2,
                          generator: torch.Generator | None = None,
                          device: torch.device | str | None = None) -> torch.Tensor:
    """ln(sigma) ~ N(P_mean, P_std^2), shape (batch,): EDM's log-normal training noise levels (Table 1)."""
    if generator is not None:
        device = generator.device
    return (p_mean + p_std * torch.randn(batch, generator=generator, device=device)).exp()


def precondition(net: Denoiser, x: torch.Tensor, sigma: torch.Tensor | float,
                 sigma_data: float = 1.0) -> torch.Tensor:
    """D(x; sigma) = c_skip x + c_out F(c_in x, c_noise(sigma)) (eq. 7); `sigma` per row (B,) or one float."""
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).expand(x.shape[0])
    padded = sigma.reshape(-1, *(1,) * (x.ndim - 1))
    network_output = net(c_in(padded, sigma_data) * x, c_noise(sigma))
    return c_skip(padded, sigma_data) * x + c_out(padded, sigma_data) * network_output


def edm_loss(net: Denoiser, x0: torch.Tensor, sigma_data: float = 1.0, p_mean: float = -1.2,
             p_std: float = 1.2, generator: torch.Generator | None = None) -> torch.Tensor:
    """E_{sigma,n} lambda(sigma) mean_dims (D(x0 + n; sigma) - x0)^2, n ~ N(0, sigma^2 I) (eq. 2 and 8).

    The squared error is averaged over the data dimensions, then weighted per row and averaged over the batch,
    as SynthER's ElucidatedDiffusion.forward does. `x0` is already normalized.
    """
    sigma = sample_training_sigma(x0.shape[0], p_mean, p_std, generator, x0.device).to(x0.dtype)
    noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    noised = x0 + sigma.reshape(-1, *(1,) * (x0.ndim - 1)) * noise
    squared_error = (precondition(net, noised, sigma, sigma_data) - x0).square().flatten(1).mean(1)
    return (loss_weight(sigma, sigma_data) * squared_error).mean()


# Sampling schedule, eq. 5.
def karras_sigmas(num_steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0,
                  rho: float = 7.0) -> torch.Tensor:
    """sigma_i = (s_max^(1/rho) + i/(N-1) (s_min^(1/rho) - s_max^(1/rho)))^rho for i < N, then sigma_N = 0.

    Eq. 5 with t_N = 0 appended; float64, shape (N + 1,). N = 128: 80, 76.62, ..., 0.00242, 0.002, 0.
    """
    if num_steps < 2:
        raise ValueError(f"the Karras schedule needs at least 2 steps, got {num_steps}")
    inv_rho = 1.0 / rho
    ramp = torch.arange(num_steps, dtype=torch.float64) / (num_steps - 1)
    sigmas = (sigma_max**inv_rho + ramp * (sigma_min**inv_rho - sigma_max**inv_rho)) ** rho
    return torch.cat((sigmas, sigmas.new_zeros(1)))
