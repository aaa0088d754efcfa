"""The agent stage: train the base offline agent on (augmented) pixels with a Lightning Trainer."""

from __future__ import annotations

import logging
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from synthvis.callbacks.export import ExportWeights
from synthvis.datamodules.augmentations import augmentation_grid
from synthvis.datamodules.pixel import PixelDataModule
from synthvis.lightning_modules.offline_agent import OfflineAgent
from synthvis.stages.agent_cache import cached_agent, publish_agent, restore_agent
from synthvis.stages.common import build_trainer, fit, resume_checkpoint, trainer_metrics
from synthvis.stages.context import RunContext, Trained
from synthvis.utils.loggers import tensorboard_writer

log = logging.getLogger(__name__)


def agent_config(cfg: DictConfig, datamodule: PixelDataModule) -> DictConfig:
    """The agent's config with the dataset's observation shape and action size filled in."""
    agent_cfg = OmegaConf.create(OmegaConf.to_container(cfg.agent, resolve=True))
    with open_dict(agent_cfg):
        agent_cfg.obs_shape = list(datamodule.obs_shape)
        agent_cfg.action_dim = datamodule.action_dim
    return agent_cfg


def log_augmentations(trainer, datamodule: PixelDataModule) -> None:
    """A grid of original vs augmented frames at the start of training (TensorBoard Images tab)."""
    writer = tensorboard_writer(trainer.loggers)
    if datamodule.augmentation is None or writer is None:
        return
    batch = datamodule.train_set.__getitems__(list(range(min(16, len(datamodule.train_set)))))
    writer.add_image("augment/original_vs_augmented", augmentation_grid(batch, datamodule.augmentation), 0)


def training_parts(ctx: RunContext) -> tuple[OfflineAgent, PixelDataModule, DictConfig]:
    """The untrained agent, the run's pixel datamodule and the agent's config (saved with its weights)."""
    datamodule = ctx.pixel_data()
    agent_cfg = agent_config(ctx.cfg, datamodule)
    agent = instantiate(agent_cfg)
    if agent.discrete != datamodule.discrete:
        kind = "discrete (Procgen)" if datamodule.discrete else "continuous (dm_control)"
        raise ValueError(f"agent {agent_cfg._target_} cannot train on {kind} actions: use agent="
                         f"{'cql' if datamodule.discrete else 'drqbc'}")
    return agent, datamodule, agent_cfg


def run(ctx: RunContext) -> dict[str, Any]:
    """Train `cfg.agent` for `cfg.agent_steps` updates (or reuse an identical agent) -> `agent`, agent/agent.pt."""
    cfg, stage_dir = ctx.cfg, ctx.run_dir / "agent"
    checkpoint = resume_checkpoint(stage_dir)
    cached = cached_agent(cfg) if cfg.reuse_agent and checkpoint is None else None
    if cached is not None:
        return restore_agent(cached, stage_dir)  # later stages read it from agent/agent.pt
    agent, datamodule, agent_cfg = training_parts(ctx)
    weights = stage_dir / "agent.pt"
    trainer = build_trainer(cfg, "agent", stage_dir, [ExportWeights(weights, agent_cfg)], "agent.lr",
                            max_steps=cfg.agent_steps)
    log.info("training %s for %d updates at batch %d on %s", agent_cfg._target_.rsplit(".", 1)[-1],
             cfg.agent_steps, datamodule.batch_size, trainer.strategy.root_device)
    if trainer.is_global_zero and checkpoint is None:
        log_augmentations(trainer, datamodule)
    updates = fit(trainer, agent, datamodule, checkpoint, weights)
    ctx.put("agent", Trained(agent, updates, agent_cfg, weights))
    result = {"updates": updates, "weights": str(weights), "metrics": trainer_metrics(trainer)}
    if cfg.reuse_agent and trainer.is_global_zero:
        log.info("agent cached for reuse in %s", publish_agent(cfg, stage_dir, result))
    return result
