"""Finished runs -> results.csv, report.md and PNG plots: `python -m synthvis.report PATH [--out DIR]`.

A run directory is a folder holding both `config.yaml` (the resolved Hydra config, written first by the
pipeline) and `eval.json` (written by the eval stage). `<run_dir>/agent/eval.json`, the agent stage's periodic
evaluation, has no config.yaml beside it and is not a run. Runs are grouped by (task, variant, latent_dim);
the runs of a group are its seeds. A config without `variant` (older runs) counts as variant "unknown".

`js.json` (optional, beside eval.json) holds latent JS divergences from `synthvis.metrics.js_divergence`:

    {"bins": 100, "value_range": [-1.0, 1.0],
     "divergence": {"real": {"hard": 0.21, ...}, "real+synthetic": {"hard": 0.12, ...}}}

that is `{"bins": int, "value_range": [lo, hi] or null (per-dimension pooled min/max), "divergence":
{train_set_name: {test_env: JS in bits, mean over latent dimensions}}}`.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from omegaconf import OmegaConf

from synthvis.metrics.generalization import EPS, TRAIN_ENV, gap_closed, normalized_score
from synthvis.metrics.statistics import (
    CONFIDENCE,
    REPS,
    Interval,
    aggregate,
    gap_closed_interval,
    probability_of_improvement,
    resolves,
)
from synthvis.utils.files import atomic_write_bytes, atomic_write_text

log = logging.getLogger(__name__)

BASELINE = "baseline"
# Table and plot order: the ablation ladder up to the method, then anything else.
VARIANT_ORDER = (BASELINE, "augmented", "upsampled", "aug_upsampled")
UNKNOWN = "unknown"
# Variants each variant is tested against for a probability of improvement: the baseline, and augmentation alone.
REFERENCE_VARIANTS = (BASELINE, "augmented")
MIN_RELIABLE_SEEDS = 5  # with fewer seeds a percentile bootstrap interval covers little beyond what they did
BACKGROUND_LABELS = {"procedural": "DCS-style (procedural)", "davis": "DCS (DAVIS backgrounds)",
                     "image_folder": "image-folder backgrounds"}
PROCGEN_SPLITS = {"train": "training levels", "validation": "validation levels", "test": "unseen levels"}
CSV_FIELDS = ("task", "variant", "seed", "latent_dim", "env", "return_mean", "return_std", "episodes",
              "protocol", "run")
OPTIONAL_PLOTS = ("latent_dim.png", "js_heatmap.png")


def protocol_label(overrides: dict[str, Any], procgen: bool) -> str:
    """What an evaluation env is, in words: its distraction source (dm_control) or level split (Procgen)."""
    if procgen:
        split = overrides.get("split", "train")
        label = PROCGEN_SPLITS.get(split, f"{split} levels")
        return f"{label}, {overrides['variant']}" if overrides.get("variant") else label
    distraction = overrides.get("distraction")
    if not distraction:
        return "no distractions"
    source = distraction.get("background_source")
    return BACKGROUND_LABELS.get(source, f"{source} backgrounds")


def _task(env: dict[str, Any]) -> str:
    if "game" in env:
        return str(env["game"])
    return f"{env['domain']}_{env['task']}" if "domain" in env and "task" in env else UNKNOWN


def _load_run(run_dir: Path) -> dict[str, Any]:
    cfg = OmegaConf.to_container(OmegaConf.load(run_dir / "config.yaml"))
    evaluation = json.loads((run_dir / "eval.json").read_text())
    env = cfg.get("env") or {}
    protocol = evaluation.get("protocol", {})
    overrides = protocol.get("test_envs", {})
    procgen = "game" in env
    envs = {name: {"return_mean": float(s["return_mean"]), "return_std": float(s["return_std"]),
                   "episodes": len(s["returns"]) if "returns" in s else protocol.get("episodes"),
                   "label": protocol_label(overrides.get(name, {}), procgen)}
            for name, s in evaluation["envs"].items()}
    variant = cfg.get("variant")
    variant = UNKNOWN if variant in (None, "???") else variant
    js_path = run_dir / "js.json"
    return {"run_dir": run_dir, "task": _task(env), "variant": variant,
            "seed": cfg.get("seed"), "latent_dim": cfg.get("latent_dim"), "protocol": protocol, "envs": envs,
            "references": evaluation.get("references", {}),
            "js": json.loads(js_path.read_text()) if js_path.exists() else None}


def collect_runs(path: str | Path) -> list[dict[str, Any]]:
    """Every run directory at or under `path` (a run, a multirun, or any folder of them), sorted by path."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a folder")
    run_dirs = sorted(p.parent for p in path.rglob("eval.json") if (p.parent / "config.yaml").is_file())
    unfinished = [p.parent for p in path.rglob("config.yaml")
                  if not (p.parent / "eval.json").exists() and p.parent.name != ".hydra"]
    if unfinished:
        log.warning("%d run(s) without eval.json (unfinished?) left out, e.g. %s", len(unfinished),
                    unfinished[0])
    if not run_dirs:
        raise FileNotFoundError(f"no runs under {path}: a run is a folder holding config.yaml and eval.json")
    return [_load_run(run_dir) for run_dir in run_dirs]


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    # Population std (ddof=0), like eval.json's return_std, so a single seed reads ± 0.0 rather than n/a.
    return (float(np.mean(values)), float(np.std(values))) if len(values) else (math.nan, math.nan)


