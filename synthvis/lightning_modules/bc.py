"""Behaviour cloning on pixels, V-D4RL's BC baseline (conglu1997/v-d4rl drqbc/bcagent.py)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from synthvis.core.batches import ContinuousBatch
from synthvis.lightning_modules.actor_agent import ActorAgent
from synthvis.lightning_modules.components.actor import Actor
from synthvis.lightning_modules.manual_optimization import step_uncounted
from synthvis.lightning_modules.offline_agent import Metrics, Optimize
from synthvis.lightning_modules.update_metrics import log_update


def bc_loss(actor: Actor, z_pi: torch.Tensor, action: torch.Tensor, std: float,
            std_clip: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """MSE between a clipped policy sample and the dataset action (V-D4RL bcagent.py update_actor)."""
    loss = F.mse_loss(actor.distribution(z_pi, std).sample(clip=std_clip), action)
    return loss, {"bc_loss": loss.detach()}


class BC(ActorAgent):
    """V-D4RL BC: DrQ encoder + actor trained end to end by the BC loss; two Adams (encoder, actor); no critic.

    `augmentation` is applied to obs in training_step: RandomShift(pad=4) for V-D4RL's BC (conf/agent/bc.yaml),
    None for its noaug_bc.
    """

    def __init__(
        self,
        obs_shape: Sequence[int],
        action_dim: int,
        latent_dim: int = 50,
        hidden_dim: int = 1024,
        lr: float = 3e-4,
        std_schedule: str | float = "linear(1.0,0.1,125000)",
        std_clip: float = 0.3,
        augmentation: nn.Module | None = None,
    ) -> None:
        super().__init__(obs_shape, action_dim, latent_dim, hidden_dim, std_schedule, augmentation)
        self.save_hyperparameters(ignore=["augmentation"])

    def training_step(self, batch: ContinuousBatch, batch_idx: int) -> dict[str, torch.Tensor | float]:
        """One update of the encoder and the actor on the BC loss."""
        encoder_opt, actor_opt = self.optimizers()
        std = self.std
        z_pi = self.actor.trunk(self.encoder(self.augment(batch.obs)))
        loss, metrics = bc_loss(self.actor, z_pi, batch.action, std, self.hparams.std_clip)
        encoder_opt.zero_grad(set_to_none=True)
        actor_opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        actor_opt.step()  # the one counted step of this update
        step_uncounted(self, encoder_opt)
        metrics.update(actor_std=std)
        return log_update(self, "train", metrics)

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        """Two Adams: encoder, actor (V-D4RL bcagent.py BCAgent.__init__)."""
        lr = self.hparams.lr
        return [torch.optim.Adam(self.encoder.parameters(), lr=lr), torch.optim.Adam(self.actor.parameters(), lr=lr)]

    def heads(self) -> dict[str, nn.Module]:
        """The policy MLP."""
        return {"policy": self.actor.policy}

    def head_update(self, fields: dict[str, torch.Tensor], optimize: Optimize, step: int,
                    base_updates: int) -> Metrics:
        """bc_loss on (z_pi, a), sigma continuing the base agent's schedule."""
        std = self.std_schedule(base_updates + step)
        loss, metrics = bc_loss(self.actor, fields["z_pi"], fields["action"], std, self.hparams.std_clip)
        optimize(loss, 0)
        return {**metrics, "actor_std": std}
