"""PixelDataModule batch throughput: batches/s and transitions/s from a memory-mapped frame store.

    python bench/datamodule_throughput.py [--image-size 84] [--episodes 40] [--batches 50] [--device cuda]

Builds a V-D4RL-shaped store (501-row episodes of random frames) in a temp folder, then times the training
DataLoader at batch 256 (frame stack 3, 3-step returns) with 0 and 2 workers, and the gather from the same
transitions held on `--device` (`data.frames_on_device`: uploaded once, then one index per batch). Bytes moved
per batch: 2 * 256 * 9 * H * W (obs and next_obs), i.e. 32.5 MB at 84 px.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from synthvis.core.episode import Episode
from synthvis.datamodules.frame_store import FrameStore
from synthvis.datamodules.transitions import TransitionDataset, valid_rows


def random_episodes(count: int, image_size: int, length: int = 501, seed: int = 0):
    """Episodes of uniform-noise frames (compression-free worst case for reads)."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        yield Episode(frames=rng.integers(0, 256, size=(length, 3, image_size, image_size), dtype=np.uint8),
                      action=rng.uniform(-1, 1, size=(length, 6)).astype(np.float32),
                      reward=rng.uniform(0, 2, size=length).astype(np.float32),
                      discount=np.ones(length, dtype=np.float32))


def time_loader(dataset: TransitionDataset, batch_size: int, workers: int, batches: int) -> float:
    """Seconds per batch of the training DataLoader PixelDataModule builds, after one warm-up batch."""
    from torch.utils.data import DataLoader

    from synthvis.datamodules.step_sampler import StepBatchSampler
    from synthvis.datamodules.transitions import collate_prebatched

    loader = DataLoader(dataset, batch_sampler=StepBatchSampler(len(dataset), batch_size, seed=0),
                        num_workers=workers, collate_fn=collate_prebatched, persistent_workers=workers > 0)
    iterator = iter(loader)
    next(iterator)
    started = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return (time.perf_counter() - started) / batches


def time_device_gather(dataset: TransitionDataset, batch_size: int, device: str, batches: int) -> tuple[float, float]:
    """Seconds to upload the transitions to `device`, and seconds per batch gathered there (after a warm-up)."""
    import torch

    from synthvis.datamodules.device_transitions import DeviceTransitions
    from synthvis.datamodules.step_sampler import StepBatchSampler

    def synchronize() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    started = time.perf_counter()
    held = DeviceTransitions(dataset, device)
    synchronize()
    upload = time.perf_counter() - started
    sampler = iter(StepBatchSampler(len(dataset), batch_size, seed=0))
    held.batch(torch.as_tensor(next(sampler)))
    synchronize()
    started = time.perf_counter()
    for _ in range(batches):
        held.batch(torch.as_tensor(next(sampler)))
    synchronize()
    return upload, (time.perf_counter() - started) / batches


def main() -> None:
    """Print one line per (image size, workers)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, nargs="+", default=[64, 84])
    parser.add_argument("--episodes", type=int, default=40)
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default="cpu", help="where the device-held transitions live")
    args = parser.parse_args()
    for size in args.image_size:
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            store = FrameStore.build(random_episodes(args.episodes, size), Path(tmp) / "store")
            build = time.perf_counter() - started
            dataset = TransitionDataset([(store, valid_rows(store, 3))], frame_stack=3, nstep=3, gamma=0.99)
            print(f"{size} px: store of {store.layout.num_rows} frames ({store.layout.frame_bytes / 2**20:.0f} MiB) "
                  f"built in {build:.1f} s")
            for workers in (0, 2):
                seconds = time_loader(dataset, args.batch_size, workers, args.batches)
                megabytes = 2 * args.batch_size * 9 * size * size / 1e6
                print(f"  workers={workers}: {1 / seconds:6.1f} batches/s = {args.batch_size / seconds:8.0f} "
                      f"transitions/s ({megabytes / seconds:.0f} MB/s of frames)")
            upload, seconds = time_device_gather(dataset, args.batch_size, args.device, args.batches)
            print(f"  held on {args.device} (uploaded in {upload:.1f} s): {1 / seconds:6.1f} batches/s = "
                  f"{args.batch_size / seconds:8.0f} transitions/s ({megabytes / seconds:.0f} MB/s of frames)")


if __name__ == "__main__":
    main()
