"""The latents stage: every training transition through the frozen encoder and trunks (plus augmented views)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from synthvis.datamodules.augmentations.composite import PixelAugmentation
from synthvis.datamodules.latent_extraction import extract_latents, save_latents
from synthvis.datamodules.pixel import PixelDataModule
from synthvis.stages.common import load_weights

log = logging.getLogger(__name__)


def stage_device(cfg: DictConfig) -> torch.device:
    """The GPU when the trainer asks for one and it exists, else the CPU."""
    wants_gpu = cfg.trainer.accelerator in ("gpu", "cuda", "auto")
    return torch.device("cuda" if wants_gpu and torch.cuda.is_available() else "cpu")


def view_augmentation(cfg: DictConfig) -> PixelAugmentation | None:
    """The `augment` group's ops applied with probability `upsample.latent.view_p` (default 1: every transition of
    an augmented view is augmented, rather than the training batches' mix of augmented and original)."""
    return instantiate(cfg.augment, p=cfg.upsample.latent.view_p)


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Write <run_dir>/latents/{latents.npy, layout.json}."""
    agent, _ = load_weights(run_dir / "agent" / "agent.pt")
    datamodule: PixelDataModule = instantiate(cfg.data, augmentation=None)
    datamodule.prepare_data()
    datamodule.setup("fit")
    views = cfg.upsample.latent.augmented_views
    augmentation = view_augmentation(cfg) if views else None
    if views and augmentation is None:
        raise ValueError("upsample.latent.augmented_views > 0 needs pixel augmentations (augment=paper or all)")
    array, layout = extract_latents(agent, datamodule.train_set, cfg.upsample.latent.batch_size, augmentation,
                                    views, cfg.upsample.latent.seed, stage_device(cfg))
    folder = save_latents(run_dir / "latents", array, layout)
    log.info("latents: %d rows (%d transitions x %d views) of dim %d (%s) -> %s", len(array),
             len(datamodule.train_set), 1 + views, layout.dim, ", ".join(f"{f.name}:{f.size}" for f in layout.fields),
             folder)
    return {"rows": len(array), "dim": layout.dim, "views": views, "folder": str(folder)}
