"""The sample stage: synthetic latent transitions from the EMA diffusion model, post-processed and checked."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from synthvis.datamodules.latent_files import save_latents
from synthvis.metrics.wasserstein import per_dimension_wasserstein
from synthvis.stages.common import stage_device
from synthvis.utils.weights import load_weights

log = logging.getLogger(__name__)


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Draw `upsample.num_samples` rows; write <run_dir>/synthetic/ and log fidelity diagnostics."""
    model, _ = load_weights(run_dir / "diffusion" / "model.pt")
    model = model.to(stage_device(cfg)).eval()
    datamodule = instantiate(cfg.upsample.datamodule, data=str(run_dir / "latents"))
    datamodule.setup()
    layout = datamodule.layout
    sampler = instantiate(cfg.sampler)
    raw = model.sample(cfg.upsample.num_samples, sampler, batch_size=cfg.upsample.sample_batch_size,
                       seed=cfg.seed).numpy()
    # Post-processing: tanh latents and actions clipped to [-1, 1], one-hot actions argmaxed, terminals thresholded.
    synthetic = np.asarray(layout.pack(layout.decode(raw)), dtype=np.float32)
    folder = save_latents(run_dir / "synthetic", synthetic, layout)
    diagnostics = fidelity(model, datamodule, synthetic)
    log_fidelity(cfg, layout, datamodule, synthetic, diagnostics)
    log.info("synthetic: %d rows -> %s; mean per-dimension W1 (normalized units) synthetic vs held-out real %.3f, "
             "real train vs held-out real %.3f", len(synthetic), folder, diagnostics["w1_synthetic"],
             diagnostics["w1_real"])
    return {"rows": len(synthetic), "folder": str(folder), **diagnostics}


def fidelity(model, datamodule, synthetic: np.ndarray) -> dict[str, float]:
    """Mean per-dimension W1 (in normalized units) of synthetic and of real training rows to held-out real rows.

    The real-vs-real distance is the floor a perfect generator would reach with this many held-out rows.
    """
    held_out = datamodule.val_set.__getitems__(range(len(datamodule.val_set)))
    if len(held_out) == 0:
        held_out = datamodule.train_set.__getitems__(range(len(datamodule.train_set)))
    train = datamodule.train_set.__getitems__(range(min(len(datamodule.train_set), len(synthetic))))
    normalize = model.normalizer.cpu().normalize
    held, train, synth = (normalize(torch.as_tensor(x)).numpy() for x in (held_out, train, synthetic))
    return {"w1_synthetic": float(per_dimension_wasserstein(synth, held).mean()),
            "w1_real": float(per_dimension_wasserstein(train, held).mean())}


def log_fidelity(cfg: DictConfig, layout, datamodule, synthetic: np.ndarray, diagnostics: dict[str, float]) -> None:
    """Real vs synthetic marginal histograms per field (SynthER's Figure 8) and the distances, to TensorBoard."""
    logger = instantiate(cfg.logger, version="sample")
    writer = logger.experiment
    real = datamodule.train_set.__getitems__(range(len(datamodule.train_set))).numpy()
    for name, block in layout.unpack(real).items():
        writer.add_histogram(f"fidelity/{name}/real", np.asarray(block, dtype=np.float32), 0)
    for name, block in layout.unpack(synthetic).items():
        writer.add_histogram(f"fidelity/{name}/synthetic", np.asarray(block, dtype=np.float32), 0)
    logger.log_metrics({f"fidelity/{key}": value for key, value in diagnostics.items()}, step=0)
    logger.finalize("success")
