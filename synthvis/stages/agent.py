"""The agent stage: train the base offline agent on (augmented) pixels with a Lightning Trainer."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from synthvis.callbacks.export import ExportWeights
from synthvis.datamodules.augmentations import augmentation_grid
from synthvis.datamodules.pixel import PixelDataModule
from synthvis.stages.agent_cache import cached_agent, publish_agent, restore_agent
from synthvis.stages.common import build_trainer, resume_checkpoint
from synthvis.utils.weights import load_weights

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
    experiment = getattr(trainer.logger, "experiment", None)
    if datamodule.augmentation is None or not hasattr(experiment, "add_image"):
        return
    batch = datamodule.train_set.__getitems__(list(range(min(16, len(datamodule.train_set)))))
    experiment.add_image("augment/original_vs_augmented", augmentation_grid(batch, datamodule.augmentation), 0)


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Train `cfg.agent` for `cfg.steps.agent` updates (or reuse an identical agent); write <run_dir>/agent/agent.pt."""
    stage_dir = run_dir / "agent"
    cached = cached_agent(cfg) if cfg.reuse_agent and resume_checkpoint(stage_dir) is None else None
    if cached is not None:
        return restore_agent(cached, stage_dir)
    datamodule: PixelDataModule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    agent_cfg = agent_config(cfg, datamodule)
    agent = instantiate(agent_cfg)
    if agent.discrete != datamodule.discrete:
        kind = "discrete (Procgen)" if datamodule.discrete else "continuous (dm_control)"
        raise ValueError(f"agent {agent_cfg._target_} cannot train on {kind} actions: use agent="
                         f"{'cql' if datamodule.discrete else 'drqbc'}")
    weights = stage_dir / "agent.pt"
    trainer = build_trainer(cfg, "agent", stage_dir, [ExportWeights(weights, agent_cfg)], "agent.lr",
                            max_steps=cfg.steps.agent)
    log.info("training %s for %d updates at batch %d on %s", agent_cfg._target_.rsplit(".", 1)[-1],
             cfg.steps.agent, datamodule.batch_size, trainer.strategy.root_device)
    checkpoint = resume_checkpoint(stage_dir)
    if trainer.is_global_zero and checkpoint is None:
        log_augmentations(trainer, datamodule)
    trainer.fit(agent, datamodule=datamodule, ckpt_path=checkpoint)
    metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}
    periodic = stage_dir / "eval.json"
    result = {"updates": load_weights(weights)[1]["updates"], "weights": str(weights), "metrics": metrics,
              "eval": json.loads(periodic.read_text())["envs"] if periodic.exists() else None}
    if cfg.reuse_agent and trainer.is_global_zero:
        log.info("agent cached for reuse in %s", publish_agent(cfg, stage_dir, result))
    return result
