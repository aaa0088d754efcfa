"""The diffusion stage: SynthER's EDM residual-MLP denoiser trained on the normalized real latent transitions."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from synthvis.callbacks.export import ExportWeights
from synthvis.stages.common import build_trainer, resume_checkpoint
from synthvis.utils.weights import load_weights

log = logging.getLogger(__name__)


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Train for `steps.diffusion` updates; write <run_dir>/diffusion/model.pt (EMA and normalizer inside)."""
    stage_dir = run_dir / "diffusion"
    datamodule = instantiate(cfg.upsample.datamodule, data=str(run_dir / "latents"))
    datamodule.setup("fit")
    model_cfg = OmegaConf.create(OmegaConf.to_container(cfg.diffusion, resolve=False))
    with open_dict(model_cfg):
        model_cfg.d_in = datamodule.layout.dim
        model_cfg.max_steps = cfg.steps.diffusion
    model_cfg = OmegaConf.create(OmegaConf.to_container(model_cfg, resolve=True))
    model = instantiate(model_cfg)
    model.set_normalizer(datamodule.normalizer)
    weights = stage_dir / "model.pt"
    trainer = build_trainer(cfg, "diffusion", stage_dir, [ExportWeights(weights, model_cfg)], "diffusion.lr",
                            max_steps=cfg.steps.diffusion)
    log.info("training the diffusion model (d=%d, %d parameters) for %d updates at batch %d on %d latent rows",
             datamodule.layout.dim, sum(p.numel() for p in model.denoiser.parameters()), cfg.steps.diffusion,
             datamodule.batch_size, len(datamodule.train_set))
    trainer.fit(model, datamodule=datamodule, ckpt_path=resume_checkpoint(stage_dir))
    return {"updates": load_weights(weights)[1]["updates"], "weights": str(weights), "d_in": datamodule.layout.dim,
            "metrics": {name: float(value) for name, value in trainer.callback_metrics.items()}}
