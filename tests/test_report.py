"""The results report on a fabricated multirun folder with known returns."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synthvis.evaluation.report import build_report, collect_runs, main, protocol_label

VARIANTS = ("baseline", "augmented", "upsampled", "aug_upsampled")
TRAIN = {"baseline": 800.0, "augmented": 780.0, "upsampled": 790.0, "aug_upsampled": 770.0}
FIXED_EASY = {"baseline": 400.0, "augmented": 500.0, "upsampled": 450.0, "aug_upsampled": 600.0}
EPISODES = 4
DISTRACTION = {"kinds": ["color", "camera", "background"], "background_source": "procedural",
               "background_path": None}


@pytest.fixture(autouse=True)
def few_resamples(monkeypatch):
    """200 bootstrap resamples per interval: enough for these exact, fabricated results, and fast."""
    monkeypatch.setattr("synthvis.evaluation.report.REPS", 200)


def run_returns(variant: str, seed: int, latent_dim: int) -> dict[str, float]:
    """Known returns: seeds 0/1 sit 10 below/above the variant's value; hard = fixed_easy − 100; d=64 adds 50
    on the test envs only."""
    offset = 10.0 if seed else -10.0
    easy = FIXED_EASY[variant] + (50.0 if latent_dim == 64 else 0.0) + offset
    return {"train": TRAIN[variant] + offset, "fixed_easy": easy, "hard": easy - 100.0}


def two_values(mean: float) -> list[float]:
    """EPISODES episode returns alternating 1 below and 1 above `mean`: mean `mean`, std 1."""
    return [mean - 1, mean + 1] * (EPISODES // 2)


def write_run(run_dir: Path, variant: str | None, seed: int, latent_dim: int,
              episodes: Callable[[float], list[float]] = two_values) -> None:
    """A run folder as the pipeline leaves it: config.yaml, eval.json (+ js.json for upsampled variants, in the
    older format with value_range); `episodes` turns an env's mean return into its episode returns."""
    run_dir.mkdir(parents=True)
    variant_line = f"variant: {variant}\n" if variant else ""
    (run_dir / "config.yaml").write_text(
        f"seed: {seed}\nlatent_dim: {latent_dim}\n{variant_line}env:\n  domain: cheetah\n  task: run\n"
        f"eval:\n  num_episodes: {EPISODES}\n  seed: 100000\n")
    (run_dir / ".hydra").mkdir()
    (run_dir / ".hydra" / "config.yaml").write_text("seed: ${oc.env:NOPE}\n")
    returns = {name: episodes(mean) for name, mean in run_returns(variant or "baseline", seed, latent_dim).items()}
    envs = {name: {"return_mean": float(np.mean(r)), "return_std": float(np.std(r)), "returns": r}
            for name, r in returns.items()}
    test_envs = {"train": {}, "fixed_easy": {"distraction": {"mode": "fixed_easy", **DISTRACTION}},
                 "hard": {"distraction": {"mode": "hard", **DISTRACTION}}}
    protocol = {"episodes": len(returns["train"]), "seed": 100000, "deterministic": True, "epsilon": 0.0,
                "test_envs": test_envs}
    references = {"random": {"return_mean": 5.0 + seed, "return_std": 1.0, "episodes": EPISODES},
                  "dataset": {"return_mean": 900.0, "episodes": 30}}
    (run_dir / "eval.json").write_text(json.dumps({"step": 1000, "protocol": protocol, "envs": envs,
                                                   "weights": "agent.pt", "references": references}))
    # The agent stage's periodic evaluation: not a run of its own.
    (run_dir / "agent").mkdir()
    (run_dir / "agent" / "eval.json").write_text(json.dumps({"step": 500, "protocol": protocol,
                                                             "envs": envs}))
    if variant in ("upsampled", "aug_upsampled"):
        divergence = {"real": {"fixed_easy": 0.2 + 0.1 * seed, "hard": 0.5},
                      "real+synthetic": {"fixed_easy": 0.1, "hard": 0.3 + 0.1 * seed}}
        (run_dir / "js.json").write_text(json.dumps({"bins": 100, "value_range": [-1.0, 1.0],
                                                     "divergence": divergence}))


def make_multirun(root: Path, variants=VARIANTS) -> Path:
    """4 variants × 2 seeds × 2 latent dims as one Hydra multirun folder."""
    sweep = root / "multirun"
    sweep.mkdir(parents=True)
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    jobs = [(v, s, d) for v in variants for d in (32, 64) for s in (0, 1)]
    for num, (variant, seed, latent_dim) in enumerate(jobs):
        job = sweep / f"{num}_latent_dim={latent_dim},seed={seed},variant={variant}"
        write_run(job, variant, seed, latent_dim)
    return sweep


def table_row(markdown: str, *cells: str) -> list[str]:
    """The cells of the first markdown table row starting with `cells`."""
    prefix = "| " + " | ".join(cells) + " |"
    line = next(line for line in markdown.splitlines() if line.startswith(prefix))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_collects_run_directories_only(tmp_path):
    sweep = make_multirun(tmp_path)
    runs = collect_runs(sweep)
    assert len(runs) == 16
    assert {run["variant"] for run in runs} == set(VARIANTS)
    assert all(run["run_dir"].parent == sweep and run["task"] == "cheetah_run" for run in runs)
    single = collect_runs(runs[0]["run_dir"])
    assert len(single) == 1 and single[0]["run_dir"] == runs[0]["run_dir"]


