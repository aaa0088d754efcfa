"""EDM diffusion throughput: train steps/s and samples/s of SynthER's denoiser (d=207, width 1024, depth 6).

    python bench/diffusion_throughput.py [--train-steps 12] [--sample-batch 1024] [--device cpu|cuda]
                                         [--precision 32-true|bf16-mixed]

Training goes through a real Lightning Trainer on one pre-made batch (AdamW, cosine LR, clipping and EMA all
on); the time per step is the median gap between consecutive batch starts after 3 warm-up steps. Sampling
calls `LatentDiffusion.sample` on one batch of `--sample-batch` rows with the 128-step stochastic sampler
(255 network evaluations per row) and the 32-step Heun sampler (63). Besides the wall time, the median step
time x steps is shown: on a shared machine it is the throughput without the other processes' bursts. FLOPs
are counted by torch's FlopCounterMode (matrix products only: biases, activations and the optimizer are
extra) and printed with the arithmetic. SynthER's own code on the 2-core development CPU: about
10 train steps/s at batch 256 and 40 samples/s with 128 steps.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode

from synthvis.core.normalizer import StandardNormalizer
from synthvis.lightning_modules.components.residual_mlp import ResidualMLPDenoiser
from synthvis.lightning_modules.diffusion.edm import edm_loss, precondition
from synthvis.lightning_modules.diffusion.samplers import HeunODE, KarrasSDE, Sampler
from synthvis.lightning_modules.latent_diffusion import LatentDiffusion

D_IN = 207  # 4F + |A| + 1 with F = 50 and cheetah's |A| = 6
SYNTHER_TRAIN_STEPS_PER_S, SYNTHER_SAMPLES_PER_S = 10.0, 40.0  # SynthER's code, same CPU, 128-step sampler


class OneBatch(Dataset):
    """The same (B, D) batch forever (the data pipeline is not what is measured)."""

    def __init__(self, batch: torch.Tensor) -> None:
        self.batch = batch

    def __len__(self) -> int:
        return 10**9

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.batch


class StepClock(L.Callback):
    """perf_counter at the start of every training batch (gaps include the EMA update and logging)."""

    def __init__(self, device: str) -> None:
        self.device, self.starts = device, []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()
        self.starts.append(time.perf_counter())


def counted_flops(fn) -> int:
    """Matrix-product FLOPs of one call of `fn`."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def build(device: str) -> LatentDiffusion:
    """SynthER's model with a normalizer fitted on standard-normal rows."""
    model = LatentDiffusion(D_IN, functools.partial(ResidualMLPDenoiser, width=1024, depth=6))
    model.set_normalizer(StandardNormalizer.fit(torch.randn(4096, D_IN)))
    return model.to(device)


def train_seconds_per_step(device: str, batch_size: int, steps: int, precision: str = "32-true") -> float:
    """Median seconds per update through a Lightning Trainer."""
    model, clock = build(device), StepClock(device)
    loader = DataLoader(OneBatch(torch.randn(batch_size, D_IN)), batch_size=None)
    trainer = L.Trainer(max_steps=steps + 4, accelerator="gpu" if device == "cuda" else "cpu", devices=1,
                        precision=precision, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[clock])
    trainer.fit(model, loader)
    return statistics.median(b - a for a, b in zip(clock.starts[3:], clock.starts[4:]))


class StepTimes:
    """A sampler wrapper that records the wall time of every step (through the samplers' step callback)."""

    def __init__(self, sampler: Sampler) -> None:
        self.sampler, self.num_steps, self.times = sampler, sampler.num_steps, []

    def __call__(self, denoise_fn, shape, generator, callback=None) -> torch.Tensor:
        last = time.perf_counter()

        def tick(step: int) -> None:
            nonlocal last
            if generator.device.type == "cuda":
                torch.cuda.synchronize()
            now = time.perf_counter()
            self.times.append(now - last)
            last = now
            if callback is not None:
                callback(step)

        return self.sampler(denoise_fn, shape, generator, tick)


