"""An image of what an augmentation does, for TensorBoard's `add_image`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch
import torch.nn.functional as F

from synthvis.core.batches import ContinuousBatch, DiscreteBatch

Batch = TypeVar("Batch", ContinuousBatch, DiscreteBatch)


def augmentation_grid(batch: Batch, augmentation: Callable[[Batch], Batch], n: int = 8) -> torch.Tensor:
    """(3, 2·(H+2), m·(W+2)) uint8 CPU image, m = min(n, B): newest obs frames on top, augmented below.

    Each frame gets a 1-pixel white border. Columns the augmentation skipped (probability 1 − p) look the
    same in both rows.
    """
    head = type(batch)(*(field[:n] for field in batch))
    rows = torch.stack([head.obs[:, -3:].float(), augmentation(head).obs[:, -3:].float()])
    tiles = F.pad(rows.round().clamp(0, 255).to(torch.uint8), (1, 1, 1, 1), value=255)  # (2, m, 3, H+2, W+2)
    num_rows, m, channels, height, width = tiles.shape
    return tiles.permute(2, 0, 3, 1, 4).reshape(channels, num_rows * height, m * width).cpu()
