"""DrQ+BC, V-D4RL's offline visual RL baseline (conglu1997/v-d4rl drqbc/drqv2.py, offline=True)."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from synthvis.core.batches import ContinuousBatch
from synthvis.lightning_modules.actor_agent import ActorAgent
from synthvis.lightning_modules.components.actor import Actor
from synthvis.lightning_modules.components.critic import Critic
from synthvis.lightning_modules.manual_optimization import step_uncounted
from synthvis.lightning_modules.offline_agent import Metrics, Optimize
from synthvis.lightning_modules.update_metrics import log_update


def critic_loss(critic: Critic, critic_target: Critic, actor: Actor, z_q: torch.Tensor, action: torch.Tensor,
                reward: torch.Tensor, discount: torch.Tensor, next_z_pi: torch.Tensor, next_z_q: torch.Tensor,
                std: float, std_clip: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Twin-Q TD loss on trunk features (V-D4RL drqv2.py update_critic).

    a' ~ TruncN(tanh(policy(z'_pi)), std, clip); y = r + discount * min(Q1_t, Q2_t)(z'_q, a');
    L = MSE(Q1(z_q, a), y) + MSE(Q2(z_q, a), y). `discount` is gamma^n * d from the batch; `next_z_q` is the
    target critic's trunk on s' during pixel training (V-D4RL) and the frozen online trunk on latents.
    """
    with torch.no_grad():
        next_action = actor.distribution(next_z_pi, std).sample(clip=std_clip)
        target_v = torch.min(*critic_target.q_values(next_z_q, next_action))
        target_q = reward[:, None] + discount[:, None] * target_v
    q1, q2 = critic.q_values(z_q, action)
    loss = F.mse_loss(q1, target_q) + F.mse_loss(q2, target_q)
    return loss, {"critic_loss": loss.detach(), "q_mean": (q1.detach().mean() + q2.detach().mean()) / 2,
                  "critic_target_q": target_q.mean()}


def actor_loss(actor: Actor, critic: Critic, z_pi: torch.Tensor, z_q: torch.Tensor, action: torch.Tensor,
               std: float, std_clip: float, bc_weight: float = 2.5,
               use_bc: bool = True) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """TD3+BC actor loss on trunk features (V-D4RL drqv2.py update_actor; Fujimoto & Gu 2021, Eq. 5).

    a_hat ~ TruncN(tanh(policy(z_pi)), std, clip) (a clipped sample, not the mean); Q = min(Q1, Q2)(z_q, a_hat);
    lambda = bc_weight / mean|Q| (detached); L = -lambda * mean(Q) + MSE(a_hat, a). use_bc=False drops the
    MSE term and keeps lambda, as V-D4RL's offline branch does.
    """
    sampled = actor.distribution(z_pi, std).sample(clip=std_clip)
    q = torch.min(*critic.q_values(z_q, sampled))
    lam = bc_weight / q.detach().abs().mean()
    policy_loss = -lam * q.mean()
    bc = F.mse_loss(sampled, action)
    loss = policy_loss + bc if use_bc else policy_loss
    return loss, {"actor_loss": loss.detach(), "actor_q": q.detach().mean(), "bc_loss": bc.detach(),
                  "bc_lambda": lam}


@torch.no_grad()
def soft_update_(online: nn.Module, target: nn.Module, tau: float) -> None:
    """target <- tau * online + (1 - tau) * target, parameter by parameter (V-D4RL utils.soft_update_params)."""
    for param, target_param in zip(online.parameters(), target.parameters(), strict=True):
        target_param.lerp_(param, tau)


