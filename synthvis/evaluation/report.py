"""Finished runs -> results.csv, report.md and PNG plots: `python -m synthvis.evaluation.report PATH [--out DIR]`.

A run directory is a folder holding both `config.yaml` (the resolved Hydra config, written first by the
pipeline) and `eval.json` (written by the eval stage). `<run_dir>/<stage>/eval.json`, a training stage's
end-of-training evaluation (callbacks.evaluation.at_end), has no config.yaml beside it and is not a run. Runs are
grouped by (task, variant, latent_dim); the runs of a group are its seeds. A config without `variant` (older
runs) counts as variant "unknown".

`js.json` (optional, beside eval.json) holds latent JS divergences from `synthvis.metrics.js_divergence`:

    {"bins": 100, "binning": "quantile",
     "divergence": {"real": {"hard": 0.21, ...}, "real+synthetic": {"hard": 0.12, ...}},
     "paired": {"states": 512, "bins": 20, "binning": "quantile", "divergence": {"hard": 0.08, ...},
                "latent_distance": {"hard": 1.3, ...}, "latent_distance_scale": 4.1}}

`divergence` is the rollout measure: {train set: {env: JS in bits between the training latents and the agent's own
rollout latents on that env, mean over latent dimensions}}. `paired` (optional) is the visual shift alone: JS and
mean L2 distance between the latents of the same states rendered clean and with each env's distractions, with the
mean L2 between different clean states as the distance's scale. `binning` is "quantile" or "width" (bins per
dimension); older files have `"value_range": [lo, hi]` or null (per-dimension pooled min/max) instead.

Plots: returns.png (mean ± std over seeds), aggregate.png (IQM over seeds with CIs, train vs test envs),
test_envs.png (per test env, CIs over seeds or one seed's episodes), js.png (rollout and paired JS with CIs),
js_heatmap.png and latent_dim.png.

Intervals: with >= 2 seeds per group, 95% stratified-bootstrap intervals over seeds (rliable); with one seed, 95%
percentile-bootstrap intervals over that seed's evaluation episodes (eval.json's per-episode returns), which
measure evaluation noise only.
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
from typing import Any, TypeVar

import numpy as np
from matplotlib.figure import Figure
from omegaconf import OmegaConf

from synthvis.envs.task import task_name
from synthvis.metrics.generalization import EPS, TRAIN_ENV, gap_closed, normalized_score
from synthvis.metrics.statistics import (
    CONFIDENCE,
    REPS,
    Interval,
    aggregate,
    gap_closed_interval,
    mean_intervals,
    probability_of_improvement,
    resolves,
)
from synthvis.utils.files import atomic_write_bytes, atomic_write_text

log = logging.getLogger(__name__)
T = TypeVar("T")

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
BINNINGS = {"quantile": "quantile bins per dimension", "width": "equal-width bins per dimension"}
ROLLOUT = "rollout (each agent's own test-env states: visual + state shift)"
PAIRED = "paired (same states, clean vs distracted: visual shift alone)"
PAIRED_JS, PAIRED_DISTANCE = "JS (bits)", "latent distance ÷ scale"
EPISODE_CAVEAT = ("over episodes of one seed: evaluation noise only, not training variance; run >= 5 seeds for a "
                  "comparison")


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


def _load_run(run_dir: Path) -> dict[str, Any]:
    cfg = OmegaConf.to_container(OmegaConf.load(run_dir / "config.yaml"))
    evaluation = json.loads((run_dir / "eval.json").read_text())
    env = cfg.get("env") or {}
    protocol = evaluation.get("protocol", {})
    overrides = protocol.get("test_envs", {})
    procgen = "game" in env
    envs = {name: {"return_mean": float(s["return_mean"]), "return_std": float(s["return_std"]),
                   "episodes": len(s["returns"]) if "returns" in s else protocol.get("episodes"),
                   "returns": [float(r) for r in s.get("returns", [])],
                   "label": protocol_label(overrides.get(name, {}), procgen)}
            for name, s in evaluation["envs"].items()}
    variant = cfg.get("variant")
    variant = UNKNOWN if variant in (None, "???") else variant
    js_path = run_dir / "js.json"
    return {"run_dir": run_dir, "task": task_name(env) or UNKNOWN, "variant": variant,
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
    """How the runs' JS values were binned, said once: e.g. '100 quantile bins per dimension'; older files without
    `binning` by their value range ('100 bins over [-1, 1]')."""
    kinds = _ordered(js["binning"] for js in js_files if "binning" in js)
    parts = [f"{' / '.join(_ordered(str(js.get('bins')) for js in js_files if js.get('binning') == kind))} "
             f"{BINNINGS.get(kind, f'{kind} bins')}" for kind in kinds]
    older = [js for js in js_files if "binning" not in js]
    return "; ".join(parts + ([_value_range_binning(older)] if older else []))


def _value_range_binning(js_files: Sequence[dict[str, Any]]) -> str:
    """The binning of js.json files from before `binning`: a shared value range, or the span of each run's own."""
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


