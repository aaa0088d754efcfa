"""PixelAugmentation: per transition, with probability p, one op drawn from the enabled set."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

import torch

from synthvis.core.batches import ContinuousBatch, DiscreteBatch
from synthvis.datamodules.augmentations.frame_op import FrameOp, randint, uniform
from synthvis.datamodules.augmentations.generators import SeededGenerators

Batch = TypeVar("Batch", ContinuousBatch, DiscreteBatch)

# On the CPU the ops run on chunks of about this many bytes of float frames: glibc hands out larger blocks as
# fresh mmap pages on every allocation, and their page faults cost more than the ops themselves (batch 256 at
# 84 px in one piece ran 2-5x slower per op on the 2-core machine). GPU batches run in one piece.
CPU_CHUNK_BYTES = 4 * 2**20


class PixelAugmentation:
    """Augment a batch's obs and next_obs; every other field passes through untouched.

    Per transition: with probability `p` one op, drawn uniformly from `ops`, with one set of parameters for
    all stacked frames of obs and next_obs; otherwise the transition is left exactly as it was. Parameters
    come from a generator on the batch's device (`seed` / `seed()`; or pass `generator` per call).

    Values: uint8 input returns uint8 (rounded, clamped); float input in [0, 255] returns the same float
    dtype in [0, 255], clamped but not rounded. The ops work on float in [0, 1] (kornia's colour range), so
    the chosen transitions are divided by 255 and scaled back; the untouched ones are never converted, so they
    come back bit-exact.
    """

    def __init__(self, ops: Mapping[str, FrameOp | None], p: float = 0.5, seed: int | None = None) -> None:
        # None entries are ops switched off from the config (augment.ops.<name>=null).
        self.ops = {name: op for name, op in ops.items() if op is not None}
        if not self.ops:
            raise ValueError("PixelAugmentation needs at least one op; use augment=none to switch augmentation off")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"augmentation probability p must be in [0, 1], got {p}")
        self.p = p
        self.generators = SeededGenerators(seed)

    def seed(self, seed: int) -> None:
        """Restart the parameter stream from `seed` on every device."""
        self.generators.seed(seed)

    def __call__(self, batch: Batch, generator: torch.Generator | None = None) -> Batch:
        """The batch with augmented obs and next_obs."""
        obs, next_obs = self.augment(batch.obs, batch.next_obs, generator)
        return batch._replace(obs=obs, next_obs=next_obs)

    def augment(
        self, obs: torch.Tensor, next_obs: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Augmented copies of (B, 3k, H, W) obs and next_obs, sharing each transition's parameters."""
        if obs.shape != next_obs.shape or obs.dim() != 4 or obs.shape[1] % 3:
            raise ValueError(f"obs and next_obs must both be (B, 3k, H, W), got {tuple(obs.shape)} and "
                             f"{tuple(next_obs.shape)}")
        # With its own streams, which op each transition gets is drawn on the host, so the group sizes are known
        # without waiting for the device and only the grouping order goes to it, asynchronously. A caller's
        # generator draws everything (on a GPU, reading the group sizes back waits for it once per call).
        host = self.generators(torch.device("cpu")) if generator is None else generator
        generator = generator if generator is not None else self.generators(obs.device)
        batch, channels, height, width = obs.shape
        # All 2k RGB frames of a transition in one row: an op then cannot treat s and s' differently.
        frames = torch.cat([obs, next_obs], dim=1).view(batch, 2 * channels // 3, 3, height, width)
        # Transitions are grouped by op with one sort, not a loop over B.
        skipped = uniform(host, batch, 0.0, 1.0) >= self.p
        choice = randint(host, batch, 0, len(self.ops)).masked_fill(skipped, len(self.ops))
        counts = torch.bincount(choice, minlength=len(self.ops) + 1).tolist()
        groups = _to_device(torch.argsort(choice, stable=True), frames.device).split(counts)
        chunk = max(1, CPU_CHUNK_BYTES // (4 * frames[0].numel())) if frames.device.type == "cpu" else batch
        for op, index in zip(self.ops.values(), groups):  # the last group, the skipped transitions, stays as is
            for part in index.split(chunk) if len(index) else ():
                frames[part] = _apply_in_unit_range(op, frames[part], generator)
        frames = frames.view(batch, 2 * channels, height, width)
        return frames[:, :channels].contiguous(), frames[:, channels:].contiguous()


def _to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """`tensor` on `device`; from the host to a GPU through page-locked memory, so the copy does not wait for it."""
    if tensor.device == device:
        return tensor
    if tensor.device.type == "cpu" and device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def _apply_in_unit_range(op: FrameOp, frames: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Run `op` on frames in [0, 255] through its [0, 1] float range and back to the frames' dtype."""
    unit = frames.to(torch.promote_types(frames.dtype, torch.float32)).div_(255)
    out = op(unit, generator) * 255  # not in place: an op may return a view (grayscale's expand)
    if not frames.is_floating_point():
        out.round_()
    return out.clamp_(0, 255).to(frames.dtype)


def make_augmentation(
    ops: Mapping[str, FrameOp | None], p: float = 0.5, seed: int | None = None
) -> PixelAugmentation | None:
    """Build the composite from config: None (augmentation off) when no op is enabled or p is 0."""
    if p == 0 or all(op is None for op in ops.values()):
        return None
    return PixelAugmentation(ops, p, seed)