class DrQBC(ActorAgent):
    """V-D4RL DrQ+BC: DrQ-v2 (random shift, twin-Q critic, scheduled-noise actor) plus TD3+BC's actor loss.

    Per update: augment s and s' independently; critic loss backpropagates into the critic and the encoder
    (the encoder is trained by the critic only); actor loss on the detached encoder features; soft update of
    the whole target critic (trunk included) with tau. Three Adams: encoder, actor, critic.

    `augmentation` is applied to obs and next_obs in training_step: pass RandomShift(pad=4) for V-D4RL's
    DrQ+BC (conf/agent/drqbc.yaml does), None for its noaug variant. It is not a hyperparameter; give it
    again to `load_from_checkpoint` if the loaded module is trained further.
    """

    trunks = ("z_pi", "z_q")

    def __init__(
        self,
        obs_shape: Sequence[int],
        action_dim: int,
        latent_dim: int = 50,
        hidden_dim: int = 1024,
        lr: float = 3e-4,
        std_schedule: str | float = "linear(1.0,0.1,125000)",
        std_clip: float = 0.3,
        critic_target_tau: float = 0.01,
        bc_weight: float = 2.5,
        use_bc: bool = True,
        augmentation: nn.Module | None = None,
    ) -> None:
        super().__init__(obs_shape, action_dim, latent_dim, hidden_dim, std_schedule, augmentation)
        self.save_hyperparameters(ignore=["augmentation"])
        self.critic = Critic(self.encoder.repr_dim, action_dim, latent_dim, hidden_dim)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)

    def training_step(self, batch: ContinuousBatch, batch_idx: int) -> dict[str, torch.Tensor | float]:
        """One V-D4RL DrQ+BC update: critic (+ encoder), then actor, then the target critic."""
        encoder_opt, actor_opt, critic_opt = self.optimizers()
        hp, std = self.hparams, self.std
        h = self.encoder(self.augment(batch.obs))
        with torch.no_grad():
            next_h = self.encoder(self.augment(batch.next_obs))
            next_z_pi, next_z_q = self.actor.trunk(next_h), self.critic_target.trunk(next_h)
        loss, metrics = critic_loss(self.critic, self.critic_target, self.actor, self.critic.trunk(h),
                                    batch.action, batch.reward, batch.discount, next_z_pi, next_z_q,
                                    std, hp.std_clip)
        encoder_opt.zero_grad(set_to_none=True)
        critic_opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        critic_opt.step()  # the one counted step of this update
        step_uncounted(self, encoder_opt)

        # The actor never trains the encoder: it sees h.detach(). The critic trunk only feeds Q here, so it
        # runs without grad (V-D4RL computes and then discards those gradients).
        h = h.detach()
        with torch.no_grad():
            z_q = self.critic.trunk(h)
        loss, actor_metrics = actor_loss(self.actor, self.critic, self.actor.trunk(h), z_q, batch.action,
                                         std, hp.std_clip, hp.bc_weight, hp.use_bc)
        actor_opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        step_uncounted(self, actor_opt)

        soft_update_(self.critic, self.critic_target, hp.critic_target_tau)
        metrics.update(actor_metrics, actor_std=std, batch_reward=batch.reward.mean())
        return log_update(self, "train", metrics)

    def validation_metrics(self, batch: ContinuousBatch, h: torch.Tensor) -> dict[str, torch.Tensor]:
        """BC MSE of the deterministic action and the critic's TD loss (no augmentation)."""
        next_h = self.encoder(batch.next_obs)
        _, critic_metrics = critic_loss(self.critic, self.critic_target, self.actor, self.critic.trunk(h),
                                        batch.action, batch.reward, batch.discount, self.actor.trunk(next_h),
                                        self.critic_target.trunk(next_h), self.std, self.hparams.std_clip)
        return {**super().validation_metrics(batch, h), "critic_loss": critic_metrics["critic_loss"],
                "q_mean": critic_metrics["q_mean"]}

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        """Three Adams: encoder, actor, critic (V-D4RL drqv2.py DrQV2Agent.__init__)."""
        lr = self.hparams.lr
        return [torch.optim.Adam(self.encoder.parameters(), lr=lr), torch.optim.Adam(self.actor.parameters(), lr=lr),
                torch.optim.Adam(self.critic.parameters(), lr=lr)]

    @torch.no_grad()
    def latents(self, obs: torch.Tensor) -> dict[str, torch.Tensor]:
        """{'z_pi': actor.trunk(h), 'z_q': critic.trunk(h)} with h = encoder(obs) (SynthER's latents)."""
        h = self.encoder(obs)
        return {"z_pi": self.actor.trunk(h), "z_q": self.critic.trunk(h)}

    def heads(self) -> dict[str, nn.Module]:
        """The policy MLP and the two Q MLPs (encoder and trunks stay frozen in head fine-tuning)."""
        return {"policy": self.actor.policy, "q1": self.critic.Q1, "q2": self.critic.Q2}

    def head_groups(self) -> tuple[tuple[str, ...], ...]:
        """The critic heads (stepped first, the counted step), then the policy: one Adam each."""
        return ("q1", "q2"), ("policy",)

    def head_update(self, fields: dict[str, torch.Tensor], optimize: Optimize, step: int,
                    base_updates: int) -> Metrics:
        """critic_loss on (z_q, a, r, discount, z'_pi, z'_q), actor_loss on (z_pi, z_q, a), then the soft update
        of the target critic's Q1 / Q2.

        z'_q comes from the frozen online critic trunk (as when the latents were extracted), so only the target's
        Q heads are used; its trunk, like every trunk, stays as it was. The discount is the layout's gamma^n (DMC
        has no terminals); sigma continues the base agent's schedule.
        """
        if "discount" not in fields:
            raise ValueError("DrQ+BC fine-tuning needs the bootstrap discount gamma^n in the layout (layout.discount)")
        hp, std, f = self.hparams, self.std_schedule(base_updates + step), fields
        loss, metrics = critic_loss(self.critic, self.critic_target, self.actor, f["z_q"], f["action"], f["reward"],
                                    f["discount"], f["next_z_pi"], f["next_z_q"], std, hp.std_clip)
        optimize(loss, 0)
        loss, actor_metrics = actor_loss(self.actor, self.critic, f["z_pi"], f["z_q"], f["action"], std, hp.std_clip,
                                         hp.bc_weight, hp.use_bc)
        optimize(loss, 1)
        for name in ("Q1", "Q2"):  # not the whole target critic: its trunk is frozen like the online one
            soft_update_(getattr(self.critic, name), getattr(self.critic_target, name), hp.critic_target_tau)
        return {**metrics, **actor_metrics, "actor_std": std}
