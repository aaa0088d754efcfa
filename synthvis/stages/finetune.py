"""The finetune stage: the policy and Q heads retrained on real + synthetic latents, encoder and trunks frozen."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig

from synthvis.callbacks.export import FullAgentExport
from synthvis.datamodules.latent_files import load_latents
from synthvis.stages.common import build_trainer, resume_checkpoint
from synthvis.utils.weights import load_weights

log = logging.getLogger(__name__)


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Fine-tune for `steps.finetune` updates; write <run_dir>/finetune/agent.pt (a complete agent)."""
    stage_dir = run_dir / "finetune"
    base_weights = run_dir / "agent" / "agent.pt"
    agent, extras = load_weights(base_weights)
    real, layout = load_latents(run_dir / "latents")
    synthetic = None
    if cfg.finetune.synthetic_ratio > 0:
        synthetic, synthetic_layout = load_latents(run_dir / "synthetic")
        if synthetic_layout.to_dict() != layout.to_dict():
            raise ValueError(f"{run_dir / 'synthetic'} was sampled for another latent layout than "
                             f"{run_dir / 'latents'}; rerun the diffusion and sample stages")
    module = instantiate(cfg.finetune.module, agent=agent, layout=layout, base_updates=extras["updates"])
    datamodule = instantiate(cfg.finetune.datamodule, real=real if cfg.finetune.synthetic_ratio < 1 else None,
                             synthetic=synthetic, layout=layout)
    weights = stage_dir / "agent.pt"
    trainer = build_trainer(cfg, "finetune", stage_dir, [FullAgentExport(weights, extras["config"])],
                            "finetune.module.lr",
                            max_steps=cfg.steps.finetune)
    log.info("fine-tuning %s heads for %d updates on %d real + %d synthetic latents (synthetic ratio %.2f)",
             ", ".join(agent.heads()), cfg.steps.finetune, 0 if real is None else len(real),
             0 if synthetic is None else len(synthetic), cfg.finetune.synthetic_ratio)
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_checkpoint(stage_dir))
    return {"updates": load_weights(weights)[1]["updates"], "weights": str(weights),
            "metrics": {name: float(value) for name, value in trainer.callback_metrics.items()}}
