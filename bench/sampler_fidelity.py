r"""Which sampler should be the default: speed, sample fidelity and fine-tuned return of each, on one model.

    python bench/sampler_fidelity.py --make-run /tmp/sampler_bench/source \
        --out /tmp/sampler_bench/samplers.json
    python bench/sampler_fidelity.py --run-dir RUN --out FILE.json [--samplers karras_sde:128 heun:8 ...]
        [--num-samples N] [--seeds S ...] [--work DIR] [--skip-downstream] [--all-test-envs]
        [--downstream KEY=VALUE ...] [--device cpu|cuda] [-- train.py overrides for --make-run]
    python bench/sampler_fidelity.py --from-json FILE.json      # the table again

The first command is the benchmark as meant, on the CPU quickstart (python train.py's default experiment,
~17-22 min on the 2-core machine: see "Cost" below). `--make-run DIR` first trains what the samplers share:
`train.py run_dir=DIR stages=[data,agent,latents,diffusion] <overrides after -->` (resumable: an existing DIR
continues); `--run-dir RUN` takes any run in which those four stages are finished (its later stages are
ignored). A sampler is `<conf/sample option>:<steps>`: karras_sde:128 is the paper's (SynthER's EDM Algorithm
2, 255 network evaluations), heun:K the deterministic Algorithm 1 (2K - 1). The first sampler listed is the
reference of the Δ column. For each sampler:

1. Speed. `LatentDiffusion.sample` draws N rows (default: the run's sample.num_samples) with each seed, in the
   sample stage's batches (the run's sample.batch_size) on the sample stage's device, after one warm-up call.
   samples/s = N / the median wall time of the seeds' draws (drawing only: post-processing, which is the same
   for every sampler, is left out). NFE is counted, not computed: a forward pre-hook on the EMA denoiser
   counts its calls, divided by the number of batches (and checked against the schedule's 2K - 1).
2. Fidelity. The drawn rows are post-processed as the sample stage does (layout.pack(layout.decode(raw))) and
   compared as `synthvis.stages.sample.fidelity` does: the mean over dimensions of the 1-D W1 distance to the
   diffusion stage's held-out real rows (split_rows with diffusion.datamodule.val_fraction and seed, the rows
   the model never trained on), in the model's normalized units. The floor is the same distance for N real
   training rows (fewer if the training split is smaller), a random subset per seed: what a perfect generator
   would reach with these many rows against this held-out set (the sample stage's floor too). Intervals: each seed is an independent draw of N
   rows, so the per-seed distances are i.i.d. given the model and the held-out set; the table gives their mean
   with a 95% Student-t interval over seeds, and for Δ (this sampler minus the reference) the paired
   t-interval over seeds (a seed gives every sampler the same initial noise, so the pairs are positively
   correlated and the paired interval is the tighter, valid one). Not a bootstrap over dimensions: the
   dimensions are a fixed, correlated set, and their spread measures how different the dimensions are, not how
   uncertain the mean is. Not a bootstrap over rows: W1 of rows resampled with replacement is biased upwards
   (duplicated rows), which shifts percentile intervals. The held-out set is one fixed sample (5% of the real
   rows, ~330 at the quickstart scale): every sampler is measured against the same one, so the comparison
   between samplers is fair, but the absolute distances include its finite-sample offset, which the floor
   shows. Three seeds give wide t-intervals (t = 4.30); pass more with --seeds.
3. Downstream. The finished run is copied per sampler into <work>/<sampler>-<steps> (weights, checkpoints and
   latents hard-linked, everything else copied, none of the run's sample/finetune/eval/report outputs), the
   copy's saved config.yaml gets this sampler (conf/sample/<option>.yaml's `sampler` with num_steps = K) and N
   rows, its paths into the source run (run_dir, the TensorBoard save_dir: a saved config is resolved) are
   pointed into the copy, and `train.py run_dir=<copy> stages=[sample,finetune,eval]` runs those three stages
   there; data, agent, latents and diffusion are the source run's, reused, not retrained. A run directory
   refuses overrides that change what it computes, so the copy is a new run directory whose own config.yaml
   records the sampler it used; only sample, finetune, eval, analysis and callbacks.evaluation values are
   edited, none of which the four reused stages read. The sample stage draws with the run's seed and batch
   size, so its rows are the in-process draw of that seed when the seeds include it (checked, `rows_identical`
   in the JSON). To keep this cheap the eval stage runs on the training env alone (eval.test_envs modes /
   splits and variants emptied; --all-test-envs keeps them), without the latent JS analyses
   (analysis.observation_stride=0, analysis.paired_states=0) and without periodic evaluation during
   fine-tuning (callbacks.evaluation.every_n_updates=0: the eval stage evaluates the final agent). The
   fine-tuned training-env return is the mean over eval.num_episodes episodes with a 95% percentile bootstrap
   interval over those episodes (synthvis.metrics.statistics.mean_intervals, as the report's "CI over episodes
   of one seed"): evaluation noise of one fine-tuning run, not training variance. `--downstream KEY=VALUE`
   edits the copies' config further (e.g. finetune.steps=20 eval.num_episodes=2 for a smoke test). A copy
   whose eval stage finished is reused, so an interrupted benchmark continues where it stopped; a copy made
   with other settings is refused.

Prints a markdown table and writes every number (per-seed distances and times, the downstream stage times, the
episodes' returns) to --out as JSON. Rows are written to the JSON as each sampler finishes.

Cost on the 2-core CPU (cpu-2c) with the quickstart (d = 103, 5000 rows, 3 seeds), estimated, not measured:
the denoiser runs at 11-17k rows x NFE per second on 2 threads (BENCHMARKS.md, "Diffusion": 11.3k; README's
sample stage: 5000 Heun-32 rows in 19 s), so one draw of the five default samplers (491 NFE per row) takes
2.5-3.5 min, and the 3 seeds plus the sample stages' own draws take 10-14 min. Fine-tuning (1000 updates) and
training-env evaluation (10 + 10 reference episodes), with the process start, add ~40 s per sampler. The run
itself takes ~3.5 min (6000 agent updates, 500 diffusion updates). In all: ~17-22 min. Smoke test (~2 min on
one core):

    OMP_NUM_THREADS=1 python bench/sampler_fidelity.py --make-run /tmp/sampler_smoke/source \
        --out /tmp/sampler_smoke/samplers.json --downstream finetune.steps=20 eval.num_episodes=2 \
        -- agent_steps=50 diffusion.steps=50 sample.num_samples=200
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from scipy import stats

from synthvis.core.latent_layout import LatentLayout
from synthvis.datamodules.latent import split_rows
from synthvis.datamodules.latent_files import load_latents
from synthvis.lightning_modules.latent_diffusion import LatentDiffusion
from synthvis.metrics.statistics import mean_intervals
from synthvis.metrics.wasserstein import per_dimension_wasserstein
from synthvis.pipeline import config_differences, relocated
from synthvis.stages.common import stage_device, stage_result
from synthvis.utils.weights import load_weights

REPO = Path(__file__).resolve().parents[1]
SHARED_STAGES = ("data", "agent", "latents", "diffusion")
DOWNSTREAM_STAGES = ("sample", "finetune", "eval")
# What a copy leaves out of the source run: the outputs of the stages it reruns (and of the report).
NOT_COPIED = {"sample", "synthetic", "finetune", "eval", "report", "eval.json", "js.json", "report.md",
              "results.csv"}
# Large files, written once and atomically (never rewritten in place): hard-linked into the copies.
LINKED_SUFFIXES = {".npy", ".pt", ".ckpt"}
# Config a copy may change: none of it is read by the reused data, agent, latents and diffusion stages.
EDITABLE = ("sample.", "finetune.", "eval.", "analysis.", "callbacks.evaluation.")
DEFAULT_SAMPLERS = ["karras_sde:128", "heun:8", "heun:16", "heun:32", "heun:64"]


def parse_sampler(spec: str) -> tuple[str, int]:
    """`heun:32` -> ('heun', 32): a conf/sample option and its number of steps."""
    name, _, steps = spec.partition(":")
    if not (REPO / "conf" / "sample" / f"{name}.yaml").exists() or not steps.isdigit() or int(steps) < 1:
        options = sorted(p.stem for p in (REPO / "conf" / "sample").glob("*.yaml"))
        raise SystemExit(f"bad sampler {spec!r}: need <option>:<steps>, option one of {options}, steps >= 1")
    return name, int(steps)


def sampler_config(name: str, steps: int) -> DictConfig:
    """conf/sample/<name>.yaml's `sampler` node with num_steps = steps."""
    node = OmegaConf.load(REPO / "conf" / "sample" / f"{name}.yaml").sampler
    node.num_steps = steps
    return node


