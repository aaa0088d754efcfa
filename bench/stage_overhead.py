"""What a training stage costs beyond its update: stage ms/update, bare ms/update and their ratio.

    python bench/stage_overhead.py --out DIR [--updates 1000] [--augments paper none] [-- train.py overrides]

For each --augments choice, runs `train.py` (the quickstart unless overridden) through the agent, latents,
diffusion and fine-tuning stages for --updates updates each (the later stages only for the first choice: they do
not augment), --repeats times. Each stage is timed between two bare timings, one just before it and one just
after, because a shared machine's speed drifts by tens of percent over minutes. Stage ms/update is the wall time between logged steps over the last three quarters of the stage
(TensorBoard wall times, as bench/precision.py), so start-up is left out and the loop's data loading, per-update
seeding, checks, logging, checkpointing and validation are in. The bare update is the same module and the same
stage datamodule's first batch, fitted by a Lightning Trainer that replays that one batch with no callbacks,
loggers or validation: the stage's augmentation still runs on it (on_after_batch_transfer), so the ratio is the
loop's cost alone; the batch is replayed from the device, so no copy to it is timed. Both run on
the run's accelerator and precision (`trainer=gpu` for the GPU). Both are wall time per update over the last three
quarters of the updates; the ratio's 95% interval bootstraps the blocks of `trainer.log_every_n_steps` updates
that both times are made of (the run-to-run variation of a shared machine comes on top).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import move_data_to_device
from omegaconf import OmegaConf
from precision import ms_per_update, stage_scalars
from torch.utils.data import DataLoader, Dataset

from synthvis.stages import agent, diffusion, finetune
from synthvis.stages.common import stage_device
from synthvis.stages.context import RunContext

STAGES = ("agent", "diffusion", "finetune")


class Replay(Dataset):
    """One batch, returned for every index (the loader adds nothing: batch_size=None)."""

    def __init__(self, batch, length: int) -> None:
        self.batch, self.length = batch, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        return self.batch


class UpdateTimer(L.Callback):
    """When each update starts."""

    def __init__(self) -> None:
        self.starts: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        self.starts.append(time.perf_counter())

    def block_ms(self, block: int) -> np.ndarray:
        """Wall milliseconds per update in each block of `block` updates over the last three quarters."""
        later = np.asarray(self.starts[len(self.starts) // 4:])[::block]
        return 1000 * np.diff(later) / block


def stage_block_ms(series: np.ndarray) -> np.ndarray:
    """Wall milliseconds per update between consecutive logged steps over the last three quarters of a stage."""
    later = series[len(series) // 4:]
    return 1000 * np.diff(later[:, 1]) / np.diff(later[:, 0])


def ratio_interval(stage: np.ndarray, bare: np.ndarray, draws: int = 4000, seed: int = 0) -> tuple[float, float]:
    """95% bootstrap interval of mean(stage) / mean(bare), resampling each side's blocks."""
    rng = np.random.default_rng(seed)
    stage_means = rng.choice(stage, (draws, len(stage))).mean(axis=1)
    bare_means = rng.choice(bare, (draws, len(bare))).mean(axis=1)
    return tuple(np.percentile(stage_means / bare_means, [2.5, 97.5]))


def stage_parts(ctx: RunContext, stage: str) -> tuple[L.LightningModule, L.LightningDataModule]:
    """The module a stage trains and its datamodule, set up, built by the stage itself."""
    return {"agent": agent, "diffusion": diffusion, "finetune": finetune}[stage].training_parts(ctx)[:2]


