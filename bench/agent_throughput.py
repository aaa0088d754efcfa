"""Agent update throughput through a real Lightning Trainer: seconds per update and updates/s at batch 256.

    python bench/agent_throughput.py [--updates 6] [--batch-size 256] [--device cpu|cuda]
                                     [--precision 32-true|bf16-mixed] [--only DrQ+BC]

Random uint8 batches (frame stack 3 for DrQ+BC/BC, single 64 px frames for CQL); the first 2 updates are
warm-up. FLOPs per DrQ+BC update (batch 256; see BENCHMARKS.md for the arithmetic): 102.6 GFLOP at 84 px,
59.5 GFLOP at 64 px; discrete CQL at 64 px: 77.4 GFLOP.
"""

from __future__ import annotations

import argparse
import statistics
import time

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from synthvis.core.batches import ContinuousBatch, DiscreteBatch
from synthvis.datamodules.augmentations import RandomShift
from synthvis.datamodules.transitions import collate_prebatched
from synthvis.lightning_modules.bc import BC
from synthvis.lightning_modules.discrete_cql import DiscreteCQL
from synthvis.lightning_modules.drqbc import DrQBC


class RandomBatches(Dataset):
    """Endless random batches of the right types (generated once, reused)."""

    def __init__(self, obs_shape: tuple[int, int, int], batch_size: int, discrete: bool) -> None:
        obs = torch.randint(0, 256, (batch_size, *obs_shape), dtype=torch.uint8)
        reward, flag = torch.rand(batch_size), torch.zeros(batch_size)
        if discrete:
            self.batch = DiscreteBatch(obs, torch.randint(0, 15, (batch_size,)), reward, obs.clone(), flag)
        else:
            action = torch.rand(batch_size, 6) * 2 - 1
            self.batch = ContinuousBatch(obs, action, reward, torch.full((batch_size,), 0.97), obs.clone())

    def __len__(self) -> int:
        return 10**6

    def __getitem__(self, index: int):
        return self.batch


class UpdateTimer(L.Callback):
    """Wall time of each training batch (one update)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.started = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.times.append(time.perf_counter() - self.started)


def time_agent(agent: L.LightningModule, obs_shape, discrete: bool, args) -> float:
    """Median seconds per update after 2 warm-up updates."""
    loader = DataLoader(RandomBatches(obs_shape, args.batch_size, discrete), batch_size=None,
                        collate_fn=collate_prebatched)
    timer = UpdateTimer()
    trainer = L.Trainer(max_steps=args.updates + 2, accelerator="gpu" if args.device == "cuda" else "cpu",
                        devices=1, precision=args.precision, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[timer])
    trainer.fit(agent, train_dataloaders=loader)
    return statistics.median(timer.times[2:])


def main() -> None:
    """Print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--updates", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="32-true", help="32-true (TF32 matmuls on CUDA) or bf16-mixed")
    parser.add_argument("--only", default="", help="run only the cases whose name starts with this")
    args = parser.parse_args()
    torch.set_float32_matmul_precision("high")  # synthvis's default (matmul_precision): TF32 on CUDA
    cases = [
        ("DrQ+BC", 84, lambda s: DrQBC(s, 6, augmentation=RandomShift(4)), False, (9, 84, 84)),
        ("DrQ+BC", 64, lambda s: DrQBC(s, 6, augmentation=RandomShift(4)), False, (9, 64, 64)),
        ("BC", 84, lambda s: BC(s, 6, augmentation=RandomShift(4)), False, (9, 84, 84)),
        ("BC", 32, lambda s: BC(s, 6, augmentation=RandomShift(2)), False, (9, 32, 32)),
        ("BC, bc_cpu (hidden 256)", 32, lambda s: BC(s, 6, hidden_dim=256, augmentation=RandomShift(2)), False,
         (9, 32, 32)),
        ("discrete CQL", 64, lambda s: DiscreteCQL(s), True, (3, 64, 64)),
    ]
    print("| agent | px | batch | device | precision | s/update | updates/s |\n|---|---|---|---|---|---|---|")
    for name, size, build, discrete, shape in cases:
        if not name.startswith(args.only):
            continue
        seconds = time_agent(build(shape), shape, discrete, args)
        print(f"| {name} | {size} | {args.batch_size} | {args.device} | {args.precision} | {seconds:.4f} | "
              f"{1 / seconds:.2f} |", flush=True)


if __name__ == "__main__":
    main()
