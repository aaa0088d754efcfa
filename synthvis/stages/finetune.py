"""The finetune stage: the policy and Q heads retrained on real + synthetic latents, encoder and trunks frozen."""

from __future__ import annotations

import copy
import logging
from typing import Any

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig

from synthvis.callbacks.export import FullAgentExport
from synthvis.lightning_modules.head_finetune import HeadFinetune
from synthvis.stages.common import build_trainer, fit, resume_checkpoint, trainer_metrics
from synthvis.stages.context import RunContext, Trained

log = logging.getLogger(__name__)


def training_parts(ctx: RunContext) -> tuple[HeadFinetune, L.LightningDataModule, DictConfig]:
    """The fine-tuning module around a copy of the base agent, its datamodule and the agent's saved config."""
    cfg, base, real = ctx.cfg, ctx.trained("agent"), ctx.latents("latents")
    ratio = cfg.finetune.synthetic_ratio
    synthetic = ctx.latents("synthetic") if ratio > 0 else None
    if synthetic is not None and synthetic.layout != real.layout:
        raise ValueError(f"{ctx.run_dir / 'synthetic'} was sampled for another latent layout than "
                         f"{ctx.run_dir / 'latents'}; rerun the diffusion and sample stages")
    agent = copy.deepcopy(base.module)  # trained in place: the base agent stays as the agent stage left it
    module = instantiate(cfg.finetune.module, agent=agent, layout=real.layout, base_updates=base.updates)
    datamodule = instantiate(cfg.finetune.datamodule, real=real.array if ratio < 1 else None,
                             synthetic=None if synthetic is None else synthetic.array, layout=real.layout)
    return module, datamodule, base.config


def run(ctx: RunContext) -> dict[str, Any]:
    """Fine-tune a copy of the base agent for `finetune.steps` updates -> `finetuned`, finetune/agent.pt."""
    cfg, stage_dir = ctx.cfg, ctx.run_dir / "finetune"
    module, datamodule, config = training_parts(ctx)
    agent = module.full_agent()
    weights = stage_dir / "agent.pt"
    trainer = build_trainer(cfg, "finetune", stage_dir, [FullAgentExport(weights, config)],
                            "finetune.module.lr", max_steps=cfg.finetune.steps)
    log.info("fine-tuning %s heads for %d updates on %d real + %d synthetic latents (synthetic ratio %.2f)",
             ", ".join(agent.heads()), cfg.finetune.steps, *(0 if rows is None else len(rows)
                                                           for rows in (datamodule.real, datamodule.synthetic)),
             datamodule.synthetic_ratio)
    updates = fit(trainer, module, datamodule, resume_checkpoint(stage_dir), weights)
    ctx.put("finetuned", Trained(agent, updates, config, weights))
    return {"updates": updates, "weights": str(weights), "metrics": trainer_metrics(trainer)}