def test_report_csv_markdown_and_plots(tmp_path):
    sweep = make_multirun(tmp_path)
    out = tmp_path / "report"
    result = build_report(sweep, out)
    assert sorted(p.name for p in out.iterdir()) == ["aggregate.png", "js.png", "js_heatmap.png", "latent_dim.png",
                                                    "report.md", "results.csv", "returns.png", "test_envs.png"]

    with open(out / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 16 * 3
    row = next(r for r in rows if r["variant"] == "aug_upsampled" and r["seed"] == "1"
               and r["latent_dim"] == "64" and r["env"] == "hard")
    assert float(row["return_mean"]) == 600.0 + 50 + 10 - 100
    assert row["return_std"] == "1.0" and row["episodes"] == str(EPISODES)
    assert row["protocol"] == "DCS-style (procedural)" and row["task"] == "cheetah_run"
    assert next(r for r in rows if r["env"] == "train")["protocol"] == "no distractions"

    markdown = (out / "report.md").read_text()
    assert markdown == result["markdown"]
    assert ("Protocol: 4 episodes per env per run, deterministic actions, eval seed 100000; "
            "training seeds 0, 1") in markdown
    assert "fixed_easy, hard: DCS-style (procedural)" in markdown
    assert ("References on the training env (mean over runs): uniformly random actions 5.5; "
            "the offline dataset's episodes 900.0.") in markdown
    # Seeds sit ±10 around the variant's value: mean ± population std = value ± 10.
    assert table_row(markdown, "baseline", "32") == ["baseline", "32", "2", "800.0 ± 10.0", "400.0 ± 10.0",
                                                     "300.0 ± 10.0", "350.0 ± 10.0"]
    assert table_row(markdown, "aug_upsampled", "64") == ["aug_upsampled", "64", "2", "770.0 ± 10.0",
                                                          "650.0 ± 10.0", "550.0 ± 10.0", "600.0 ± 10.0"]
    # G against the baseline with the same latent_dim, from seed-averaged returns:
    # d=32: B_train 800, B_test (400 + 300)/2 = 350; aug_upsampled T_test (600 + 500)/2 = 550 -> 200/450.
    # d=64: B_test 400; T_test 600 -> 200/400.
    assert table_row(markdown, "aug_upsampled", "32", "0.444") == ["aug_upsampled", "32", "0.444"]
    assert table_row(markdown, "aug_upsampled", "64", "0.500")
    assert table_row(markdown, "augmented", "32", f"{100 / 450:.3f}")
    assert table_row(markdown, "upsampled", "64", f"{50 / 400:.3f}")
    assert table_row(markdown, "baseline", "32", "0.000") == ["baseline", "32", "0.000"]
    # Normalized score per run from its own references (random 5 + seed, data 900): seed 0 on train 760 ->
    # 100 * 755 / 895, seed 1 780 -> 100 * 774 / 894; mean ± population std over the two.
    normalized = markdown.split("### Normalized score")[1]
    scores = [100 * 755 / 895, 100 * 774 / 894]
    expected = f"{sum(scores) / 2:.1f} ± {abs(scores[0] - scores[1]) / 2:.1f}"
    assert table_row(normalized, "aug_upsampled", "32", "2")[3] == expected
    assert "0 = random actions, 100 = the data" in normalized
    # JS: mean over the two seeds per train set × test env, with the interval spanning the two seeds.
    assert table_row(markdown, "upsampled", "32", "real", "2") == ["upsampled", "32", "real", "2",
                                                                   "0.250 [0.200, 0.300]", "0.500 [0.500, 0.500]"]
    assert table_row(markdown, "aug_upsampled", "64", "real+synthetic") == [
        "aug_upsampled", "64", "real+synthetic", "2", "0.100 [0.100, 0.100]", "0.350 [0.300, 0.400]"]
    assert "100 bins over [-1, 1]" in markdown  # these js.json files are the older format, with value_range

    for name in ("returns.png", "latent_dim.png", "js_heatmap.png", "aggregate.png", "test_envs.png", "js.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(out / name) as image:
            assert image.format == "PNG" and image.size[0] > 100
    assert not list(out.glob(".*.tmp"))


def test_missing_baseline_shows_n_a_and_single_latent_dim_skips_its_plot(tmp_path):
    sweep = tmp_path / "multirun"
    for num, (variant, seed) in enumerate([("augmented", 0), ("augmented", 1), (None, 0)]):
        write_run(sweep / f"{num}_seed={seed}", variant, seed, 50)
    result = build_report(sweep)
    markdown = result["markdown"]
    assert table_row(markdown, "augmented", "50", "n/a") == ["augmented", "50", "n/a"]
    assert table_row(markdown, "unknown", "50", "1")  # no variant key in an old config
    assert not any((sweep / name).exists() for name in ("latent_dim.png", "js_heatmap.png", "js.png"))
    assert (sweep / "report.md").exists() and (sweep / "returns.png").exists()


def test_cli_prints_the_table(tmp_path, capsys):
    sweep = make_multirun(tmp_path, variants=("baseline", "aug_upsampled"))
    main([str(sweep), "--out", str(tmp_path / "out")])
    printed = capsys.readouterr().out
    assert "| variant | latent_dim | n | train | fixed_easy | hard | mean test |" in printed
    assert "| aug_upsampled | 32 | 2 | 770.0 ± 10.0 | 600.0 ± 10.0 | 500.0 ± 10.0 | 550.0 ± 10.0 |" in printed
    assert (tmp_path / "out" / "report.md").read_text() == printed


def test_empty_folder_is_a_clear_error(tmp_path, capsys):
    empty = tmp_path / "empty_sweep"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no runs under .*empty_sweep"):
        build_report(empty)
    with pytest.raises(SystemExit):
        main([str(empty)])
    assert "empty_sweep" in capsys.readouterr().err


def test_protocol_labels_name_the_distraction_source_or_level_split():
    dmc = {"distraction": {"mode": "hard", **DISTRACTION}}
    assert protocol_label(dmc, procgen=False) == "DCS-style (procedural)"
    assert protocol_label({"distraction": {**DISTRACTION, "background_source": "davis"}}, procgen=False) == (
        "DCS (DAVIS backgrounds)")
    assert protocol_label({}, procgen=False) == "no distractions"
    assert protocol_label({}, procgen=True) == "training levels"
    assert protocol_label({"split": "test", "variant": "monochrome"}, procgen=True) == "unseen levels, monochrome"


def test_report_gives_rliable_intervals_probability_of_improvement_and_g(tmp_path):
    markdown = build_report(make_multirun(tmp_path))["markdown"]
    section = markdown.split("### Over seeds, with intervals (rliable)")[1].split("### Latent JS")[0]
    assert "n = 2 seeds per variant" in section and "95% stratified-bootstrap percentile intervals" in section
    iqm, mean = (section.split(f"{title} return, with intervals:")[1] for title in ("IQM", "Mean"))
    # Seeds 790 and 810 on train: IQM and mean 800 with the interval spanning the two seeds.
    assert table_row(iqm, "variant", "latent_dim", "n")[3:] == ["train", "fixed_easy", "hard", "test envs", "mean test"]
    assert table_row(iqm, "baseline", "32", "2")[3] == table_row(mean, "baseline", "32", "2")[3] == \
        "800.0 [790.0, 810.0]"
    # aug_upsampled beats the baseline on every seed of every test env: P = 1 with a point interval.
    assert table_row(iqm, "aug_upsampled", "32", "2")[-1] == "550.0 [540.0, 560.0]"  # mean test: aggregate.png's
    row = table_row(section.split("Probability of improvement")[1], "aug_upsampled", "32")
    assert row[2:4] == ["1.00 [1.00, 1.00]", "1.00 [1.00, 1.00]"]  # and beats `augmented` (500 < 600) too
    g = float(row[4].split()[0])
    assert g == pytest.approx((550 - 350) / (800 - 350), abs=1e-3)
    assert ("P(aug_upsampled > baseline) on the test envs (latent_dim 32) = 1.00 [1.00, 1.00]; aug_upsampled "
            "better") in section
    assert "P(baseline > augmented) on the test envs (latent_dim 64) = 0.00 [0.00, 0.00]; baseline worse" in section
    assert "fewer than 5 seeds" in section


def test_a_single_seed_gets_no_seed_interval_section(tmp_path):
    write_run(tmp_path / "run", "aug_upsampled", 0, 50)
    markdown = build_report(tmp_path / "run")["markdown"]
    assert "rliable)" not in markdown and "### One seed, with intervals over episodes" in markdown


def test_js_binning_is_said_once():
    from synthvis.evaluation.report import js_binning
    same = [{"bins": 100, "value_range": [-1.0, 1.0]}] * 3
    assert js_binning(same) == "100 bins over [-1, 1]"
    varied = [{"bins": 100, "value_range": [-1.0, 0.999]}, {"bins": 100, "value_range": [-0.996, 1.0]}]
    assert js_binning(varied) == ("100 bins over each run's pooled range of training and test latents "
                                  "(from [-1, 1] at the widest to [-0.996, 0.999])")
    assert js_binning([{"bins": 50, "value_range": None}]) == "50 bins over each dimension's pooled min/max"
    assert js_binning([{"bins": 100, "binning": "quantile"}] * 2) == "100 quantile bins per dimension"
    assert js_binning([{"bins": 100, "binning": "width"}, {"bins": 50, "binning": "width"}]) == (
        "100 / 50 equal-width bins per dimension")
    assert js_binning([{"bins": 100, "binning": "quantile"}, {"bins": 100, "value_range": [-1.0, 1.0]}]) == (
        "100 quantile bins per dimension; 100 bins over [-1, 1]")  # a sweep across the format change