def _run_mean_test(run: dict[str, Any]) -> float | None:
    test = [s["return_mean"] for name, s in run["envs"].items() if name != TRAIN_ENV]
    return float(np.mean(test)) if test else None


def _variant_rank(variant: str) -> tuple[int, str]:
    return (VARIANT_ORDER.index(variant) if variant in VARIANT_ORDER else len(VARIANT_ORDER), variant)


def js_binning(js_files: Sequence[dict[str, Any]]) -> str:
    """How the runs' JS values were binned, said once: e.g. '100 bins over [-1, 1]', or the span of the ranges
    when each run binned over its own pooled latents."""
    bins = _ordered(str(js.get("bins")) for js in js_files)
    ranges = [js.get("value_range") for js in js_files]
    shared = {tuple(r) if r is not None else None for r in ranges}
    if shared == {None}:
        return f"{' / '.join(bins)} bins over each dimension's pooled min/max"
    if len(shared) == 1:
        low, high = next(iter(shared))
        return f"{' / '.join(bins)} bins over [{low:.3g}, {high:.3g}]"
    lows, highs = zip(*(r for r in ranges if r is not None), strict=True)
    return (f"{' / '.join(bins)} bins over each run's pooled range of training and test latents "
            f"(from [{min(lows):.3g}, {max(highs):.3g}] at the widest to [{max(lows):.3g}, {min(highs):.3g}])")


