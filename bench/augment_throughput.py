"""Pixel augmentation throughput: ms per batch and samples/s for each op, the composites and DrQ's random shift.

    python bench/augment_throughput.py [--batch-size 256] [--image-size 84] [--repeats 10] [--threads 2]
                                       [--device cpu]

A batch is obs + next_obs, each uint8 (B, 9, H, W) (frame stack 3), so every row processes 2 × 9 RGB-channel
frames per sample. Single-op rows run with p = 1 (every transition augmented); the composite rows with the
config default p = 0.5. RandomShift is timed as the agents call it: once on obs and once on next_obs. The
median over `--repeats` timed calls is reported, after two warm-up calls.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from synthvis.core.batches import ContinuousBatch
from synthvis.datamodules.augmentations import (
    BackgroundOverlay,
    ColorCutout,
    ColorJitter,
    Grayscale,
    PixelAugmentation,
    RandomShift,
    Rotation,
)


def paper_ops() -> dict:
    """The four ops of conf/augment/paper.yaml, with its defaults."""
    return {"rotation": Rotation(), "color_jitter": ColorJitter(), "color_cutout": ColorCutout(),
            "background_overlay": BackgroundOverlay()}


def cases() -> dict[str, Callable[[ContinuousBatch], object]]:
    """Row label -> a callable taking the batch."""
    single = {
        "rotation (rot90 ±90°)": Rotation(),
        "rotation (continuous ±90°, bilinear)": Rotation("continuous"),
        "color_jitter (0.4/0.4/0.4/0.5)": ColorJitter(),
        "color_cutout (10–30 px)": ColorCutout(),
        "background_overlay (α 0.5, procedural)": BackgroundOverlay(),
        "grayscale": Grayscale(),
    }
    rows = {label: PixelAugmentation({label: op}, p=1.0, seed=0) for label, op in single.items()}
    rows["composite paper (p 0.5)"] = PixelAugmentation(paper_ops(), p=0.5, seed=0)
    rows["composite all (p 0.5)"] = PixelAugmentation({**paper_ops(), "grayscale": Grayscale()}, p=0.5, seed=0)
    shift = RandomShift(pad=4, seed=0)
    rows["RandomShift pad 4 (obs and next_obs)"] = lambda batch: (shift(batch.obs), shift(batch.next_obs))
    return rows


def seconds_per_call(function: Callable[[ContinuousBatch], object], batch: ContinuousBatch, repeats: int) -> float:
    """Median wall time of one call, after two warm-ups (the overlay bank is built in the first)."""
    synchronize = torch.cuda.synchronize if batch.obs.is_cuda else (lambda: None)
    for _ in range(2):
        function(batch)
    times = []
    for _ in range(repeats):
        synchronize()
        started = time.perf_counter()
        function(batch)
        synchronize()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    """Print one markdown table row per case."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--image-size", type=int, default=84)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    shape = (args.batch_size, 9, args.image_size, args.image_size)
    obs, next_obs = (torch.randint(0, 256, shape, generator=generator, dtype=torch.uint8).to(args.device)
                     for _ in range(2))
    batch = ContinuousBatch(obs, torch.zeros(args.batch_size, 6), torch.zeros(args.batch_size),
                            torch.ones(args.batch_size), next_obs)
    print(f"uint8 {tuple(shape)} obs + next_obs on {args.device}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}\n")
    print("| op | ms / batch | samples/s |\n|---|---:|---:|")
    for label, function in cases().items():
        seconds = seconds_per_call(function, batch, args.repeats)
        print(f"| {label} | {1000 * seconds:,.1f} | {args.batch_size / seconds:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
