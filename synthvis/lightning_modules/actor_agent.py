"""What DrQ+BC and BC share: the DrQ encoder, the actor, the training augmentation and the policy-noise schedule."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from synthvis.core.batches import ContinuousBatch
from synthvis.core.latent_layout import LatentLayout, dmc_layout
from synthvis.lightning_modules.components.actor import Actor
from synthvis.lightning_modules.components.drq_encoder import DrQEncoder
from synthvis.lightning_modules.components.std_schedule import StdSchedule
from synthvis.lightning_modules.offline_agent import OfflineAgent


class ActorAgent(OfflineAgent):
    """A continuous-action agent built from V-D4RL's Encoder and Actor, trained with manual optimization.

    One training_step is one V-D4RL update and advances `global_step` by exactly one, so `max_steps`,
    checkpoint intervals and the sigma schedule all count updates (see manual_optimization.step_uncounted).
    """

    discrete = False
    trunks: tuple[str, ...] = ("z_pi",)  # the latent features `latents` returns (DrQ+BC adds its critic's z_q)

    def __init__(self, obs_shape: Sequence[int], action_dim: int, latent_dim: int, hidden_dim: int,
                 std_schedule: str | float, augmentation: nn.Module | None) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.encoder = DrQEncoder(obs_shape)
        self.actor = Actor(self.encoder.repr_dim, action_dim, latent_dim, hidden_dim)
        self.augmentation = augmentation
        self.std_schedule = StdSchedule(std_schedule)

    @property
    def std(self) -> float:
        """The policy's sigma at the current update (V-D4RL: utils.schedule(stddev_schedule, step))."""
        return self.std_schedule(self.global_step)

    def augment(self, obs: torch.Tensor) -> torch.Tensor:
        """Float observations in [0, 255], shifted by the augmentation if there is one (V-D4RL: aug(obs.float()))."""
        obs = obs.float()
        return obs if self.augmentation is None else self.augmentation(obs)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        """tanh(policy) (deterministic, V-D4RL eval_mode) or an unclipped sample at the current sigma; (B, A)."""
        dist = self.actor(self.encoder(obs), self.std)
        return dist.mean if deterministic else dist.sample(clip=None)

    @torch.no_grad()
    def latents(self, obs: torch.Tensor) -> dict[str, torch.Tensor]:
        """{'z_pi': actor.trunk(encoder(obs))} (subclasses with a critic add 'z_q')."""
        return {"z_pi": self.actor.trunk(self.encoder(obs))}

    def latent_layout(self, discount: float | None = None) -> LatentLayout:
        """concat(z_pi[, z_q], a, r, z'_pi[, z'_q]) at the trunks' width (see `latents`)."""
        return dmc_layout(self.hparams.latent_dim, self.hparams.action_dim, self.trunks, discount)

    def validation_step(self, batch: ContinuousBatch, batch_idx: int) -> None:
        """Held-out losses on un-augmented observations, averaged over the validation set and across ranks."""
        metrics = self.validation_metrics(batch, self.encoder(batch.obs))
        self.log_dict({f"val/{name}": value for name, value in metrics.items()}, sync_dist=True)

    def validation_metrics(self, batch: ContinuousBatch, h: torch.Tensor) -> dict[str, torch.Tensor]:
        """MSE between the deterministic action tanh(policy) and the dataset action."""
        return {"bc_mse": F.mse_loss(self.actor(h, self.std).mean, batch.action)}