def summarize_runs(runs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per (task, variant, latent_dim): seeds, per-env and mean-test returns per seed, JS values."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["task"], run["variant"], run["latent_dim"]), []).append(run)
    summary = []
    for (task, variant, latent_dim), members in sorted(
            groups.items(), key=lambda item: (item[0][0], _variant_rank(item[0][1]), item[0][2] or 0)):
        seeds = [run["seed"] for run in members]
        if len(set(seeds)) < len(seeds):
            log.warning("%s %s latent_dim=%s has repeated seeds %s: each run counts once", task, variant,
                        latent_dim, seeds)
        returns: dict[str, list[float]] = {}
        js: dict[str, dict[str, list[float]]] = {}
        for run in members:
            for name, s in run["envs"].items():
                returns.setdefault(name, []).append(s["return_mean"])
            for train_set, row in (run["js"] or {}).get("divergence", {}).items():
                for test_env, value in row.items():
                    js.setdefault(train_set, {}).setdefault(test_env, []).append(float(value))
        mean_test = [m for m in map(_run_mean_test, members) if m is not None]
        references = [tuple(run["references"].get(kind, {}).get("return_mean", math.nan)
                            for kind in ("random", "dataset")) for run in members]
        summary.append({"task": task, "variant": variant, "latent_dim": latent_dim, "seeds": seeds,
                        "references": references,
                        "returns": returns, "mean_test": mean_test,
                        "js": js, "js_files": [run["js"] for run in members if run["js"]]})
    return summary


def versus_baseline(group: dict[str, Any], baseline: dict[str, Any] | None) -> float:
    """G from seed-averaged returns on the test envs both share."""
    if baseline is None or TRAIN_ENV not in baseline["returns"]:
        return math.nan
    shared = [name for name in group["returns"] if name != TRAIN_ENV and name in baseline["returns"]]
    if not shared:
        return math.nan
    t = float(np.mean([np.mean(group["returns"][name]) for name in shared]))
    b = float(np.mean([np.mean(baseline["returns"][name]) for name in shared]))
    return gap_closed(t, b, float(np.mean(baseline["returns"][TRAIN_ENV])))


def normalized_scores(group: dict[str, Any], name: str) -> list[float]:
    """Each run's normalized score on env `name`, from that run's own references (random actions, dataset)."""
    return [normalized_score(r, *references)
            for r, references in zip(group["returns"].get(name, []), group["references"], strict=False)
            if not math.isnan(normalized_score(r, *references))]


def _baseline_of(group: dict[str, Any], summary: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((g for g in summary if g["variant"] == BASELINE and g["task"] == group["task"]
                 and g["latent_dim"] == group["latent_dim"]), None)


def results_rows(runs: Iterable[dict[str, Any]], root: Path) -> list[dict[str, Any]]:
    """results.csv's rows: one per run × env."""
    return [{"task": run["task"], "variant": run["variant"], "seed": run["seed"],
             "latent_dim": run["latent_dim"], "env": name, "return_mean": s["return_mean"],
             "return_std": s["return_std"], "episodes": s["episodes"], "protocol": s["label"],
             "run": str(run["run_dir"].relative_to(root))}
            for run in runs for name, s in run["envs"].items()]


def _fmt(value: float, digits: int) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def _cell(values: Sequence[float], n: int) -> str:
    if not values:
        return "–"
    mean, std = _mean_std(values)
    # A cell with fewer seeds than its row says so; the row's n covers the rest.
    return f"{mean:.1f} ± {std:.1f}" + (f" (n={len(values)})" if len(values) != n else "")


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    return lines + ["| " + " | ".join(map(str, row)) + " |" for row in rows]


def _ordered(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))


def _protocol_line(runs: list[dict[str, Any]]) -> str:
    def listed(values: Iterable[Any]) -> str:
        return ", ".join(map(str, sorted({v for v in values if v is not None})))

    episodes = listed(s["episodes"] for run in runs for s in run["envs"].values())
    epsilons = listed(run["protocol"].get("epsilon") or None for run in runs)
    labels: dict[str, list[str]] = {}
    for run in runs:
        for name, s in run["envs"].items():
            if name not in labels.setdefault(s["label"], []):
                labels[s["label"]].append(name)
    envs = "; ".join(f"{', '.join(names)}: {label}" for label, names in labels.items())
    acting = "deterministic actions" + (f", ε-greedy {epsilons}" if epsilons else "")
    return (f"Protocol: {episodes} episodes per env per run, {acting}, eval seed "
            f"{listed(run['protocol'].get('seed') for run in runs)}; training seeds "
            f"{listed(run['seed'] for run in runs)}; envs: {envs}.")


def _references_line(runs: list[dict[str, Any]]) -> str | None:
    """The training-env returns a learned agent is read against (mean over runs), if the runs recorded them."""
    labels = {"random": "uniformly random actions", "dataset": "the offline dataset's episodes"}
    parts = []
    for name, label in labels.items():
        values = [run["references"][name]["return_mean"] for run in runs if name in run["references"]]
        if values:
            parts.append(f"{label} {_fmt(float(np.mean(values)), 1)}")
    return f"References on the training env (mean over runs): {'; '.join(parts)}." if parts else None


def score_matrix(group: dict[str, Any], envs: Sequence[str]) -> np.ndarray | None:
    """(seeds, envs) of a group's per-run mean returns; None unless every run has every env."""
    columns = [group["returns"].get(name, []) for name in envs]
    if not envs or any(len(column) != len(group["seeds"]) for column in columns):
        return None
    return np.array(columns, dtype=float).T


def _interval_cell(interval: Interval, digits: int = 1) -> str:
    point, low, high = interval
    return f"{point:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def statistics_lines(groups: list[dict[str, Any]], envs: Sequence[str], tests: Sequence[str],
                     reps: int | None = None) -> list[str]:
    """The rliable section of a task: IQM and mean with CIs per env set, P(improvement), G, and what resolves."""
    sets = {name: [name] for name in envs} | ({"test envs": list(tests)} if tests else {})
    reps = REPS if reps is None else reps
    scored = [(g, {label: score_matrix(g, names) for label, names in sets.items()}) for g in groups]
    # A single seed has no spread to resample: its "interval" would be a point.
    scored = [(g, matrices) for g, matrices in scored
              if len(g["seeds"]) >= 2 and all(m is not None for m in matrices.values())]
    if not scored:
        return []
    seeds = sorted({len(g["seeds"]) for g, _ in scored})
    lines = ["", "### Over seeds, with intervals (rliable)", "",
             (f"Protocol: a run's score on an env is its mean episode return (episodes averaged within a seed "
              f"first); n = {', '.join(map(str, seeds))} seeds per variant. Cells are point estimates with "
              f"{CONFIDENCE:.0%} stratified-bootstrap percentile intervals ({reps} resamples of the seeds, within "
              "each env; seeded). IQM = interquartile mean over seeds × envs (Agarwal et al. 2021); `test envs` "
              "pools every test env."), ""]
    aggregates = [{label: aggregate(matrix, reps) for label, matrix in matrices.items()} for _, matrices in scored]
    for statistic, title in (("iqm", "IQM"), ("mean", "Mean")):
        lines += [f"{title} return, with intervals:", ""]
        lines += _table(["variant", "latent_dim", "n", *sets],
                        [[g["variant"], g["latent_dim"], len(g["seeds"]),
                          *(_interval_cell(values[label][statistic]) for label in sets)]
                         for (g, _), values in zip(scored, aggregates, strict=True)])
        lines.append("")
    if not tests:
        return lines
    findings: list[str] = []
    rows = []
    for g, matrices in scored:
        row = [g["variant"], g["latent_dim"]]
        for reference in REFERENCE_VARIANTS:
            other = next((o for o, m in scored if o["variant"] == reference and o["latent_dim"] == g["latent_dim"]
                          and o is not g), None)
            if other is None:
                row.append("–")
                continue
            poi = probability_of_improvement(matrices["test envs"], score_matrix(other, tests), reps)
            row.append(_interval_cell(poi, 2))
            verdict = ("not resolved: the interval contains 0.5" if not resolves(poi, 0.5)
                       else f"{g['variant']} {'better' if poi[1] > 0.5 else 'worse'}: the interval excludes 0.5")
            findings.append(f"- P({g['variant']} > {reference}) on the test envs = {_interval_cell(poi, 2)}; "
                            f"{verdict}.")
        baseline = next((o for o, _ in scored if o["variant"] == BASELINE and o["latent_dim"] == g["latent_dim"]),
                        None)
        if baseline is None or baseline is g:
            row.append("–")
        else:
            g_interval = gap_closed_interval(score_matrix(g, [TRAIN_ENV, *tests]),
                                             score_matrix(baseline, [TRAIN_ENV, *tests]), reps)
            row.append("n/a" if math.isnan(g_interval[0]) else _interval_cell(g_interval, 3))
        rows.append(row)
    lines += [("Probability of improvement on the test envs (each env a task; ties count 1/2) and the gap closed G "
               "against the baseline, with intervals:"), ""]
    lines += _table(["variant", "latent_dim", *(f"P(> {r})" for r in REFERENCE_VARIANTS), "G"], rows)
    if findings:
        few = min(seeds) < MIN_RELIABLE_SEEDS
        lines += ["", "What these seeds resolve:", "", *findings]
        if few:
            lines += ["", (f"With fewer than {MIN_RELIABLE_SEEDS} seeds a bootstrap interval only spans what those "
                           "seeds happened to do, so read any difference here as provisional.")]
    return lines


