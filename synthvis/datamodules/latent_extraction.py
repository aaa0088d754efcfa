"""Stage-3 latent extraction: every transition through the frozen encoder + trunks, packed by a LatentLayout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from synthvis.datamodules.augmentations.composite import PixelAugmentation
from synthvis.datamodules.latent_layout import LatentLayout, layout_for_agent
from synthvis.datamodules.transitions import ContinuousBatch, DiscreteBatch, TransitionDataset
from synthvis.lightning_modules.offline_agent import OfflineAgent
from synthvis.utils.files import atomic_write, atomic_write_json

LATENTS_FILE = "latents.npy"
LAYOUT_FILE = "layout.json"


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
    applies it), on `device` (default: where the agent is), which it is moved to. Rewards are the dataset's
    n-step rewards and next latents are taken at t + n; the layout's `discount` is gamma^n.
    """
    if views < 0 or (views > 0 and augmentation is None):
        raise ValueError(f"augmented views need views >= 1 and an augmentation, got views={views}, "
                         f"augmentation={augmentation}")
    device = torch.device(device) if device is not None else agent.device
    was_training = agent.training
    agent.to(device).eval()
    layout = layout_for_agent(agent, discount=dataset.gamma**dataset.nstep)
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
    agent.train(was_training)
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


def save_latents(folder: str | Path, array: np.ndarray, layout: LatentLayout) -> Path:
    """Write `array` as <folder>/latents.npy and the layout as layout.json, each atomically; return the folder.

    layout.json is written last. Real latents and synthetic samples are stored the same way.
    """
    folder = Path(folder)
    if array.ndim != 2 or array.shape[1] != layout.dim:
        raise ValueError(f"expected (N, {layout.dim}) latent transitions, got shape {array.shape}")
    atomic_write(folder / LATENTS_FILE, lambda handle: np.save(handle, np.asarray(array, dtype=np.float32)))
    atomic_write_json(folder / LAYOUT_FILE, layout.to_dict())
    return folder


def load_latents(folder: str | Path, mmap: bool = True) -> tuple[np.ndarray, LatentLayout]:
    """The (N, D) array (memory-mapped read-only by default) and the layout that `save_latents` wrote."""
    folder = Path(folder)
    if not (folder / LAYOUT_FILE).exists() or not (folder / LATENTS_FILE).exists():
        raise FileNotFoundError(f"{folder} holds no {LATENTS_FILE} + {LAYOUT_FILE}; run the stage that writes "
                                "them first (latents for real data, sample for synthetic data)")
    layout = LatentLayout.from_dict(json.loads((folder / LAYOUT_FILE).read_text()))
    array = np.load(folder / LATENTS_FILE, mmap_mode="r" if mmap else None)
    if array.ndim != 2 or array.shape[1] != layout.dim:
        raise ValueError(f"{folder / LATENTS_FILE} has shape {array.shape} but its layout needs (N, {layout.dim})")
    return array, layout