def t_interval(values: list[float]) -> list[float]:
    """[mean, lower, upper]: the mean and its 95% Student-t interval (nan bounds for a single value)."""
    mean = float(np.mean(values))
    if len(values) < 2:
        return [mean, float("nan"), float("nan")]
    half = stats.t.ppf(0.975, len(values) - 1) * float(np.std(values, ddof=1)) / np.sqrt(len(values))
    return [mean, mean - half, mean + half]


def w1_to_held_out(normalize, rows: np.ndarray, held_normalized: np.ndarray) -> float:
    """Mean per-dimension W1 of `rows` to the (normalized) held-out rows, in normalized units: the distance
    `synthvis.stages.sample.fidelity` reports."""
    return float(per_dimension_wasserstein(normalize(torch.as_tensor(rows)).numpy(), held_normalized).mean())


class CallCounter:
    """Counts the calls of a module (a forward pre-hook): the network evaluations of a sampler."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.calls = 0
        self.handle = module.register_forward_pre_hook(self._count)

    def _count(self, module, args) -> None:
        self.calls += 1


def draw(model: LatentDiffusion, sampler, rows: int, batch_size: int,
         seed: int) -> tuple[np.ndarray, float, float]:
    """`rows` raw samples drawn with `seed`, the wall seconds of the draw, and network evaluations per row."""
    counter = CallCounter(model.ema.ema_model)
    try:
        started = time.perf_counter()
        raw = model.sample(rows, sampler, batch_size=batch_size, seed=seed, progress=False)  # back on the CPU
        seconds = time.perf_counter() - started
    finally:
        counter.handle.remove()
    return raw.numpy(), seconds, counter.calls / -(-rows // batch_size)


def link_tree(source: Path, target: Path) -> None:
    """Copy a finished run without its downstream outputs; large binary files are hard links."""
    def copy_or_link(src: str, dst: str) -> None:
        if Path(src).suffix in LINKED_SUFFIXES:
            try:
                os.link(src, dst)
                return
            except OSError:  # another file system: copy
                pass
        shutil.copy2(src, dst)

    def ignore(folder: str, names: list[str]) -> set[str]:
        if Path(folder) == source:
            return NOT_COPIED & set(names)
        if Path(folder) == source / "tensorboard":
            return {"sample", "finetune", "eval", "report"} & set(names)
        return set()

    shutil.copytree(source, target, ignore=ignore, copy_function=copy_or_link)


def copy_config(saved: DictConfig, name: str, steps: int, num_samples: int, batch_size: int,
                all_test_envs: bool, edits: list[str]) -> DictConfig:
    """The source run's saved config with this sampler, N rows and the cheap downstream settings."""
    cfg = copy.deepcopy(saved)
    cfg.sample.sampler = sampler_config(name, steps)
    cfg.sample.num_samples = num_samples
    cfg.sample.batch_size = batch_size
    if not all_test_envs:
        for key in ("modes", "splits", "variants"):  # dm_control distraction modes; Procgen splits, variants
            if key in cfg.eval.test_envs:
                cfg.eval.test_envs[key] = []
        cfg.analysis.observation_stride = 0
        cfg.analysis.paired_states = 0
        if "evaluation" in cfg.callbacks:
            cfg.callbacks.evaluation.every_n_updates = 0
    bad = [e for e in edits if "=" not in e or not e.startswith(EDITABLE)]
    if bad:
        raise SystemExit(f"--downstream takes KEY=VALUE under {', '.join(EDITABLE)} (config the reused "
                         f"stages do not read), got {bad}")
    return OmegaConf.merge(cfg, OmegaConf.from_dotlist(edits))