def render_markdown(runs: list[dict[str, Any]], summary: list[dict[str, Any]], source: Path,
                    reps: int | None = None) -> str:
    """report.md: per task a returns table, G and normalized return vs the baseline, and JS divergences."""
    lines = [f"# Results: `{source}`", "",
             (f"{len(runs)} runs. Each run's number per env is its mean episode return; cells are mean ± std "
             "(population) over the runs (seeds) of a row, n = number of seeds."), ""]
    for task in _ordered(g["task"] for g in summary):
        groups = [g for g in summary if g["task"] == task]
        task_runs = [run for run in runs if run["task"] == task]
        envs = _ordered(name for g in groups for name in g["returns"])
        tests = [name for name in envs if name != TRAIN_ENV]
        lines += [f"## {task}", "", _protocol_line(task_runs), ""]
        references = _references_line(task_runs)
        if references:
            lines += [references, ""]
        lines += _table(["variant", "latent_dim", "n", *envs, "mean test"],
                        [[g["variant"], g["latent_dim"], len(g["seeds"]),
                          *(_cell(g["returns"].get(name, []), len(g["seeds"])) for name in envs),
                          _cell(g["mean_test"], len(g["seeds"]))] for g in groups])
        lines += ["", "### Normalized score", "",
                  ("100 × (R − R_random)/(R_data − R_random) per run and env, from that run's references on the "
                   "training env (R_random: uniformly random actions; R_data: the offline dataset's mean episode "
                   "return): 0 = random actions, 100 = the data. Mean ± std over seeds."), ""]
        lines += _table(["variant", "latent_dim", "n", *envs, "mean test"],
                        [[g["variant"], g["latent_dim"], len(g["seeds"]),
                          *(_cell(normalized_scores(g, name), len(g["seeds"])) for name in envs),
                          _cell([float(np.mean(scores)) for scores in zip(*(normalized_scores(g, name)
                                                                             for name in tests), strict=False)],
                                len(g["seeds"]))] for g in groups])
        lines += ["", "### Against the baseline", "",
                  ("G = (T_test − B_test)/(B_train − B_test) from seed-averaged returns, T and B averaged "
                   f"over the test envs ({', '.join(tests)}), against `{BASELINE}` with the same latent_dim. "
                   "n/a: no baseline run, or the baseline has no train→test gap "
                   f"(|B_train − B_test| < {EPS:g})."), ""]
        lines += _table(["variant", "latent_dim", "G"],
                        [[g["variant"], g["latent_dim"], _fmt(versus_baseline(g, _baseline_of(g, summary)), 3)]
                         for g in groups])
        lines += statistics_lines(groups, envs, tests, reps)
        with_js = [g for g in groups if g["js"]]
        if with_js:
            js_envs = _ordered(env for g in with_js for row in g["js"].values() for env in row)
            binning = js_binning([js for g in with_js for js in g["js_files"]])
            lines += ["", "### Latent JS divergence (bits)", "",
                      ("Histogram estimator per latent dimension on shared bins, log base 2, averaged over "
                       f"dimensions; mean over seeds ({binning})."), ""]
            lines += _table(["variant", "latent_dim", "train set", "n", *js_envs],
                            [[g["variant"], g["latent_dim"], train_set, max(map(len, row.values())),
                              *(_fmt(float(np.mean(row[env])) if env in row else math.nan, 3)
                                for env in js_envs)]
                             for g in with_js for train_set, row in g["js"].items()])
        lines.append("")
    return "\n".join(lines)


