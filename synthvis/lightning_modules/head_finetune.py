"""Stage 6: fine-tune an offline agent's heads on latent transitions; encoder and trunks stay frozen."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import lightning as L
import torch
from lightning.pytorch.core.optimizer import LightningOptimizer

from synthvis.datamodules.latent_layout import LatentLayout, as_layout, layout_for_agent
from synthvis.lightning_modules.actor_agent import ActorAgent
from synthvis.lightning_modules.bc import BC, bc_loss
from synthvis.lightning_modules.discrete_cql import DiscreteCQL, cql_loss
from synthvis.lightning_modules.drqbc import DrQBC, actor_loss, critic_loss, soft_update_
from synthvis.lightning_modules.offline_agent import OfflineAgent

Metrics = dict[str, torch.Tensor | float]


class HeadFinetune(L.LightningModule):
    """Continue training `agent`'s heads from their base weights with the agent's own losses, on latents.

    Batches are packed (B, D) rows (real and synthetic alike), decoded with `layout`. Per update:

    - DrQ+BC: critic_loss on (z_q, a, r, discount, z'_pi, z'_q), then actor_loss on (z_pi, z_q, a), then a soft
      update (the agent's tau) of the target critic's Q1 / Q2. z'_q comes from the frozen online critic trunk
      (as when the latents were extracted), so only the target's Q heads are used; its trunk, like every trunk,
      stays as it was.
      The discount is the layout's gamma^n (DMC has no terminals). Sigma continues the base agent's schedule
      from `base_updates` (the base agent's update count).
    - BC: bc_loss on (z_pi, a), sigma as above.
    - Discrete CQL: cql_loss with Q = head(z_q), double DQN with the online head choosing a' and a target head,
      hard-copied after updates 1, N + 1, ... (N = `target_update_every`, default the agent's); the agent's own
      one-step gamma and alpha, as in pixel training.

    Loss hyperparameters (std_clip, bc_weight, tau, gamma, alpha) are the base agent's. One Adam per loss over
    its heads; one update advances global_step by one. Logged as finetune/<metric>. The frozen modules are
    kept in eval mode, so Lightning's "modules in eval mode at the start of training" warning is expected.
    """

    step_uncounted = ActorAgent.step_uncounted  # the pixel agents' rule: one counted optimizer step per update

    def __init__(self, agent: OfflineAgent, layout: LatentLayout | Mapping[str, Any], lr: float = 3e-4,
                 base_updates: int = 0, target_update_every: int | None = None) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["agent", "layout"])
        self.automatic_optimization = False
        layout = as_layout(layout)
        expected = layout_for_agent(agent, layout.discount)
        if expected != layout:
            raise ValueError(f"latent layout {layout.to_dict()} does not match {type(agent).__name__}'s latents "
                             f"{expected.to_dict()}; extract the latents with this agent")
        # Per agent class: its update, and the head groups of its optimizers (the counted one first).
        steps: dict[type, tuple[Callable[[dict[str, torch.Tensor]], Metrics], tuple[tuple[str, ...], ...]]] = {
            DrQBC: (self._drqbc_step, (("q1", "q2"), ("policy",))),
            BC: (self._bc_step, (("policy",),)),
            DiscreteCQL: (self._cql_step, (("q",),)),
        }
        if type(agent) not in steps:
            raise TypeError(f"no head fine-tuning for {type(agent).__name__}; supported: {[t.__name__ for t in steps]}")
        if isinstance(agent, DrQBC) and layout.discount is None:
            raise ValueError("DrQ+BC fine-tuning needs the bootstrap discount gamma^n in the layout (layout.discount)")
        self._step, self._head_groups = steps[type(agent)]
        self.agent, self.layout = agent, layout
        self.heads = agent.heads()
        agent.requires_grad_(False)
        for head in self.heads.values():
            head.requires_grad_(True)
        self.train()

    # --- what evaluation and the later stages use ---------------------------------------------------------------
    def full_agent(self) -> OfflineAgent:
        """The complete agent (frozen encoder + trunks, fine-tuned heads): the same module object, trained in place."""
        return self.agent

    @property
    def discrete(self) -> bool:
        """Whether the agent's actions are integers (read by the evaluation callback)."""
        return self.agent.discrete

    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        """The full agent's actions on pixels, so the evaluation callback can run during fine-tuning."""
        return self.agent.act(obs, deterministic)

    def train(self, mode: bool = True) -> HeadFinetune:
        """Train mode for the heads only: the frozen encoder and trunks always run in eval mode."""
        super().train(mode)
        self.agent.eval()
        for head in self.heads.values():
            head.train(mode)
        return self

    # --- training ------------------------------------------------------------------------------------------------
    @property
    def std(self) -> float:
        """The policy sigma of the base agent's schedule, continued from its last update."""
        return self.agent.std_schedule(self.hparams.base_updates + self.global_step)

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        """One update of the heads on a batch of packed latent transitions."""
        metrics = self._step(self.layout.decode(batch))
        self.log_dict({f"finetune/{name}": value for name, value in metrics.items()})

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        """One Adam per loss, over the heads that loss trains (critic heads, then the policy for DrQ+BC)."""
        return [torch.optim.Adam([p for name in group for p in self.heads[name].parameters()], lr=self.hparams.lr)
                for group in self._head_groups]

    def _optimize(self, loss: torch.Tensor, optimizer: LightningOptimizer, counted: bool = True) -> None:
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        if counted:
            optimizer.step()
        else:
            self.step_uncounted(optimizer)

    def _drqbc_step(self, f: dict[str, torch.Tensor]) -> Metrics:
        agent, hp, std = self.agent, self.agent.hparams, self.std
        critic_opt, actor_opt = self.optimizers()
        discount = torch.full_like(f["reward"], self.layout.discount)
        loss, metrics = critic_loss(agent.critic, agent.critic_target, agent.actor, f["z_q"], f["action"],
                                    f["reward"], discount, f["next_z_pi"], f["next_z_q"], std, hp.std_clip)
        self._optimize(loss, critic_opt)  # the one counted step of this update
        loss, actor_metrics = actor_loss(agent.actor, agent.critic, f["z_pi"], f["z_q"], f["action"], std,
                                         hp.std_clip, hp.bc_weight, hp.use_bc)
        self._optimize(loss, actor_opt, counted=False)
        for name in ("Q1", "Q2"):  # not the whole target critic: its trunk is frozen like the online one
            soft_update_(getattr(agent.critic, name), getattr(agent.critic_target, name), hp.critic_target_tau)
        return {**metrics, **actor_metrics, "actor_std": std}

    def _bc_step(self, f: dict[str, torch.Tensor]) -> Metrics:
        std = self.std
        loss, metrics = bc_loss(self.agent.actor, f["z_pi"], f["action"], std, self.agent.hparams.std_clip)
        self._optimize(loss, self.optimizers())
        return {**metrics, "actor_std": std}

    def _cql_step(self, f: dict[str, torch.Tensor]) -> Metrics:
        hp = self.agent.hparams
        head, target = self.agent.q.head, self.agent.q_target.head
        with torch.no_grad():
            next_q_online, next_q_target = head(f["next_z_q"]), target(f["next_z_q"])
        loss, metrics = cql_loss(head(f["z_q"]), f["action"], f["reward"], f["done"], next_q_online, next_q_target,
                                 hp.gamma, hp.cql_alpha)
        self._optimize(loss, self.optimizers())
        every = self.hparams.target_update_every or hp.target_update_every
        if (self.global_step - 1) % every == 0:  # gen_dgrl's schedule, as DiscreteCQL.on_train_batch_end
            target.load_state_dict(head.state_dict())
        return metrics

