"""Discrete CQL on Procgen pixels, gen_dgrl's offline baseline (facebookresearch/gen_dgrl offline/agents/ddqn_cql.py)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from synthvis.core.batches import DiscreteBatch
from synthvis.core.latent_layout import LatentLayout, procgen_layout
from synthvis.lightning_modules.components.procgen_q import ProcgenQNetwork
from synthvis.lightning_modules.offline_agent import Metrics, OfflineAgent, Optimize
from synthvis.lightning_modules.update_metrics import log_update


def cql_loss(q_values: torch.Tensor, action: torch.Tensor, reward: torch.Tensor, done: torch.Tensor,
             next_q_online: torch.Tensor, next_q_target: torch.Tensor, gamma: float = 0.99,
             alpha: float = 4.0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Double-DQN Huber loss + alpha * mean(logsumexp_a Q(s, .) - Q(s, a)) (gen_dgrl ddqn_cql.py train_step).

    Works on Q-values, so it serves pixels and latents alike: a* = argmax Q_online(s', .);
    y = r + (1 - done) * gamma * Q_target(s', a*). Q-values are (B, num_actions); the rest is (B,).
    """
    with torch.no_grad():
        next_action = next_q_online.argmax(dim=1, keepdim=True)
        target = reward + (1.0 - done) * gamma * next_q_target.gather(1, next_action).squeeze(1)
    q_taken = q_values.gather(1, action[:, None]).squeeze(1)
    td = F.smooth_l1_loss(q_taken, target)
    conservative = alpha * (torch.logsumexp(q_values, dim=1) - q_taken).mean()
    loss = td + conservative
    return loss, {"loss": loss.detach(), "td_loss": td.detach(), "cql_loss": conservative.detach(),
                  "q_mean": q_taken.detach().mean()}


def target_copy_due(update: int, every: int) -> bool:
    """Whether the target copies the online network after update `update` (0-based; gen_dgrl copies when
    total_steps % target_update_every == 0, counted before the increment: after updates 1, N + 1, 2N + 1, ...)."""
    return update % every == 0


class DiscreteCQL(OfflineAgent):
    """gen_dgrl's DDQN+CQL with the IMPALA ResNet Q-network; one Adam; hard target copy every N updates.

    Observations go in as float [0, 255] (no normalisation), as in gen_dgrl. `augmentation`, if given, is
    applied to obs and next_obs in training_step (gen_dgrl uses none; it is not a saved hyperparameter).
    """

    discrete = True

    def __init__(
        self,
        obs_shape: Sequence[int],
        action_dim: int = 15,
        latent_dim: int = 256,
        channels: Sequence[int] = (16, 32, 32),
        lr: float = 5e-4,
        gamma: float = 0.99,
        cql_alpha: float = 4.0,
        target_update_every: int = 1000,
        augmentation: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["augmentation"])
        self.q = ProcgenQNetwork(obs_shape, action_dim, latent_dim, channels)
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.augmentation = augmentation

    @property
    def encoder(self) -> nn.Module:
        """The IMPALA encoder of the online Q-network."""
        return self.q.encoder

    def augment(self, obs: torch.Tensor) -> torch.Tensor:
        """Float observations in [0, 255], augmented if there is an augmentation."""
        obs = obs.float()
        return obs if self.augmentation is None else self.augmentation(obs)

    def training_step(self, batch: DiscreteBatch, batch_idx: int) -> dict[str, torch.Tensor]:
        """The DDQN + CQL loss of one batch (Lightning steps the optimizer)."""
        loss, metrics = self._loss(batch, self.augment(batch.obs), self.augment(batch.next_obs))
        return {"loss": loss, **log_update(self, "train", metrics)}

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        """The optimizer step, then the hard target copy after updates 1, N + 1, 2N + 1, ...

        gen_dgrl copies when total_steps % N == 0, counted before the increment; Lightning counts this update in
        global_step only after this hook returns. Here rather than in on_train_batch_end, which Lightning runs
        after the checkpoint callbacks, so a checkpoint holds the target of the updates it counts.
        """
        super().optimizer_step(*args, **kwargs)
        if target_copy_due(self.global_step, self.hparams.target_update_every):
            self.q_target.load_state_dict(self.q.state_dict())

    def validation_step(self, batch: DiscreteBatch, batch_idx: int) -> None:
        """Held-out DDQN / CQL losses on un-augmented observations."""
        _, metrics = self._loss(batch, batch.obs.float(), batch.next_obs.float())
        self.log_dict({f"val/{name}": value for name, value in metrics.items()}, sync_dist=True)

    def _loss(self, batch: DiscreteBatch, obs: torch.Tensor,
              next_obs: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        q_values = self.q(obs)
        with torch.no_grad():
            next_q_online, next_q_target = self.q(next_obs), self.q_target(next_obs)
        hp = self.hparams
        return cql_loss(q_values, batch.action, batch.reward, batch.done, next_q_online, next_q_target,
                        hp.gamma, hp.cql_alpha)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """One Adam over the online Q-network (gen_dgrl ddqn_cql.py)."""
        return torch.optim.Adam(self.q.parameters(), lr=self.hparams.lr)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        """Greedy actions argmax_a Q(s, a), (B,) int64; Q-learning has no stochastic policy, so
        `deterministic` is ignored (evaluation adds gen_dgrl's epsilon-greedy itself)."""
        return self.q(obs).argmax(dim=1)

    @torch.no_grad()
    def latents(self, obs: torch.Tensor) -> dict[str, torch.Tensor]:
        """{'z_q': ReLU(fc(ReLU(flatten(encoder(obs)))))}, the input of the Q head."""
        return {"z_q": self.q.trunk(self.q.encoder(obs))}

    def latent_layout(self, discount: float | None = None) -> LatentLayout:
        """concat(z_q, onehot(a), r, z'_q, done) at the trunk's width."""
        return procgen_layout(self.hparams.latent_dim, self.hparams.action_dim, discount)

    def heads(self) -> dict[str, nn.Module]:
        """The Q head (gen_dgrl's actor_linear: latent_dim -> num_actions)."""
        return {"q": self.q.head}

    def head_update(self, fields: dict[str, torch.Tensor], optimize: Optimize, step: int,
                    base_updates: int) -> Metrics:
        """cql_loss with Q = head(z_q): the online head picks a', a target head evaluates it, hard-copied on the
        pixel schedule counted in fine-tuning updates; the agent's own one-step gamma and alpha."""
        hp, f = self.hparams, fields
        head, target = self.q.head, self.q_target.head
        with torch.no_grad():
            next_q_online, next_q_target = head(f["next_z_q"]), target(f["next_z_q"])
        loss, metrics = cql_loss(head(f["z_q"]), f["action"], f["reward"], f["done"], next_q_online, next_q_target,
                                 hp.gamma, hp.cql_alpha)
        optimize(loss, 0)
        if target_copy_due(step, hp.target_update_every):
            target.load_state_dict(head.state_dict())
        return metrics