def _group_label(group: dict[str, Any], with_task: bool, with_dim: bool) -> str:
    parts = [group["task"]] * with_task + [group["variant"]] + [f"d={group['latent_dim']}"] * with_dim
    return " ".join(parts)


def _save(fig: Figure, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())


def plot_returns(summary: list[dict[str, Any]], path: Path) -> None:
    """Bar chart per task: train vs mean test return per variant (and latent_dim), ± std over seeds."""
    tasks = _ordered(g["task"] for g in summary)
    fig = Figure(figsize=(max(5.0, 1.6 * len(summary)), 4.0))
    for ax, task in zip(fig.subplots(1, len(tasks), squeeze=False)[0], tasks):
        groups = [g for g in summary if g["task"] == task]
        with_dim = len({g["latent_dim"] for g in groups}) > 1
        x = np.arange(len(groups))
        for offset, name, values in ((-0.2, "train", [g["returns"].get(TRAIN_ENV, []) for g in groups]),
                                     (0.2, "mean test", [g["mean_test"] for g in groups])):
            means, stds = zip(*map(_mean_std, values))
            ax.bar(x + offset, means, 0.4, yerr=stds, capsize=3, label=name)
        ax.set_xticks(x, [_group_label(g, False, with_dim).replace(" ", "\n") for g in groups], fontsize=8)
        ax.set(title=task, ylabel="return")
        ax.legend(ncols=2, loc="upper center", bbox_to_anchor=(0.5, -0.15))  # below: bars fill the axes
    _save(fig, path)