def run_downstream(source: Path, copy_dir: Path, cfg: DictConfig) -> dict[str, Any]:
    """sample, finetune and eval in a copy of `source` configured by `cfg`: the stages' results, eval.json."""
    cfg = relocated(cfg, str(source), str(copy_dir))  # what train.py run_dir=<copy> would run it with
    if copy_dir.exists():
        differences = config_differences(OmegaConf.load(copy_dir / "config.yaml"), cfg)
        if differences and stage_result(copy_dir, "sample") is not None:
            raise SystemExit(f"{copy_dir} was made with other settings ({'; '.join(differences[:5])}): "
                             "delete it or pass another --work")
    else:
        link_tree(source, copy_dir)
    (copy_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    if stage_result(copy_dir, "eval") is None:
        command = [sys.executable, str(REPO / "train.py"), f"run_dir={copy_dir}",
                   f"stages=[{','.join(DOWNSTREAM_STAGES)}]"]
        with open(copy_dir / "bench_pipeline.log", "a") as log:
            done = subprocess.run(command, check=False, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        if done.returncode:
            tail = (copy_dir / "bench_pipeline.log").read_text().splitlines()[-30:]
            raise SystemExit(f"{' '.join(command)} failed (exit {done.returncode}):\n" + "\n".join(tail))
    return {"seconds": {stage: json.loads((copy_dir / stage / "done.json").read_text())["seconds"]
                        for stage in DOWNSTREAM_STAGES},
            "eval": json.loads((copy_dir / "eval.json").read_text()),
            "sample": stage_result(copy_dir, "sample")}


def make_run(run_dir: Path, overrides: list[str]) -> None:
    """Train (or finish) the stages the samplers share in `run_dir`."""
    command = [sys.executable, str(REPO / "train.py"), f"run_dir={run_dir}",
               f"stages=[{','.join(SHARED_STAGES)}]", *overrides]
    print("$", " ".join(command), flush=True)
    subprocess.run(command, cwd=REPO, check=True)


def fmt(interval: list[float] | None, digits: int = 3) -> str:
    """`m [lo, hi]`, or `m` without bounds."""
    if interval is None:
        return "–"
    mean, lo, hi = interval
    if np.isnan(lo):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def table(results: dict[str, Any]) -> str:
    """The markdown table of a results dict (as written to --out)."""
    reference = results["samplers"][0]["sampler"] if results["samplers"] else "-"
    lines = [(f"| sampler | steps | NFE | samples/s | W1 synthetic→held-out [95% CI] | Δ W1 vs {reference} "
              "[95% CI] | floor: W1 real train→held-out [95% CI] | fine-tuned train return [95% CI] |"),
             "|---|---|---|---|---|---|---|---|"]
    for row in results["samplers"]:
        downstream = row.get("downstream")
        ret = f"{fmt(downstream['train_return'], 1)} ({downstream['episodes']} ep.)" if downstream else "–"
        delta = fmt(row["delta_w1"]) if row["sampler"] != reference else "–"
        lines.append(f"| {row['name']} | {row['steps']} | {row['nfe']:g} | {row['samples_per_s']:.1f} | "
                     f"{fmt(row['w1'])} | {delta} | {fmt(results['floor'])} | {ret} |")
    return "\n".join(lines)


def downstream_row(result: dict[str, Any], copy_dir: Path, kept: np.ndarray | None) -> dict[str, Any]:
    """The fine-tuned returns of one copy, with its stage times and the check that it trained on `kept`."""
    returns = result["eval"]["envs"]["train"]["returns"]
    identical = None
    if kept is not None:
        rows = np.load(copy_dir / "synthetic" / "latents.npy")
        identical = bool(rows.shape == kept.shape and np.array_equal(rows, kept))
    return {"run_dir": str(copy_dir), "seconds": result["seconds"], "episodes": len(returns),
            "train_return": list(mean_intervals(np.asarray(returns, dtype=float)[:, None])[0]),
            "returns": returns, "rows_identical": identical,
            "test_envs": {env: s["return_mean"] for env, s in result["eval"]["envs"].items()
                          if env != "train"},
            "references": result["eval"].get("references"),
            "sample_stage_fidelity": {k: result["sample"].get(k) for k in ("w1_synthetic", "w1_real")}}


def parse_args() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run-dir", type=Path, help="a run with data, agent, latents and diffusion finished")
    source.add_argument("--make-run", type=Path, metavar="DIR",
                        help="train data, agent, latents and diffusion into DIR first (overrides after --)")
    source.add_argument("--from-json", type=Path, metavar="FILE", help="print the table of an earlier --out")
    parser.add_argument("--samplers", nargs="+", default=DEFAULT_SAMPLERS,
                        help="<conf/sample option>:<steps>; the first is the reference of the Δ column")
    parser.add_argument("--num-samples", type=int,
                        help="rows per draw (default: the run's sample.num_samples)")
    parser.add_argument("--seeds", type=int, nargs="+",
                        help="sampling seeds (default: the run's seed and the next two)")
    parser.add_argument("--batch-size", type=int,
                        help="rows per sampler pass (default: the run's sample.batch_size)")
    parser.add_argument("--work", type=Path, help="the per-sampler run copies (default: <run dir>-samplers)")
    parser.add_argument("--out", type=Path, help="JSON results (required unless --from-json)")
    parser.add_argument("--skip-downstream", action="store_true", help="speed and fidelity only")
    parser.add_argument("--all-test-envs", action="store_true", help="evaluate on the test envs too (slower)")
    parser.add_argument("--downstream", nargs="*", default=[], metavar="KEY=VALUE",
                        help=f"edits to the copies' config, under {', '.join(EDITABLE)}")
    parser.add_argument("--device", help="sampling device (default: the sample stage's, from the trainer)")
    parser.add_argument("overrides", nargs="*", help="train.py overrides for --make-run")
    args = parser.parse_args()
    if not args.from_json and args.out is None:
        parser.error("--out is required")
    if args.overrides and not args.make_run:
        parser.error("train.py overrides go with --make-run only")
    return args


def main() -> None:
    """Measure each sampler, print the table, write the JSON."""
    args = parse_args()
    if args.from_json:
        print(table(json.loads(args.from_json.read_text())))
        return
    specs = [parse_sampler(spec) for spec in args.samplers]
    if args.make_run:
        make_run(args.make_run.resolve(), args.overrides)
    run_dir = (args.make_run or args.run_dir).resolve()
    missing = [stage for stage in SHARED_STAGES if stage_result(run_dir, stage) is None]
    if missing:
        raise SystemExit(f"{run_dir} has not finished {missing}: run train.py run_dir={run_dir} "
                         f"stages=[{','.join(SHARED_STAGES)}] (or pass --make-run)")
    work = (args.work or run_dir.with_name(run_dir.name + "-samplers")).resolve()
    saved = OmegaConf.load(run_dir / "config.yaml")
    num_samples = args.num_samples or int(saved.sample.num_samples)
    batch_size = args.batch_size or int(saved.sample.batch_size)
    seeds = args.seeds or [int(saved.seed) + i for i in range(3)]
    device = torch.device(args.device) if args.device else stage_device(saved)
    torch.set_float32_matmul_precision(saved.matmul_precision)

    # The model, and the real rows split as the diffusion stage split them.
    model, _ = load_weights(run_dir / "diffusion" / "model.pt")
    normalize = copy.deepcopy(model.normalizer).cpu().normalize
    model = model.to(device).eval()
    real, layout = load_latents(run_dir / "latents")
    layout: LatentLayout
    train_rows, held_rows = split_rows(len(real), saved.diffusion.datamodule.val_fraction,
                                       saved.diffusion.datamodule.seed)
    if not len(held_rows):
        raise SystemExit(f"{run_dir}: diffusion.datamodule.val_fraction = 0 leaves no held-out rows")
    train = np.asarray(real[train_rows], dtype=np.float32)
    held_out = normalize(torch.as_tensor(np.asarray(real[held_rows], dtype=np.float32))).numpy()
    floor_rows = min(num_samples, len(train))
    print(f"run {run_dir}: latents {len(real)} rows x {layout.dim} ({len(train)} train / {len(held_out)} "
          f"held-out); {num_samples} rows per draw in batches of {batch_size} on {device} "
          f"({torch.get_num_threads()} threads); seeds {seeds}; floor from {floor_rows} real train rows",
          flush=True)

    # The floor: a random subset of N real training rows per seed against the held-out rows.
    floors = [w1_to_held_out(normalize, train[np.sort(np.random.default_rng(seed).choice(
        len(train), floor_rows, replace=False))], held_out) for seed in seeds]
    results: dict[str, Any] = {
        "run_dir": str(run_dir), "work": str(work), "device": str(device), "threads": torch.get_num_threads(),
        "num_samples": num_samples, "batch_size": batch_size, "seeds": seeds,
        "rows": {"real": len(real), "train": len(train), "held_out": len(held_out), "floor": floor_rows,
                 "dim": layout.dim},
        "floor": t_interval(floors), "floor_per_seed": floors, "samplers": []}

    model.sample(min(64, num_samples), instantiate(sampler_config("heun", 2)), batch_size=64,
                 progress=False)  # warm-up
    reference: list[float] | None = None
    for name, steps in specs:
        sampler = instantiate(sampler_config(name, steps))
        per_seed, kept = [], None
        for seed in seeds:
            raw, seconds, nfe = draw(model, sampler, num_samples, batch_size, seed)
            synthetic = np.asarray(layout.pack(layout.decode(raw)), dtype=np.float32)  # as the sample stage
            w1 = w1_to_held_out(normalize, synthetic, held_out)
            per_seed.append({"seed": seed, "seconds": seconds, "nfe": nfe, "w1": w1})
            if seed == int(saved.seed):
                kept = synthetic
            print(f"  {name}:{steps} seed {seed}: {seconds:.1f} s ({num_samples / seconds:.1f} samples/s), "
                  f"{nfe:g} NFE, W1 {w1:.4f}", flush=True)
        w1s = [s["w1"] for s in per_seed]
        reference = reference or w1s
        if per_seed[0]["nfe"] != getattr(sampler, "nfe", per_seed[0]["nfe"]):
            print(f"  note: counted {per_seed[0]['nfe']:g} network evaluations per row, the schedule says "
                  f"{sampler.nfe}")
        row = {"sampler": f"{name}:{steps}", "name": name, "steps": steps, "nfe": per_seed[0]["nfe"],
               "samples_per_s": num_samples / statistics.median(s["seconds"] for s in per_seed),
               "w1": t_interval(w1s), "delta_w1": t_interval([a - b for a, b in zip(w1s, reference)]),
               "per_seed": per_seed, "config": OmegaConf.to_container(sampler_config(name, steps))}
        if not args.skip_downstream:
            copy_dir = work / f"{name}-{steps}"
            print(f"  {name}:{steps}: sample, finetune, eval in {copy_dir}", flush=True)
            cfg = copy_config(saved, name, steps, num_samples, batch_size, args.all_test_envs,
                              args.downstream)
            row["downstream"] = downstream_row(run_downstream(run_dir, copy_dir, cfg), copy_dir, kept)
            print(f"  {name}:{steps}: fine-tuned train return {fmt(row['downstream']['train_return'], 1)} "
                  f"over {row['downstream']['episodes']} episodes; stage seconds "
                  f"{row['downstream']['seconds']}; trained on seed {saved.seed}'s rows: "
                  f"{row['downstream']['rows_identical']}", flush=True)
        results["samplers"].append(row)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))
    print(f"\n{table(results)}\n\nW1: mean per-dimension W1 in normalized units to the {len(held_out)} "
          f"held-out real rows; mean over {len(seeds)} seeds of {num_samples} rows, 95% t-interval over "
          f"seeds (Δ: paired over seeds); floor: {floor_rows} real training rows per seed. Return: mean over "
          "evaluation episodes, 95% bootstrap interval over episodes (one fine-tuning run per sampler). "
          f"JSON: {args.out}")


if __name__ == "__main__":
    main()
