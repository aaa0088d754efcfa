"""The diffusion stage: SynthER's EDM residual-MLP denoiser trained on the normalized real latent transitions."""

from __future__ import annotations

import logging
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from synthvis.callbacks.export import ExportWeights
from synthvis.datamodules.latent import LatentDataModule
from synthvis.lightning_modules.latent_diffusion import LatentDiffusion
from synthvis.stages.common import build_trainer, fit, resume_checkpoint, trainer_metrics
from synthvis.stages.context import RunContext, Trained

log = logging.getLogger(__name__)


def training_parts(ctx: RunContext) -> tuple[LatentDiffusion, LatentDataModule, DictConfig]:
    """The untrained model with its normalizer, its set-up datamodule and the config saved with its weights."""
    cfg, latents = ctx.cfg, ctx.latents("latents")
    datamodule = instantiate(cfg.diffusion.datamodule, data=latents.array, layout=latents.layout)
    datamodule.setup("fit")
    # The saved config rebuilds the model on its own: resolved, with the row width filled in.
    model_cfg = OmegaConf.create(OmegaConf.to_container(cfg.diffusion.model, resolve=True)
                                 | {"d_in": latents.layout.dim})
    model = instantiate(model_cfg)
    model.set_normalizer(datamodule.normalizer)
    return model, datamodule, model_cfg


def run(ctx: RunContext) -> dict[str, Any]:
    """Train for `diffusion.steps` updates -> `diffusion`, diffusion/model.pt (EMA and normalizer inside)."""
    cfg, stage_dir = ctx.cfg, ctx.run_dir / "diffusion"
    latents = ctx.latents("latents")
    model, datamodule, model_cfg = training_parts(ctx)
    weights = stage_dir / "model.pt"
    trainer = build_trainer(cfg, "diffusion", stage_dir, [ExportWeights(weights, model_cfg)], "diffusion.model.lr",
                            max_steps=cfg.diffusion.steps)
    log.info("training the diffusion model (d=%d, %d parameters) for %d updates at batch %d on %d latent rows",
             latents.layout.dim, sum(p.numel() for p in model.denoiser.parameters()), cfg.diffusion.steps,
             datamodule.batch_size, len(datamodule.train_set))
    updates = fit(trainer, model, datamodule, resume_checkpoint(stage_dir), weights)
    ctx.put("diffusion", Trained(model, updates, model_cfg, weights))
    return {"updates": updates, "weights": str(weights), "d_in": latents.layout.dim,
            "metrics": trainer_metrics(trainer)}