def bare_block_ms(module: L.LightningModule, datamodule: L.LightningDataModule, cfg, updates: int) -> np.ndarray:
    """ms per update, per block of logged steps, on a replayed batch of the stage's own loader (augmentation kept)."""
    batch = next(iter(datamodule.train_dataloader()))
    if getattr(datamodule, "device_set", None) is not None:  # indices (data.frames_on_device=true): gather them
        batch = datamodule.device_set.batch(batch)
    batch = move_data_to_device(batch, stage_device(cfg))  # replayed from the device: no copy per update
    datamodule.train_dataloader = lambda: DataLoader(Replay(batch, updates), batch_size=None)
    timer = UpdateTimer()
    torch.set_float32_matmul_precision(cfg.matmul_precision)  # as the pipeline sets it (TF32 on a GPU)
    trainer = L.Trainer(accelerator=cfg.trainer.accelerator, devices=1, precision=cfg.trainer.precision,
                        max_steps=updates, limit_val_batches=0, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[timer])
    trainer.fit(module, datamodule=datamodule)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # the next stage runs in another process and sizes its data by the free memory
    return timer.block_ms(cfg.trainer.log_every_n_steps)


STAGES_BEFORE = {"agent": ["data"], "diffusion": ["data", "agent", "latents"],
                 "finetune": ["data", "agent", "latents", "diffusion", "sample"]}


def train(run_dir: Path, augment: str, stages: list[str], args: argparse.Namespace) -> RunContext:
    """Run `train.py` up to `stages` in `run_dir` (finished stages are skipped) and return the run's context."""
    subprocess.run([sys.executable, "train.py", f"run_dir={run_dir}", f"augment={augment}", "reuse_agent=false",
                    f"stages=[{','.join(stages)}]", f"agent_steps={args.updates}", f"diffusion.steps={args.updates}",
                    f"finetune.steps={args.updates}", *args.overrides], check=True)
    return RunContext(OmegaConf.load(run_dir / ".hydra" / "config.yaml"), run_dir)


def bracketed(run_dir: Path, augment: str, stage: str, args: argparse.Namespace) -> dict:
    """The stage's blocks between two bare timings, one just before it and one just after (drift cancels)."""
    ctx = train(run_dir, augment, STAGES_BEFORE[stage], args)
    before = bare_block_ms(*stage_parts(ctx, stage), ctx.cfg, args.updates)
    ctx = train(run_dir, augment, [*STAGES_BEFORE[stage], stage], args)
    after = bare_block_ms(*stage_parts(ctx, stage), ctx.cfg, args.updates)
    series = next(iter(stage_scalars(run_dir, stage).values()))
    bare_blocks = np.concatenate([before, after])
    stage_ms, bare = ms_per_update(series), float(bare_blocks.mean())
    return {"stage": stage, "augment": augment if stage == "agent" else "-", "stage_ms": stage_ms, "bare_ms": bare,
            "bare_before_after_ms": [float(before.mean()), float(after.mean())], "ratio": stage_ms / bare,
            "ratio_95": ratio_interval(stage_block_ms(series), bare_blocks)}


def main() -> None:
    """Run and time the stages, print the table and write DIR/stage_overhead.json."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--updates", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=1, help="runs of every stage, each in a run dir of its own")
    parser.add_argument("--augments", nargs="+", default=["paper", "none"])
    parser.add_argument("overrides", nargs="*", help="train.py overrides shared by every run")
    args = parser.parse_args()
    rows = []
    for repeat in range(args.repeats):
        for index, augment in enumerate(args.augments):
            run_dir = args.out / f"run{repeat}_augment_{augment}"
            for stage in STAGES if index == 0 else ["agent"]:  # the later stages do not augment
                rows.append({"repeat": repeat, **bracketed(run_dir, augment, stage, args)})
    (args.out / "stage_overhead.json").write_text(json.dumps(rows, indent=1))
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    print(f"torch {torch.__version__}, {device}, {torch.get_num_threads()} threads, {args.updates} updates per stage")
    print("| stage | augment | run | stage ms/update | bare ms/update (before, after) | ratio [95% interval] |\n"
          "|---|---|---|---|---|---|")
    for row in sorted(rows, key=lambda row: (STAGES.index(row["stage"]), row["augment"], row["repeat"])):
        low, high = row["ratio_95"]
        before, after = row["bare_before_after_ms"]
        print(f"| {row['stage']} | {row['augment']} | {row['repeat']} | {row['stage_ms']:.2f} | {row['bare_ms']:.2f} "
              f"({before:.2f}, {after:.2f}) | {row['ratio']:.2f} [{low:.2f}, {high:.2f}] |")


if __name__ == "__main__":
    main()
