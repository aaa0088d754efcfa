"""Background overlay: DMC-GB's random_overlay, blending each transition with one texture from a bank."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from synthvis.datamodules.augmentations.frame_op import randint

OVERLAY_SOURCES = ("procedural", "image_folder")


class BackgroundOverlay:
    """out = (1 − α)·x + α·texture, one texture per transition, the same on every frame (DMC-GB, α = 0.5).

    The bank holds `count` textures: procedural ones from the "augment" split (whose seeds never overlap the
    "test" split used for distracted evaluation), or the images of a folder (sorted by name, centre-cropped).
    It is built on first use at the batch's size and kept as a uint8 tensor on the batch's device.
    """

    def __init__(
        self, alpha: float = 0.5, source: str = "procedural", path: str | Path | None = None, count: int = 64,
        seed: int = 0,
    ) -> None:
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"overlay alpha must be in [0, 1], got {alpha}")
        if source not in OVERLAY_SOURCES:
            raise ValueError(f"unknown overlay source {source!r}; choose one of {OVERLAY_SOURCES}")
        if source == "image_folder" and path is None:
            raise ValueError("the image_folder overlay source needs a folder path")
        if count < 1:
            raise ValueError(f"overlay texture count must be >= 1, got {count}")
        self.alpha, self.source, self.path, self.count, self.seed = alpha, source, path, count, seed
        self._bank: torch.Tensor | None = None

    def __call__(self, frames: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(n, F, 3, H, W) frames blended with their transition's texture."""
        n, _, _, height, width = frames.shape
        bank = self.bank(height, width, frames.device)
        texture = bank[randint(generator, n, 0, len(bank))].to(frames.dtype).div(255).unsqueeze(1)
        # lerp is exact at both ends: α = 0 gives x and α = 1 gives the texture.
        return torch.lerp(frames, texture, self.alpha)

    def bank(self, height: int, width: int, device: torch.device) -> torch.Tensor:
        """The textures as (count, 3, height, width) uint8 on `device`, built the first time that size is asked."""
        if self._bank is None or self._bank.shape[-2:] != (height, width):
            side = max(height, width)
            textures = torch.from_numpy(self._textures(side)).permute(0, 3, 1, 2)
            self._bank = textures[..., :height, :width].contiguous()
        self._bank = self._bank.to(device)
        return self._bank

    def _textures(self, side: int) -> np.ndarray:
        # Imported here: the distractions package pulls in MuJoCo, which pixel augmentation does not need.
        from synthvis.envs.distractions.background_sources import ImageFolderSource, procedural_textures

        if self.source == "procedural":
            return procedural_textures("augment", self.count, side, self.seed)
        folder = ImageFolderSource(self.path)
        return np.stack([folder.video(index, side)[0] for index in range(min(self.count, len(folder)))])