def sample_seconds(model: LatentDiffusion, sampler: Sampler, rows: int) -> tuple[float, float]:
    """Wall seconds of one `sample` call of `rows` rows, and median step time x steps (robust to load)."""
    model.sample(min(rows, 64), HeunODE(num_steps=2), batch_size=64, progress=False)  # warm-up
    timed = StepTimes(sampler)
    started = time.perf_counter()
    model.sample(rows, timed, batch_size=rows, progress=False)  # returns on the CPU: synchronized
    return time.perf_counter() - started, statistics.median(timed.times) * sampler.num_steps


def main() -> None:
    """Print the FLOP arithmetic and a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-steps", type=int, default=12, help="timed updates after 4 warm-up updates")
    parser.add_argument("--batch-size", type=int, default=256,
                        help="training batch (SynthER: 256 below 800k rows)")
    parser.add_argument("--sample-batch", type=int, default=1024, help="rows per sampling batch")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="32-true", help="training: 32-true (TF32 on CUDA) or bf16-mixed")
    args = parser.parse_args()
    torch.set_float32_matmul_precision("high")  # synthvis's default (matmul_precision): TF32 on CUDA

    net = ResidualMLPDenoiser(D_IN)
    params = sum(p.numel() for p in net.parameters())
    macs = sum(m.weight.numel() for m in net.modules() if isinstance(m, torch.nn.Linear))
    x = torch.randn(args.batch_size, D_IN)
    forward = counted_flops(lambda: precondition(net, x, 1.0)) / args.batch_size
    train = counted_flops(lambda: edm_loss(net, x).backward())
    sde, heun = KarrasSDE(), HeunODE()
    print(f"denoiser: {params:,} parameters, {macs:,} of them in Linear weights (multiply-adds per row)")
    print(f"forward per row: 2 x {macs:,} = {2 * macs / 1e6:.2f} MFLOP (counted: {forward / 1e6:.2f})")
    print(f"train step, batch {args.batch_size}: forward + backward = 3 x {args.batch_size} x "
          f"{2 * macs / 1e6:.2f} MFLOP = {3 * args.batch_size * 2 * macs / 1e9:.2f} GFLOP (counted: "
          f"{train / 1e9:.2f}; the first layer's input gradient is not needed)")
    for sampler in (sde, heun):
        print(f"{type(sampler).__name__} {sampler.num_steps} steps: {sampler.nfe} NFE x "
              f"{forward / 1e6:.2f} MFLOP = {sampler.nfe * forward / 1e9:.3f} GFLOP per sample")
    print(f"threads: {torch.get_num_threads()}, device: {args.device}\n")

    print("| what | setting | wall time | throughput | median-step throughput | GFLOP/s | "
          "SynthER's code (CPU) |\n|---|---|---|---|---|---|---|")
    seconds = train_seconds_per_step(args.device, args.batch_size, args.train_steps, args.precision)
    print(f"| train (Lightning, {args.precision}) | batch {args.batch_size} | {seconds * 1e3:.0f} ms/step (median) | "
          f"{1 / seconds:.2f} steps/s | {1 / seconds:.2f} steps/s | {train / seconds / 1e9:.0f} | "
          f"{SYNTHER_TRAIN_STEPS_PER_S:.0f} steps/s |", flush=True)
    model = build(args.device)
    for sampler, reference in ((sde, f"{SYNTHER_SAMPLES_PER_S:.0f} samples/s"), (heun, "-")):
        wall, steady = sample_seconds(model, sampler, args.sample_batch)
        rate, steady_rate = args.sample_batch / wall, args.sample_batch / steady
        print(f"| sample {type(sampler).__name__} {sampler.num_steps} steps ({sampler.nfe} NFE) | batch "
              f"{args.sample_batch} | {wall:.1f} s | {rate:.1f} samples/s | {steady_rate:.1f} samples/s | "
              f"{steady_rate * sampler.nfe * forward / 1e9:.0f} | {reference} |", flush=True)

if __name__ == "__main__":
    main()
