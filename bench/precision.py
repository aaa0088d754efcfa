"""Precision on a GPU: fp32 with TF32 matmuls (`trainer=gpu`) against bf16-mixed autocast, stage by stage.

    python bench/precision.py --out DIR [--precisions 32-true bf16-mixed] -- [train.py overrides ...]
    python bench/precision.py --out DIR --from-json    # table and plot again from DIR/precision.json

Runs `train.py` with the same overrides and seed once per precision, in DIR/<precision>/, then reads every
training stage's TensorBoard events back. Per stage and precision it prints the milliseconds per update inside
the stage (wall time between logged steps after the first quarter of the run, so start-up is left out) and, per
training loss, its mean over the last fifth of the run, the gap between the precisions' final values and the
largest gap between the two curves averaged over tenths of the run (both relative to the curve's mean |value|). Curves and timings go to
DIR/precision.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

TRAINING_STAGES = ("agent", "diffusion", "finetune")
PLOTTED = (("agent", "train/critic_loss"), ("agent", "train/bc_loss"), ("diffusion", "train/loss"),
           ("finetune", "finetune/critic_loss"))


def stage_scalars(run_dir: Path, stage: str) -> dict[str, np.ndarray]:
    """Every training scalar of one stage as an (n, 3) array of (step, wall time, value)."""
    events = EventAccumulator(str(run_dir / "tensorboard" / stage), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: np.array([(e.step, e.wall_time, e.value) for e in events.Scalars(tag)])
            for tag in events.Tags()["scalars"] if tag.startswith(("train/", "finetune/")) and "lr" not in tag}


def ms_per_update(series: np.ndarray) -> float:
    """Wall milliseconds per update between the logged steps of the last three quarters of a run."""
    later = series[len(series) // 4:]
    return float(1000 * (later[-1, 1] - later[0, 1]) / (later[-1, 0] - later[0, 0]))


def window_means(values: np.ndarray, windows: int = 10) -> np.ndarray:
    """Means over `windows` consecutive equal parts of a curve (fewer for short curves)."""
    return np.array([part.mean() for part in np.array_split(values, min(windows, len(values)))])


def plot_curves(results: dict[str, dict], path: Path) -> None:
    """The PLOTTED losses against updates, one panel each, one line per precision."""
    figure = Figure(figsize=(4.0 * len(PLOTTED), 3.2))
    for axes, (stage, tag) in zip(figure.subplots(1, len(PLOTTED)), PLOTTED):
        for precision, stages in results.items():
            if tag in stages.get(stage, {}).get("curves", {}):
                series = np.asarray(stages[stage]["curves"][tag])
                axes.plot(series[:, 0], series[:, 2], label=precision, linewidth=1)
        axes.set(title=f"{stage}: {tag}", xlabel="update")
        axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main() -> None:
    """Run each precision, then print the comparison table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--precisions", nargs="+", default=["32-true", "bf16-mixed"])
    parser.add_argument("--from-json", action="store_true", help="reuse DIR/precision.json instead of running")
    parser.add_argument("overrides", nargs="*", help="train.py overrides shared by every run")
    args = parser.parse_args()
    results: dict[str, dict] = json.loads((args.out / "precision.json").read_text()) if args.from_json else {}
    for precision in [] if args.from_json else args.precisions:
        run_dir = args.out / precision
        subprocess.run([sys.executable, "train.py", f"run_dir={run_dir}", f"trainer.precision={precision}",
                        *args.overrides], check=True)
        results[precision] = {}
        for stage in TRAINING_STAGES:
            if not (run_dir / "tensorboard" / stage).exists():
                continue
            curves = stage_scalars(run_dir, stage)
            timing = ms_per_update(next(iter(curves.values())))
            results[precision][stage] = {"ms_per_update": timing,
                                         "curves": {tag: series.tolist() for tag, series in curves.items()}}
    (args.out / "precision.json").write_text(json.dumps(results))
    plot_curves(results, args.out / "precision_curves.png")
    reference = args.precisions[0]
    print("| stage | precision | ms/update |\n|---|---|---|")
    for stage in TRAINING_STAGES:
        for precision in args.precisions:
            if stage in results[precision]:
                print(f"| {stage} | {precision} | {results[precision][stage]['ms_per_update']:.2f} |")
    print(f"\n| stage | loss | {' | '.join(f'last fifth, {p}' for p in args.precisions)} | final gap | "
          "largest gap over tenths |\n|---|---|" + "---|" * (len(args.precisions) + 2))
    for stage in TRAINING_STAGES:
        if stage not in results[reference]:
            continue
        for tag, series in results[reference][stage]["curves"].items():
            base = np.asarray(series)[:, 2]
            finals = [np.asarray(results[p][stage]["curves"][tag])[:, 2] for p in args.precisions]
            lasts = [values[-max(1, len(values) // 5):].mean() for values in finals]
            scale = max(float(np.abs(base).mean()), 1e-12)  # gaps relative to the curve's size (some cross 0)
            gaps = [(abs(last - lasts[0]) / scale, np.abs(window_means(values) - window_means(base)).max() / scale)
                    for values, last in zip(finals[1:], lasts[1:])]
            print(f"| {stage} | {tag} | {' | '.join(f'{v:.4g}' for v in lasts)} | "
                  f"{', '.join(f'{100 * g:.1f}%' for g, _ in gaps)} | {', '.join(f'{100 * w:.1f}%' for _, w in gaps)} |")

if __name__ == "__main__":
    main()
