"""Latent transitions on disk: an (N, D) float32 latents.npy beside the layout.json that describes its columns."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from synthvis.core.latent_layout import LatentLayout
from synthvis.utils.files import atomic_write, atomic_write_json

LATENTS_FILE = "latents.npy"
LAYOUT_FILE = "layout.json"


def save_latents(folder: str | Path, array: np.ndarray, layout: LatentLayout) -> Path:
    """Write `array` as <folder>/latents.npy and the layout as layout.json, each atomically; return the folder.

    layout.json is written last. Real latents and synthetic samples are stored the same way.
    """
    folder = Path(folder)
    layout.check_rows(array, f"the latent transitions for {folder}")
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
    layout.check_rows(array, str(folder / LATENTS_FILE))
    return array, layout
