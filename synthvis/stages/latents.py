"""The latents stage: every training transition through the frozen encoder and trunks (plus augmented views),
packed by the agent's LatentLayout."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from tqdm.auto import tqdm

from synthvis.core.batches import ContinuousBatch, DiscreteBatch
from synthvis.core.latent_layout import LatentLayout
from synthvis.datamodules.augmentations.composite import PixelAugmentation
from synthvis.datamodules.latent_files import save_latents
from synthvis.datamodules.transitions import TransitionDataset
from synthvis.lightning_modules.offline_agent import OfflineAgent
from synthvis.stages.common import stage_device
from synthvis.stages.context import Latents, RunContext

log = logging.getLogger(__name__)


def extract_latents(
    agent: OfflineAgent,
    dataset: TransitionDataset,
    batch_size: int = 1024,
    augmentation: PixelAugmentation | None = None,
    views: int = 0,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> tuple[np.ndarray, LatentLayout]:
    """Packed latent transitions of every item of `dataset`, in order, then `views` augmented copies of them all.

    Rows [0, N) are the transitions as stored; rows [v N, (v + 1) N) are view v, where obs and next_obs of
    each transition went through `augmentation` with one shared parameter draw (from a generator seeded with
    `seed`). The agent runs in eval mode under no_grad, without its training random shift (`latents` never
    applies it), on `device` (default: where the agent is), and moved back after. Rewards are the dataset's
    n-step rewards and next latents are taken at t + n; the layout's `discount` is gamma^n.
    """
    if views < 0 or (views > 0 and augmentation is None):
        raise ValueError(f"augmented views need views >= 1 and an augmentation, got views={views}, "
                         f"augmentation={augmentation}")
    device = torch.device(device) if device is not None else agent.device
    was_training, home = agent.training, agent.device
    agent.to(device).eval()
    layout = agent.latent_layout(discount=dataset.gamma**dataset.nstep)
    num = len(dataset)
    out = np.empty(((1 + views) * num, layout.dim), dtype=np.float32)
    generator = torch.Generator(device).manual_seed(seed) if views else None
    with torch.no_grad(), tqdm(total=len(out), desc="latents", unit="transition", disable=not progress) as bar:
        for start in range(0, num, batch_size):
            batch = dataset.__getitems__(range(start, min(start + batch_size, num)))
            batch = type(batch)(*(field.to(device) for field in batch))
            if isinstance(batch, ContinuousBatch):
                check_constant_discount(batch, layout.discount, start)
            for view in range(1 + views):
                obs, next_obs = augmented_view(batch, augmentation, generator) if view else (batch.obs, batch.next_obs)
                row = view * num + start
                out[row:row + len(obs)] = layout.pack(transition_fields(agent, batch, obs, next_obs)).cpu().numpy()
                bar.update(len(obs))
    agent.to(home).train(was_training)
    return out, layout


def check_constant_discount(batch: ContinuousBatch, discount: float, start: int) -> None:
    """Refuse DMC data with terminals: the layout stores gamma^n once instead of a terminal field."""
    if not torch.allclose(batch.discount, torch.full_like(batch.discount, discount)):
        raise ValueError(f"transitions {start}..{start + len(batch.obs) - 1} have discounts other than "
                         f"gamma^n = {discount:.6g}: continuous-action datasets must have no terminals")


def augmented_view(batch: ContinuousBatch | DiscreteBatch, augmentation: PixelAugmentation,
                   generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """obs and next_obs augmented with one parameter draw per transition, shared by s and s'."""
    obs, next_obs = augmentation.augment(batch.obs, batch.next_obs, generator)
    if isinstance(batch, DiscreteBatch):
        # A terminal's next obs stays all zeros (gen_dgrl), so its latent stays the one constant vector.
        next_obs = next_obs * (1 - batch.done).to(next_obs.dtype)[:, None, None, None]
    return obs, next_obs


def transition_fields(agent: OfflineAgent, batch: ContinuousBatch | DiscreteBatch, obs: torch.Tensor,
                      next_obs: torch.Tensor) -> dict[str, torch.Tensor]:
    """The layout fields of one batch: latents of obs and next_obs (one encoder pass), action, reward[, done]."""
    both = agent.latents(torch.cat([obs, next_obs]))
    fields = {name: z[:len(obs)] for name, z in both.items()}
    fields.update({f"next_{name}": z[len(obs):] for name, z in both.items()})
    fields.update(action=batch.action, reward=batch.reward)
    if isinstance(batch, DiscreteBatch):
        fields["done"] = batch.done
    return fields


def view_augmentation(cfg: DictConfig) -> PixelAugmentation | None:
    """The `augment` group's ops applied with probability `latents.view_p` (default 1: every transition of
    an augmented view is augmented, rather than the training batches' mix of augmented and original)."""
    return instantiate(cfg.augment, p=cfg.latents.view_p)


def run(ctx: RunContext) -> dict[str, Any]:
    """The base agent's latents of every training transition -> `latents`, latents/{latents.npy, layout.json}."""
    cfg = ctx.cfg
    views = cfg.latents.augmented_views
    augmentation = view_augmentation(cfg) if views else None
    if views and augmentation is None:
        raise ValueError("latents.augmented_views > 0 needs pixel augmentations (augment=paper or all)")
    dataset = ctx.pixel_data().train_set
    array, layout = extract_latents(ctx.trained("agent").module, dataset, cfg.latents.batch_size,
                                    augmentation, views, cfg.latents.seed, stage_device(cfg))
    folder = save_latents(ctx.run_dir / "latents", array, layout)
    ctx.put("latents", Latents(array, layout))
    log.info("latents: %d rows (%d transitions x %d views) of dim %d (%s) -> %s", len(array), len(dataset),
             1 + views, layout.dim, ", ".join(f"{f.name}:{f.size}" for f in layout.fields), folder)
    return {"rows": len(array), "dim": layout.dim, "views": views, "folder": str(folder)}