def paired_measures(paired: dict[str, Any]) -> dict[str, dict[str, float]]:
    """A js.json `paired` section as {measure: {env: value}}: the JS, and the latent distance over its scale."""
    measures = {PAIRED_JS: {env: float(v) for env, v in paired.get("divergence", {}).items()}}
    scale = paired.get("latent_distance_scale")
    if scale and math.isfinite(scale):  # without a scale (fewer than 2 states, or 0) distances have no unit
        measures[PAIRED_DISTANCE] = {env: float(v) / scale for env, v in paired.get("latent_distance", {}).items()}
    return {measure: row for measure, row in measures.items() if row}


def _collect(tables: Iterable[dict[str, dict[str, float]]]) -> dict[str, dict[str, list[float]]]:
    """{row: {column: value}} tables (one per seed) -> {row: {column: [value per seed]}}."""
    collected: dict[str, dict[str, list[float]]] = {}
    for table in tables:
        for row_name, row in table.items():
            for column, value in row.items():
                collected.setdefault(row_name, {}).setdefault(column, []).append(float(value))
    return collected


def summarize_runs(runs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per (task, variant, latent_dim): seeds, per-env and mean-test returns per seed, each seed's
    episode returns, rollout and paired JS values."""
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
        for run in members:
            for name, s in run["envs"].items():
                returns.setdefault(name, []).append(s["return_mean"])
        js_files = [run["js"] for run in members if run["js"]]
        paired_files = [js["paired"] for js in js_files if js.get("paired")]
        mean_test = [m for m in map(_run_mean_test, members) if m is not None]
        references = [tuple(run["references"].get(kind, {}).get("return_mean", math.nan)
                            for kind in ("random", "dataset")) for run in members]
        summary.append({"task": task, "variant": variant, "latent_dim": latent_dim, "seeds": seeds,
                        "references": references,
                        "returns": returns, "mean_test": mean_test,
                        "episodes": [{name: s["returns"] for name, s in run["envs"].items()} for run in members],
                        "js": _collect(js.get("divergence", {}) for js in js_files), "js_files": js_files,
                        "paired": _collect(map(paired_measures, paired_files)), "paired_files": paired_files})
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


def _ordered(names: Iterable[T]) -> list[T]:
    """The distinct items in first-seen order."""
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


def episode_matrix(returns: dict[str, list[float]], envs: Sequence[str]) -> np.ndarray | None:
    """(episodes, envs) of one run's per-episode returns; None unless every env has the same >= 2 episodes."""
    columns = [returns.get(name, []) for name in envs]
    if not envs or len({len(column) for column in columns}) != 1 or len(columns[0]) < 2:
        return None
    return np.array(columns, dtype=float).T


def column_intervals(columns: dict[str, Sequence[float]], reps: int) -> dict[str, Interval]:
    """Each column's mean with its 95% bootstrap CI over its values (one per seed); equal lengths share a call."""
    intervals: dict[str, Interval] = {}
    for length in _ordered(len(values) for values in columns.values()):
        names = [name for name, values in columns.items() if len(values) == length]
        matrix = np.array([columns[name] for name in names], dtype=float).T
        intervals.update(zip(names, mean_intervals(matrix, reps), strict=True))
    return {name: intervals[name] for name in columns}


def _task_envs(groups: Sequence[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Every env of a task's groups, and those that are test envs."""
    envs = _ordered(name for g in groups for name in g["returns"])
    return envs, [name for name in envs if name != TRAIN_ENV]


def _seed_aggregates(group: dict[str, Any], envs: Sequence[str], tests: Sequence[str],
                     reps: int) -> dict[str, dict[str, Interval]] | None:
    """IQM and mean with 95% CIs over seeds per env, over the pooled test envs (`test envs`) and over each seed's
    mean test return (`mean test`); None with one seed (no spread to resample) or a seed missing an env."""
    if len(group["seeds"]) < 2:
        return None
    matrices = {name: score_matrix(group, [name]) for name in envs}
    if any(matrix is None for matrix in matrices.values()):
        return None
    tested = score_matrix(group, tests)
    if tested is not None:
        matrices |= {"test envs": tested, "mean test": tested.mean(axis=1, keepdims=True)}
    return {label: aggregate(matrix, reps) for label, matrix in matrices.items()}


def _episode_intervals(group: dict[str, Any], tests: Sequence[str], reps: int) -> dict[str, Any] | None:
    """A one-seed group's train, per-env and mean test returns with 95% CIs over its evaluation episodes; None
    with more seeds or without per-episode returns."""
    if len(group["seeds"]) != 1:
        return None
    names = [TRAIN_ENV, *tests]
    matrix = episode_matrix(group["episodes"][0], names)
    if matrix is None:
        return None
    envs = dict(zip(names, mean_intervals(matrix, reps), strict=True))
    return {"matrix": matrix, "envs": envs, "train": envs[TRAIN_ENV],
            "mean test": aggregate(matrix[:, 1:], reps)["mean"] if tests else None}


def _env_intervals(group: dict[str, Any], tests: Sequence[str], reps: int) -> dict[str, Interval]:
    """Each test env's mean return with its 95% CI: the rliable table's over seeds, else over one seed's episodes,
    else over whatever seeds each env has."""
    if group["seed_stats"]:
        return {name: group["seed_stats"][name]["mean"] for name in tests}
    if group["episode_stats"]:
        return {name: group["episode_stats"]["envs"][name] for name in tests}
    return column_intervals({name: group["returns"][name] for name in tests if name in group["returns"]}, reps)


def _gap_interval(group: dict[str, Any], baseline: dict[str, Any] | None, tests: Sequence[str],
                  reps: int) -> dict[str, Any]:
    """G against the baseline with its 95% CI and what it resamples: seeds when both have >= 2, episodes when both
    have one; no interval otherwise."""
    if baseline is None or not tests:
        return {"g": None, "g_over": None}
    if group["seed_stats"] and baseline["seed_stats"] and TRAIN_ENV in group["seed_stats"]:
        names = [TRAIN_ENV, *tests]
        return {"g": gap_closed_interval(score_matrix(group, names), score_matrix(baseline, names), reps),
                "g_over": "seeds"}
    if group["episode_stats"] and baseline["episode_stats"]:
        return {"g": gap_closed_interval(group["episode_stats"]["matrix"], baseline["episode_stats"]["matrix"],
                                         reps), "g_over": "episodes"}
    return {"g": None, "g_over": None}


def _comparisons(group: dict[str, Any], peers: Sequence[dict[str, Any]], tests: Sequence[str],
                 reps: int) -> dict[str, Any]:
    """P(group > reference) on the test envs over seeds per reference variant, and G against the baseline."""
    poi = {}
    if group["seed_stats"] and tests:
        for reference in REFERENCE_VARIANTS:
            other = next((o for o in peers if o["variant"] == reference and o["seed_stats"]), None)
            if other is not None:
                poi[reference] = probability_of_improvement(score_matrix(group, tests), score_matrix(other, tests),
                                                            reps)
    baseline = next((o for o in peers if o["variant"] == BASELINE), None)
    return {"poi": poi, **_gap_interval(group, baseline, tests, reps)}


def add_intervals(summary: list[dict[str, Any]], reps: int) -> None:
    """Every interval the report shows, computed once into each group: `seed_stats`, `episode_stats`,
    `env_intervals`, `js_intervals`, `paired_intervals` and `versus` (P of improvement, G)."""
    for task in _ordered(g["task"] for g in summary):
        groups = [g for g in summary if g["task"] == task]
        envs, tests = _task_envs(groups)
        for g in groups:
            g["seed_stats"] = _seed_aggregates(g, envs, tests, reps)
            g["episode_stats"] = _episode_intervals(g, tests, reps)
            g["env_intervals"] = _env_intervals(g, tests, reps)
            g["js_intervals"] = {name: column_intervals(row, reps) for name, row in g["js"].items()}
            g["paired_intervals"] = {name: column_intervals(row, reps) for name, row in g["paired"].items()}
        for g in groups:
            peers = [o for o in groups if o["latent_dim"] == g["latent_dim"] and o is not g]
            g["versus"] = _comparisons(g, peers, tests, reps)


def _interval_cell(interval: Interval | None, digits: int = 1) -> str:
    """'point [low, high]'; the point alone when there is no interval, n/a when there is no point."""
    if interval is None:
        return "–"
    point, low, high = interval
    if math.isnan(point):
        return "n/a"
    if math.isnan(low) or math.isnan(high):
        return f"{point:.{digits}f}"
    return f"{point:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _few_seeds_note(counts: Iterable[int]) -> str:
    """Why intervals over fewer than MIN_RELIABLE_SEEDS seeds are to be read as rough."""
    few = [n for n in counts if n < MIN_RELIABLE_SEEDS]
    return (f" With fewer than {MIN_RELIABLE_SEEDS} seeds ({min(few)} here) these intervals are rough: they only "
            "span what those seeds happened to do." if few else "")


def statistics_lines(groups: list[dict[str, Any]], tests: Sequence[str], reps: int) -> list[str]:
    """The rliable section of a task: IQM and mean with CIs per env set, P(improvement), G, and what resolves."""
    scored = [g for g in groups if g["seed_stats"]]
    if not scored:
        return []
    sets = list(scored[0]["seed_stats"])
    seeds = sorted({len(g["seeds"]) for g in scored})
    lines = ["", "### Over seeds, with intervals (rliable)", "",
             (f"Protocol: a run's score on an env is its mean episode return (episodes averaged within a seed "
              f"first); n = {', '.join(map(str, seeds))} seeds per variant. Cells are point estimates with "
              f"{CONFIDENCE:.0%} stratified-bootstrap percentile intervals ({reps} resamples of the seeds, within "
              "each env; seeded). IQM = interquartile mean over seeds × envs (Agarwal et al. 2021); `test envs` "
              "pools every test env; `mean test` is each seed's mean over the test envs (aggregate.png)."), ""]
    for statistic, title in (("iqm", "IQM"), ("mean", "Mean")):
        lines += [f"{title} return, with intervals:", ""]
        lines += _table(["variant", "latent_dim", "n", *sets],
                        [[g["variant"], g["latent_dim"], len(g["seeds"]),
                          *(_interval_cell(g["seed_stats"][label][statistic]) for label in sets)] for g in scored])
        lines.append("")
    if not tests:
        return lines
    with_dim = len({g["latent_dim"] for g in scored}) > 1
    findings = [f"- P({g['variant']} > {reference}) on the test envs"
                + (f" (latent_dim {g['latent_dim']})" if with_dim else "") + f" = {_interval_cell(poi, 2)}; "
                + ("not resolved: the interval contains 0.5" if not resolves(poi, 0.5) else
                   f"{g['variant']} {'better' if poi[1] > 0.5 else 'worse'}: the interval excludes 0.5") + "."
                for g in scored for reference, poi in g["versus"]["poi"].items()]
    rows = [[g["variant"], g["latent_dim"], *(_interval_cell(g["versus"]["poi"].get(r), 2) for r in REFERENCE_VARIANTS),
             _interval_cell(g["versus"]["g"] if g["versus"]["g_over"] == "seeds" else None, 3)] for g in scored]
    lines += [("Probability of improvement on the test envs (each env a task; ties count 1/2) and the gap closed G "
               "against the baseline, with intervals:"), ""]
    lines += _table(["variant", "latent_dim", *(f"P(> {r})" for r in REFERENCE_VARIANTS), "G"], rows)
    if findings:
        lines += ["", "What these seeds resolve:", "", *findings]
        if min(seeds) < MIN_RELIABLE_SEEDS:
            lines += ["", (f"With fewer than {MIN_RELIABLE_SEEDS} seeds a bootstrap interval only spans what those "
                           "seeds happened to do, so read any difference here as provisional.")]
    return lines


def episode_lines(groups: list[dict[str, Any]], reps: int) -> list[str]:
    """The one-seed section of a task: train and mean test return and G, with 95% CIs over episodes."""
    single = [g for g in groups if g["episode_stats"]]
    if not single:
        return []
    lines = ["", "### One seed, with intervals over episodes", "",
             (f"{CONFIDENCE:.0%} percentile-bootstrap intervals {EPISODE_CAVEAT}. {reps} resamples of the "
              "episodes, within each env; seeded. G against the baseline when it also ran one seed, resampling the "
              "episodes of both runs."), ""]
    return lines + _table(["variant", "latent_dim", "seed", "episodes", "train", "mean test", "G"],
                          [[g["variant"], g["latent_dim"], g["seeds"][0], len(g["episode_stats"]["matrix"]),
                            _interval_cell(g["episode_stats"]["train"]),
                            _interval_cell(g["episode_stats"]["mean test"]),
                            _interval_cell(g["versus"]["g"] if g["versus"]["g_over"] == "episodes" else None, 3)]
                           for g in single])


def _measure_table(groups: list[dict[str, Any]], measure: str, header: str) -> list[str]:
    """Rows (group, row of `measure`) × env columns: the mean over seeds with its 95% CI (the value alone for one
    seed); `measure` is a summary key with intervals under `<measure>_intervals`, e.g. "js"."""
    columns = _ordered(env for g in groups for row in g[measure].values() for env in row)

    def cell(values: dict[str, list[float]], intervals: dict[str, Interval], env: str) -> str:
        if env not in values:
            return "–"
        return _interval_cell(intervals[env] if len(values[env]) > 1 else (intervals[env][0], math.nan, math.nan),
                              3)

    return _table(["variant", "latent_dim", header, "n", *columns],
                  [[g["variant"], g["latent_dim"], name, max(map(len, row.values())),
                    *(cell(row, g[f"{measure}_intervals"][name], env) for env in columns)]
                   for g in groups for name, row in g[measure].items()])


def js_lines(groups: list[dict[str, Any]], reps: int) -> list[str]:
    """The latent JS section of a task: the rollout and (when recorded) paired measures with CIs over seeds."""
    with_js = [g for g in groups if g["js"]]
    with_paired = [g for g in groups if g["paired"]]
    if not with_js and not with_paired:
        return []
    # A js.json may hold the paired section alone (no rollout observations): its top level then has no binning.
    binning = js_binning([js for g in with_js for js in g["js_files"] if "divergence" in js]) if with_js else ""
    seeds = [len(g["js_files"]) for g in with_js] + [len(g["paired_files"]) for g in with_paired]
    lines = ["", "### Latent JS divergence (bits)", "",
             ("Histogram estimator per latent dimension, log base 2, averaged over dimensions"
              + (f" ({binning})" if binning else "") + f". Cells: mean over seeds with a {CONFIDENCE:.0%} "
              f"stratified-bootstrap interval over the seeds (rliable, {reps} resamples; seeded), n = seeds; the "
              "value alone for one seed." + _few_seeds_note(n for n in seeds if n > 1)), ""]
    if with_js:
        lines += [(f"**{ROLLOUT}**: the training set's latents against the latents of the agent's own rollouts "
                   "on each env."), "", *_measure_table(with_js, "js", "train set"), ""]
    if with_paired:
        lines += [_paired_line([paired for g in with_paired for paired in g["paired_files"]], binning), "",
                  *_measure_table(with_paired, "paired", "measure")]
    return lines


def _paired_line(paired_files: Sequence[dict[str, Any]], binning: str) -> str:
    """What the paired table measures, its binning where it differs from the rollout's, and the envs skipped."""
    paired_binning = js_binning(paired_files)
    states = ", ".join(map(str, _ordered(paired.get("states") for paired in paired_files)))
    skipped = _ordered(f"{env} ({why})" for paired in paired_files for env, why in paired.get("skipped", {}).items())
    return (f"**{PAIRED}**: the agent's latents of the same {states} training-env states rendered clean and with "
            "each env's distractions" + (f" ({paired_binning})" if paired_binning != binning else "")
            + f"; {PAIRED_DISTANCE} = mean L2 between each clean/distracted pair ÷ mean L2 between different clean "
            "states (1: as far apart as different states)." + (f" Skipped: {'; '.join(skipped)}." if skipped else ""))


def _headline(group: dict[str, Any]) -> tuple[Interval, Interval, str]:
    """A group's train and mean test return with 95% CIs, and what the intervals resample."""
    if group["seed_stats"] and TRAIN_ENV in group["seed_stats"] and "mean test" in group["seed_stats"]:
        return group["seed_stats"][TRAIN_ENV]["mean"], group["seed_stats"]["mean test"]["mean"], "CI over seeds"
    if group["episode_stats"] and group["episode_stats"]["mean test"]:
        return group["episode_stats"]["train"], group["episode_stats"]["mean test"], "CI over episodes of one seed"
    train, test = (_mean_std(values)[0] for values in (group["returns"].get(TRAIN_ENV, []), group["mean_test"]))
    return (train, math.nan, math.nan), (test, math.nan, math.nan), "no CI"


def _answer_line(group: dict[str, Any], baseline: dict[str, Any] | None, width: int) -> str:
    """One variant: seeds, train and mean test return, G and P(> baseline), each with its 95% CI."""
    train, test, over = _headline(group)
    n = len(group["seeds"])
    parts = [f"  {group['variant']:<{width}}  {n} seed{'s' * (n != 1)}", f"train {_interval_cell(train)}",
             f"mean test {_interval_cell(test)}"]
    if baseline is not None and baseline is not group:
        versus = group["versus"]
        parts.append(f"G vs baseline {_interval_cell(versus['g'], 3)}" if versus["g"] is not None else
                     f"G vs baseline {_fmt(versus_baseline(group, baseline), 3)} "
                     f"(no CI: {_no_interval_reason(group, baseline)})")
        if BASELINE in versus["poi"]:
            parts.append(f"P(> baseline) {_interval_cell(versus['poi'][BASELINE], 2)}")
    return "  ".join([*parts, f"({over})"])


def _direction(interval: Interval | None, null: float) -> str | None:
    """'better' or 'worse' when a 95% interval excludes `null`; None when it does not or is missing."""
    if interval is None or math.isnan(interval[0]) or not resolves(interval, null):
        return None
    return "better" if interval[1] > null else "worse"


def _verdict(versus: dict[str, Any]) -> str | None:
    """'better' or 'worse' than the baseline when G's and P's intervals (those that exist) agree in excluding no
    difference, 'open' when one does not exclude it, None when there is no interval."""
    intervals = [(versus["g"], 0.0)] + ([(versus["poi"][BASELINE], 0.5)] if BASELINE in versus["poi"] else [])
    intervals = [(i, null) for i, null in intervals if i is not None and not math.isnan(i[0])]
    if not intervals:
        return None
    directions = {_direction(i, null) for i, null in intervals}
    return directions.pop() if len(directions) == 1 and None not in directions else "open"


def _resolution_sentence(groups: list[dict[str, Any]], baseline: dict[str, Any] | None) -> str:
    """One plain sentence: which differences from the baseline the 95% intervals resolve, and how far to trust it."""
    others = [g for g in groups if g is not baseline]
    if baseline is None:
        return "  No baseline run: nothing to compare the variants against (add variant=baseline)."
    if not others:
        return "  Only the baseline ran: nothing to compare it with."
    verdicts = {g["variant"]: _verdict(g["versus"]) for g in others}
    resolved = [f"{variant} {verdict}" for variant, verdict in verdicts.items() if verdict in ("better", "worse")]
    unresolved = [variant for variant, verdict in verdicts.items() if verdict == "open"]
    missing = [variant for variant, verdict in verdicts.items() if verdict is None]
    clauses = [f"the 95% intervals resolve {', '.join(resolved)}"] if resolved else []
    if unresolved:
        both = any(BASELINE in g["versus"]["poi"] for g in others if g["variant"] in unresolved)
        clauses.append(f"{'they' if resolved else 'the 95% intervals'} leave {', '.join(unresolved)} unresolved"
                       + (" (a verdict needs G's and P(> baseline)'s intervals to exclude no difference, in the "
                          "same direction)" if both else ""))
    if missing:
        clauses.append(f"no interval compares {', '.join(missing)} with it")
    sentence = "Against the baseline, " + "; ".join(clauses)
    seeds = min(len(g["seeds"]) for g in groups)
    if any(g["versus"]["g_over"] == "episodes" for g in others):
        sentence += f" ({EPISODE_CAVEAT})"
    elif seeds < MIN_RELIABLE_SEEDS and (resolved or unresolved):
        sentence += f" (with {seeds} seed{'s' * (seeds != 1)}, fewer than {MIN_RELIABLE_SEEDS}: provisional)"
    return f"  {sentence}."


def _no_interval_reason(group: dict[str, Any], baseline: dict[str, Any]) -> str:
    """Why G against the baseline has no interval: seed-level needs >= 2 seeds each, episode-level one each."""
    if (len(group["seeds"]) == 1) != (len(baseline["seeds"]) == 1):
        return "seed counts differ"
    return "a run lacks an env or its episode returns"


def answer_lines(summary: list[dict[str, Any]]) -> list[str]:
    """The lines to read at the end of a comparison: per task (and latent_dim) each variant's seeds, train and mean
    test return, G and P(> baseline) with 95% CIs, and what the intervals resolve. Needs `add_intervals` first."""
    lines = []
    with_dim = len({g["latent_dim"] for g in summary}) > 1
    for task, latent_dim in _ordered((g["task"], g["latent_dim"]) for g in summary):
        groups = [g for g in summary if g["task"] == task and g["latent_dim"] == latent_dim]
        baseline = next((g for g in groups if g["variant"] == BASELINE), None)
        width = max(len(g["variant"]) for g in groups)
        lines.append(f"{task}{f', latent_dim {latent_dim}' if with_dim else ''}: mean returns with 95% intervals")
        lines += [_answer_line(g, baseline, width) for g in groups]
        lines.append(_resolution_sentence(groups, baseline))
    return lines


def render_markdown(runs: list[dict[str, Any]], summary: list[dict[str, Any]], source: Path, reps: int,
                    answer: Sequence[str]) -> str:
    """report.md: per task a returns table, G and normalized return vs the baseline, intervals over seeds or
    episodes, JS divergences; then the answer lines."""
    lines = [f"# Results: `{source}`", "",
             (f"{len(runs)} runs. Each run's number per env is its mean episode return; cells are mean ± std "
             "(population) over the runs (seeds) of a row, n = number of seeds."), ""]
    for task in _ordered(g["task"] for g in summary):
        groups = [g for g in summary if g["task"] == task]
        task_runs = [run for run in runs if run["task"] == task]
        envs, tests = _task_envs(groups)
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
        lines += statistics_lines(groups, tests, reps)
        lines += episode_lines(groups, reps)
        lines += js_lines(groups, reps)
        lines.append("")
    return "\n".join([*lines, "## Answer", "", "```", *answer, "```", ""])


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


def _interval_bars(ax, x: np.ndarray, intervals: Sequence[Interval], width: float, **style: Any) -> None:
    """Bars at the point estimates with their 95% intervals as asymmetric error bars (none where there is none)."""
    points = np.array([point for point, _, _ in intervals], dtype=float)
    errors = np.array([[point - low, high - point] for point, low, high in intervals], dtype=float).reshape(-1, 2).T
    # Clipped: rounding can put a degenerate interval's bound a hair inside its point, and yerr must be >= 0.
    # As lists: matplotlib reads a (2, 1) array's first row as a scalar, which NumPy >= 1.25 deprecates.
    ax.bar(x, points, width, yerr=np.clip(np.nan_to_num(errors), 0.0, None).tolist(), capsize=3, **style)


def _grouped_bars(ax, categories: Sequence[str], series: Sequence[tuple[str, dict[str, Interval]]]) -> None:
    """One cluster per category (env), one bar with its 95% interval per series (group) that has the category."""
    if not series:  # a task without this measure: a blank panel
        ax.set_axis_off()
        return
    width = 0.8 / len(series)
    x = np.arange(len(categories))
    for k, (label, intervals) in enumerate(series):
        present = [j for j, name in enumerate(categories) if name in intervals]
        _interval_bars(ax, x[present] + (k - (len(series) - 1) / 2) * width,
                       [intervals[categories[j]] for j in present], width, label=label)
    ax.set_xticks(x, categories, rotation=30, ha="right")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside: the bars fill the axes


def _interval_source(group: dict[str, Any]) -> str:
    """What a group's per-env intervals resample, for a legend."""
    n = len(group["seeds"])
    if n > 1:
        return f"{n} seeds"
    return "1 seed: CI over episodes" if group["episode_stats"] else "1 seed: no CI"


def plot_aggregate(summary: list[dict[str, Any]], path: Path) -> bool:
    """Per task, the IQM with its 95% CI over seeds per variant on the training env and on the test envs (each
    seed's mean over them), side by side: the rliable table's numbers; False if no group has >= 2 seeds."""
    groups = [g for g in summary if g["seed_stats"] and TRAIN_ENV in g["seed_stats"]
              and "mean test" in g["seed_stats"]]
    if not groups:
        return False
    tasks = _ordered(g["task"] for g in groups)
    with_dim = len({g["latent_dim"] for g in groups}) > 1
    most = max(sum(g["task"] == task for g in groups) for task in tasks)
    fig = Figure(figsize=(max(8.0, 2 * (0.6 * most + 2.0)), 4.2 * len(tasks)), layout="constrained")
    for row, task in zip(fig.subplots(len(tasks), 2, squeeze=False), tasks):
        members = [g for g in groups if g["task"] == task]
        x = np.arange(len(members))
        for ax, label, title, color in zip(row, (TRAIN_ENV, "mean test"), ("training env", "test envs"),
                                           ("tab:blue", "tab:orange")):
            _interval_bars(ax, x, [g["seed_stats"][label]["iqm"] for g in members], 0.6, color=color)
            ax.set_xticks(x, [f"{_group_label(g, False, with_dim)} (n={len(g['seeds'])})" for g in members],
                          rotation=30, ha="right", fontsize=8)
            ax.set(title=f"{task}: {title}", ylabel=f"IQM return, {CONFIDENCE:.0%} CI over seeds")
    _save(fig, path)
    return True


def plot_test_envs(summary: list[dict[str, Any]], path: Path) -> bool:
    """Per task, each test env's mean return per variant with its 95% CI over seeds (over episodes for one seed,
    labelled); False if no task has a test env."""
    panels = []
    for task in _ordered(g["task"] for g in summary):
        groups = [g for g in summary if g["task"] == task]
        tests = _task_envs(groups)[1]
        if tests:
            panels.append((task, groups, tests))
    if not panels:
        return False
    bars = max(len(groups) * len(tests) for _, groups, tests in panels)
    fig = Figure(figsize=(0.3 * bars + 6.0, 4.0 * len(panels)), layout="constrained")  # 4 in for the legend
    for ax, (task, groups, tests) in zip(fig.subplots(len(panels), 1, squeeze=False)[:, 0], panels):
        with_dim = len({g["latent_dim"] for g in groups}) > 1
        _grouped_bars(ax, tests, [(f"{_group_label(g, False, with_dim)} ({_interval_source(g)})",
                                   g["env_intervals"]) for g in groups])
        ax.set(title=f"{task}: test envs", ylabel=f"mean return, {CONFIDENCE:.0%} CI")
    _save(fig, path)
    return True


def plot_js(summary: list[dict[str, Any]], path: Path) -> bool:
    """Per task, the latent JS divergence per variant × env with 95% CIs over seeds: the rollout measure (real
    training latents) and the paired one, in two panels (those recorded); False if no run has either."""
    measures = [(measure, name, title) for measure, name, title in (("js", "real", "rollout: visual + state shift"),
                                                                    ("paired", PAIRED_JS, "paired: visual shift alone"))
                if any(g[measure].get(name) for g in summary)]
    if not measures:
        return False
    tasks = _ordered(g["task"] for g in summary if any(g[measure].get(name) for measure, name, _ in measures))
    # Constrained: room for each panel's legend beside it, clear of the next panel.
    fig = Figure(figsize=(7.5 * len(measures), 4.0 * len(tasks)), layout="constrained")
    # One JS scale per task: the paired bar beside the rollout bar shows how much of the shift is visual.
    for row, task in zip(fig.subplots(len(tasks), len(measures), squeeze=False, sharey="row"), tasks):
        groups = [g for g in summary if g["task"] == task]
        with_dim = len({g["latent_dim"] for g in groups}) > 1
        for ax, (measure, name, title) in zip(row, measures):
            series = [(f"{_group_label(g, False, with_dim)} (n={max(map(len, g[measure][name].values()))})",
                       g[f"{measure}_intervals"][name]) for g in groups if g[measure].get(name)]
            _grouped_bars(ax, _ordered(env for _, intervals in series for env in intervals), series)
            ax.set(title=f"{task}: {title}", ylabel=f"JS divergence (bits), {CONFIDENCE:.0%} CI over seeds")
    _save(fig, path)
    return True


# Plots a report writes only when its runs have what they show.
OPTIONAL_PLOTS = {"latent_dim.png": plot_latent_dim, "js_heatmap.png": plot_js_heatmap,
                  "aggregate.png": plot_aggregate, "test_envs.png": plot_test_envs, "js.png": plot_js}


def build_report(path: str | Path, out_dir: str | Path | None = None, reps: int | None = None) -> dict[str, Any]:
    """Collect the runs under `path`; write results.csv, report.md and plots to `out_dir` (default: path).

    `reps`: bootstrap resamples per interval (default REPS). The result's "answer" holds `answer_lines`, the
    lines to print at the end of a comparison."""
    path = Path(path)
    runs = collect_runs(path)
    out = Path(out_dir) if out_dir is not None else path
    out.mkdir(parents=True, exist_ok=True)
    reps = REPS if reps is None else reps
    summary = summarize_runs(runs)
    add_intervals(summary, reps)
    answer = answer_lines(summary)
    rows = results_rows(runs, path)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "results.csv", buffer.getvalue())
    markdown = render_markdown(runs, summary, path, reps, answer)
    atomic_write_text(out / "report.md", markdown)
    plot_returns(summary, out / "returns.png")
    written = [out / "results.csv", out / "report.md", out / "returns.png"]
    for name, plot in OPTIONAL_PLOTS.items():
        if plot(summary, out / name):
            written.append(out / name)
        else:
            # A plot left from an earlier report would contradict this one's report.md.
            (out / name).unlink(missing_ok=True)
    return {"runs": runs, "summary": summary, "rows": rows, "markdown": markdown, "files": written,
            "answer": answer}


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: build the report and print the markdown."""
    parser = argparse.ArgumentParser(prog="python -m synthvis.evaluation.report", description=__doc__.split("\n")[0])
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
