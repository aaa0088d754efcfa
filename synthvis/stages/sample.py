"""The sample stage: synthetic latent transitions from the EMA diffusion model, post-processed and checked."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from synthvis.core.latent_layout import LatentLayout
from synthvis.datamodules.latent import split_rows
from synthvis.datamodules.latent_files import save_latents
from synthvis.metrics.wasserstein import per_dimension_wasserstein
from synthvis.stages.common import build_loggers, stage_device
from synthvis.stages.context import Latents, RunContext
from synthvis.utils.loggers import tensorboard_writer

log = logging.getLogger(__name__)


def run(ctx: RunContext) -> dict[str, Any]:
    """Draw `sample.num_samples` rows -> `synthetic`, synthetic/; log fidelity diagnostics."""
    cfg = ctx.cfg
    model = ctx.trained("diffusion").module
    real = ctx.latents("latents")
    layout = real.layout
    raw = model.to(stage_device(cfg)).eval().sample(cfg.sample.num_samples, instantiate(cfg.sample.sampler),
                                                    batch_size=cfg.sample.batch_size, seed=cfg.seed).numpy()
    model.cpu()  # where a loaded model would be
    # Post-processing: tanh latents and actions clipped to [-1, 1], one-hot actions argmaxed, terminals thresholded.
    synthetic = np.asarray(layout.pack(layout.decode(raw)), dtype=np.float32)
    folder = save_latents(ctx.run_dir / "synthetic", synthetic, layout)
    ctx.put("synthetic", Latents(synthetic, layout))
    # The diffusion stage's split of the real rows: its training rows, and the held-out rows it never trained on.
    train_rows, held_out_rows = split_rows(len(real.array), cfg.diffusion.datamodule.val_fraction,
                                           cfg.diffusion.datamodule.seed)
    train = np.asarray(real.array[train_rows], dtype=np.float32)
    held_out = np.asarray(real.array[held_out_rows], dtype=np.float32) if len(held_out_rows) else train
    diagnostics = fidelity(model.normalizer.normalize, train, held_out, synthetic, cfg.seed)
    log_fidelity(cfg, layout, train, synthetic, diagnostics)
    log.info("synthetic: %d rows -> %s; mean per-dimension W1 (normalized units) synthetic vs held-out real %.3f, "
             "real train vs held-out real %.3f", len(synthetic), folder, diagnostics["w1_synthetic"],
             diagnostics["w1_real"])
    return {"rows": len(synthetic), "folder": str(folder), **diagnostics}


def fidelity(normalize, train: np.ndarray, held_out: np.ndarray, synthetic: np.ndarray,
             seed: int = 0) -> dict[str, float]:
    """Mean per-dimension W1 (in normalized units) of synthetic and of real training rows to held-out real rows.

    The real-vs-real distance (a seeded random subset of as many training rows as synthetic ones, at most: the rows
    are stored in order, original views before augmented ones) is the floor a perfect generator would reach with
    this many held-out rows.
    """
    subset = np.random.default_rng(seed).choice(len(train), min(len(train), len(synthetic)), replace=False)
    held, real, synth = (normalize(torch.as_tensor(x)).numpy() for x in (held_out, train[np.sort(subset)], synthetic))
    return {"w1_synthetic": float(per_dimension_wasserstein(synth, held).mean()),
            "w1_real": float(per_dimension_wasserstein(real, held).mean())}


def log_fidelity(cfg: DictConfig, layout: LatentLayout, real: np.ndarray, synthetic: np.ndarray,
                 diagnostics: dict[str, float]) -> None:
    """Real vs synthetic marginal histograms per field (SynthER's Figure 8) and the distances, to the loggers."""
    loggers = build_loggers(cfg, "sample")
    writer = tensorboard_writer(loggers)
    if writer is not None:
        for kind, rows in (("real", real), ("synthetic", synthetic)):
            for name, block in layout.unpack(rows).items():
                writer.add_histogram(f"fidelity/{name}/{kind}", np.asarray(block, dtype=np.float32), 0)
    for logger in loggers:
        logger.log_metrics({f"fidelity/{key}": value for key, value in diagnostics.items()}, step=0)
        logger.finalize("success")