def plot_latent_dim(summary: list[dict[str, Any]], path: Path) -> bool:
    """Mean test return vs latent_dim per variant, for tasks with several latent_dims; False if none has."""
    tasks = [task for task in _ordered(g["task"] for g in summary)
             if len({g["latent_dim"] for g in summary if g["task"] == task and g["latent_dim"]}) > 1]
    if not tasks:
        return False
    fig = Figure(figsize=(5.0 * len(tasks), 4.0))
    for ax, task in zip(fig.subplots(1, len(tasks), squeeze=False)[0], tasks):
        groups = [g for g in summary if g["task"] == task and g["latent_dim"] and g["mean_test"]]
        for variant in _ordered(g["variant"] for g in groups):
            dims, means, stds = zip(*sorted((g["latent_dim"], *_mean_std(g["mean_test"])) for g in groups
                                            if g["variant"] == variant))
            ax.errorbar(dims, means, yerr=stds, marker="o", capsize=3, label=variant)
        ax.set_xscale("log", base=2)
        ax.set(title=task, xlabel="latent_dim", ylabel="mean test return")
        ax.legend()
    _save(fig, path)
    return True


def plot_js_heatmap(summary: list[dict[str, Any]], path: Path) -> bool:
    """Heatmap of mean JS divergence: rows = training sets (per group), columns = test envs; False if none."""
    with_js = [g for g in summary if g["js"]]
    if not with_js:
        return False
    with_task = len({g["task"] for g in with_js}) > 1
    with_dim = len({g["latent_dim"] for g in with_js}) > 1
    single = len(with_js) == 1
    rows = [(train_set if single else f"{_group_label(g, with_task, with_dim)}: {train_set}", row)
            for g in with_js for train_set, row in g["js"].items()]
    envs = _ordered(env for _, row in rows for env in row)
    values = np.array([[np.mean(row[env]) if env in row else np.nan for env in envs] for _, row in rows])
    fig = Figure(figsize=(1.2 * len(envs) + 3.0, 0.5 * len(rows) + 1.5))
    ax = fig.subplots()
    image = ax.imshow(values, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    for (i, j), value in np.ndenumerate(values):
        if not np.isnan(value):
            ax.text(j, i, f"{value:.3f}", ha="center", va="center", color="white" if value < 0.5 else "black",
                    fontsize=8)
    ax.set_xticks(range(len(envs)), envs, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), [label for label, _ in rows])
    fig.colorbar(image, ax=ax, label="JS divergence (bits)")
    _save(fig, path)
    return True


def build_report(path: str | Path, out_dir: str | Path | None = None, reps: int | None = None) -> dict[str, Any]:
    """Collect the runs under `path`; write results.csv, report.md and plots to `out_dir` (default: path).

    `reps`: bootstrap resamples per interval (default REPS)."""
    path = Path(path)
    runs = collect_runs(path)
    out = Path(out_dir) if out_dir is not None else path
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize_runs(runs)
    rows = results_rows(runs, path)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "results.csv", buffer.getvalue())
    markdown = render_markdown(runs, summary, path, reps)
    atomic_write_text(out / "report.md", markdown)
    plot_returns(summary, out / "returns.png")
    written = [out / "results.csv", out / "report.md", out / "returns.png"]
    for name, plot in zip(OPTIONAL_PLOTS, (plot_latent_dim, plot_js_heatmap)):
        if plot(summary, out / name):
            written.append(out / name)
        else:
            # A plot left from an earlier report would contradict this one's report.md.
            (out / name).unlink(missing_ok=True)
    return {"runs": runs, "summary": summary, "rows": rows, "markdown": markdown, "files": written}


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: build the report and print the markdown."""
    parser = argparse.ArgumentParser(prog="python -m synthvis.report", description=__doc__.split("\n")[0])
    parser.add_argument("path", help="a run directory, a multirun directory, or a folder of run directories")
    parser.add_argument("--out", default=None, help="where to write the report (default: PATH)")
    parser.add_argument("--reps", type=int, default=REPS, help=f"bootstrap resamples per interval (default {REPS})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        result = build_report(args.path, args.out, args.reps)
    except FileNotFoundError as error:
        parser.error(str(error))
    print(result["markdown"], end="")  # the markdown ends with its own newline


if __name__ == "__main__":
    main()
