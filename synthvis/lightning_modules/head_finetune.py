"""Stage 6: fine-tune an offline agent's heads on latent transitions; encoder and trunks stay frozen."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
import torch

from synthvis.core.latent_layout import LatentLayout, as_layout
from synthvis.lightning_modules.manual_optimization import step_uncounted
from synthvis.lightning_modules.offline_agent import OfflineAgent
from synthvis.lightning_modules.update_metrics import log_update


class HeadFinetune(L.LightningModule):
    """Continue training `agent`'s heads from their base weights with the agent's own losses, on latents.

    Batches are packed (B, D) rows (real and synthetic alike), decoded with `layout` (which must be the agent's
    `latent_layout`); the agent's `head_update` does the update, with one Adam per group of `head_groups` (the
    first one's step is the counted one, so one update advances global_step by one). Loss hyperparameters are
    the base agent's; `base_updates` (the base agent's update count) lets schedules such as the policy sigma
    continue where pixel training left them. Logged as finetune/<metric>. The frozen modules are kept in eval
    mode, so Lightning's "modules in eval mode at the start of training" warning is expected.
    """

    def __init__(self, agent: OfflineAgent, layout: LatentLayout | Mapping[str, Any], lr: float = 3e-4,
                 base_updates: int = 0) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["agent", "layout"])
        self.automatic_optimization = False
        layout = as_layout(layout)
        expected = agent.latent_layout(layout.discount)
        if expected != layout:
            raise ValueError(f"latent layout {layout.to_dict()} does not match {type(agent).__name__}'s latents "
                             f"{expected.to_dict()}; extract the latents with this agent")
        self.agent, self.layout = agent, layout
        self.heads = agent.heads()
        self.head_groups = agent.head_groups()
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
    def training_step(self, batch: torch.Tensor, batch_idx: int) -> dict[str, torch.Tensor | float]:
        """One update of the heads on a batch of packed latent transitions."""
        fields = self.layout.decode(batch)
        if self.layout.discount is not None:
            fields["discount"] = torch.full_like(fields["reward"], self.layout.discount)
        metrics = self.agent.head_update(fields, self._optimize, self.global_step, self.hparams.base_updates)
        return log_update(self, "finetune", metrics)

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        """One Adam per head group, over the heads of that group."""
        return [torch.optim.Adam([p for name in group for p in self.heads[name].parameters()], lr=self.hparams.lr)
                for group in self.head_groups]

    def _optimize(self, loss: torch.Tensor, group: int) -> None:
        """Backpropagate `loss` into head group `group` and step its optimizer (only group 0's step is counted)."""
        optimizers = self.optimizers()
        optimizer = optimizers[group] if isinstance(optimizers, list) else optimizers
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        if group == 0:
            optimizer.step()
        else:
            step_uncounted(self, optimizer)
