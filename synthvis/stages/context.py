"""What stages hand on to later stages: values in memory, read from the run directory only when the stage that
made them finished in an earlier process (a resumed run, or `stages=[...]` picking later stages)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn

from synthvis.core.latent_layout import LatentLayout
from synthvis.datamodules.latent_files import LAYOUT_FILE, load_latents
from synthvis.datamodules.pixel import PixelDataModule
from synthvis.utils.weights import load_weights


@dataclass
class Trained:
    """A module a training stage produced, with its update count and the config that rebuilds it."""

    module: nn.Module
    updates: int
    config: DictConfig
    path: Path  # its portable weights (utils/weights.py)


@dataclass
class Latents:
    """Packed latent transitions, (N, layout.dim) float32, and the layout of their columns."""

    array: np.ndarray
    layout: LatentLayout


# Where each value lives in a run directory, for runs whose producing stage finished in an earlier process.
WEIGHTS = {"agent": "agent/agent.pt", "diffusion": "diffusion/model.pt", "finetuned": "finetune/agent.pt"}
LATENTS = {"latents": "latents", "synthetic": "synthetic"}


class RunContext:
    """The run's config, its directory and the values its stages have produced so far.

    A stage stores what later stages need with `put`; they read it with `trained`, `latents` or `pixel_data`,
    which fall back to the files the producing stage wrote when it ran in another process.
    """

    def __init__(self, cfg: DictConfig, run_dir: Path) -> None:
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.values: dict[str, Trained | Latents | PixelDataModule] = {}

    def put(self, name: str, value: Trained | Latents | PixelDataModule) -> None:
        """Hand `value` on to later stages under `name` (agent, diffusion, finetuned, latents, synthetic, data)."""
        self.values[name] = value

    def has(self, name: str) -> bool:
        """Whether `name` was produced, in this process or by a finished stage of this run directory."""
        if name in self.values:
            return True
        if name in WEIGHTS:
            return (self.run_dir / WEIGHTS[name]).exists()
        return name in LATENTS and (self.run_dir / LATENTS[name] / LAYOUT_FILE).exists()

    def trained(self, name: str) -> Trained:
        """The trained module `name` (agent, diffusion or finetuned)."""
        if name not in self.values:
            path = self.run_dir / WEIGHTS[name]
            module, extras = load_weights(path)
            self.values[name] = Trained(module, int(extras["updates"]), extras["config"], path)
        return self.values[name]

    def latents(self, name: str) -> Latents:
        """The real (`latents`) or synthetic (`synthetic`) latent transitions."""
        if name not in self.values:
            self.values[name] = Latents(*load_latents(self.run_dir / LATENTS[name]))
        return self.values[name]

    def pixel_data(self) -> PixelDataModule:
        """The `data` group's datamodule, prepared and set up once for every stage of this process."""
        if "data" not in self.values:
            datamodule: PixelDataModule = instantiate(self.cfg.data)
            datamodule.prepare_data()
            datamodule.setup("fit")
            self.values["data"] = datamodule
        return self.values["data"]
