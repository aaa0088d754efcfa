"""The report's intervals on fabricated runs: JS over seeds, the paired measure, one seed's episodes, answer lines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from synthvis.evaluation.report import EPISODE_CAVEAT, PAIRED, ROLLOUT, build_report, column_intervals
from synthvis.metrics.generalization import gap_closed

# few_resamples is test_report's autouse fixture: imported, it applies here too.
from tests.test_report import few_resamples, make_multirun, table_row, write_run  # noqa: F401


def add_paired(run_dir: Path, seed: int) -> None:
    """Rewrite a run's js.json in the current format: `binning` instead of value_range, and a paired section."""
    js = json.loads((run_dir / "js.json").read_text())
    del js["value_range"]
    js["binning"] = "quantile"
    js["paired"] = {"states": 256, "bins": 20, "binning": "quantile",
                    "divergence": {"fixed_easy": 0.05 + 0.01 * seed, "hard": 0.1},
                    "latent_distance": {"fixed_easy": 1.0, "hard": 2.0 + seed}, "latent_distance_scale": 4.0}
    (run_dir / "js.json").write_text(json.dumps(js))


def noisy(episodes: int, std: float):
    """Episode returns: `episodes` normal draws around an env's mean return, seeded by that mean."""
    return lambda mean: list(mean + np.random.default_rng(int(mean)).normal(0.0, std, episodes))


def one_seed_comparison(root: Path, episodes: int, std: float) -> dict:
    """baseline and aug_upsampled, seed 0 each (the quickstart's comparison), reported."""
    for variant in ("baseline", "aug_upsampled"):
        write_run(root / variant, variant, 0, 50, episodes=noisy(episodes, std))
    return build_report(root)


def group(result: dict, variant: str, latent_dim: int = 50) -> dict:
    """The summary entry of a variant and latent_dim."""
    return next(g for g in result["summary"] if g["variant"] == variant and g["latent_dim"] == latent_dim)


def test_js_interval_contains_the_mean_and_collapses_for_identical_seeds(tmp_path):
    result = build_report(make_multirun(tmp_path, variants=("baseline", "aug_upsampled")))
    real = group(result, "aug_upsampled", 32)["js_intervals"]["real"]
    point, low, high = real["fixed_easy"]  # seeds 0.2 and 0.3
    assert point == pytest.approx(0.25) and low < point < high and (low, high) == pytest.approx((0.2, 0.3))
    assert real["hard"] == pytest.approx((0.5, 0.5, 0.5))  # both seeds 0.5: nothing to resample
    assert column_intervals({"a": [0.3] * 4, "b": [0.1, 0.2]}, 200)["a"] == pytest.approx((0.3, 0.3, 0.3))
    markdown = result["markdown"]
    assert f"**{ROLLOUT}**" in markdown and PAIRED not in markdown
    assert "With fewer than 5 seeds (2 here) these intervals are rough" in markdown


def test_paired_measure_gets_its_own_table_and_panel(tmp_path):
    sweep = make_multirun(tmp_path, variants=("upsampled", "aug_upsampled"))
    for job in sweep.glob("*variant=aug_upsampled"):
        add_paired(job, int(job.name.split("seed=")[1][0]))
    result = build_report(sweep)
    markdown = result["markdown"]
    paired = markdown.split(f"**{PAIRED}**")[1]
    assert "the same 256 training-env states" in paired and "(20 quantile bins per dimension)" in paired
    assert table_row(paired, "aug_upsampled", "32", "JS (bits)") == [
        "aug_upsampled", "32", "JS (bits)", "2", "0.055 [0.050, 0.060]", "0.100 [0.100, 0.100]"]
    # Distances 1 and 2 + seed over the scale 4.
    assert table_row(paired, "aug_upsampled", "64", "latent distance ÷ scale")[4:] == [
        "0.250 [0.250, 0.250]", "0.625 [0.500, 0.750]"]
    assert "| upsampled |" not in paired  # its runs recorded no paired section
    # The older js.json files (upsampled) and the new ones report side by side, their binning said once each.
    assert "(100 quantile bins per dimension; 100 bins over [-1, 1])" in markdown
    assert table_row(markdown, "upsampled", "32", "real", "2")[4] == "0.250 [0.200, 0.300]"
    assert (sweep / "js.png").stat().st_size > 10_000


def test_paired_section_alone_with_a_skipped_env_and_no_distance_scale(tmp_path):
    write_run(tmp_path / "run", "baseline", 0, 50)
    # No rollout observations: js.json holds the paired section alone; one clean state gives no distance scale.
    paired = {"states": 1, "bins": 20, "binning": "width", "divergence": {"fixed_easy": 0.05},
              "latent_distance": {"fixed_easy": 1.0}, "latent_distance_scale": float("nan"),
              "skipped": {"hard": "the env cannot be put in a training-env state"}}
    (tmp_path / "run" / "js.json").write_text(json.dumps({"paired": paired}))
    result = build_report(tmp_path / "run")
    markdown = result["markdown"]
    assert ROLLOUT not in markdown and "(20 equal-width bins per dimension)" in markdown
    assert "Skipped: hard (the env cannot be put in a training-env state)." in markdown
    assert table_row(markdown, "baseline", "50", "JS (bits)", "1") == ["baseline", "50", "JS (bits)", "1", "0.050"]
    assert "latent distance ÷ scale |" not in markdown
    assert "js.png" in [path.name for path in result["files"]]


def test_one_seed_gets_intervals_over_its_episodes_that_shrink_with_more_episodes(tmp_path):
    widths = []
    for episodes in (8, 128):
        result = one_seed_comparison(tmp_path / str(episodes), episodes, std=20.0)
        method, baseline = (group(result, variant)["episode_stats"] for variant in ("aug_upsampled", "baseline"))
        train = method["matrix"][:, 0]
        point, low, high = method["train"]
        assert point == pytest.approx(train.mean()) and low < point < high
        # A percentile bootstrap by hand: the same interval up to resampling noise.
        rng = np.random.default_rng(0)
        means = train[rng.integers(0, len(train), size=(4000, len(train)))].mean(axis=1)
        assert (low, high) == pytest.approx(tuple(np.percentile(means, [2.5, 97.5])), abs=0.25 * (high - low))
        assert method["mean test"][0] == pytest.approx(method["matrix"][:, 1:].mean())
        g = group(result, "aug_upsampled")["versus"]
        expected = gap_closed(method["matrix"][:, 1:].mean(), baseline["matrix"][:, 1:].mean(),
                              baseline["matrix"][:, 0].mean())
        assert g["g_over"] == "episodes" and g["g"][0] == pytest.approx(expected) and g["g"][1] < expected < g["g"][2]
        widths.append(high - low)
        markdown = result["markdown"]
        assert "rliable)" not in markdown and EPISODE_CAVEAT in markdown.split("### One seed")[1]
        assert table_row(markdown, "aug_upsampled", "50", "0", str(episodes))
        assert (tmp_path / str(episodes) / "test_envs.png").stat().st_size > 10_000
    assert widths[1] < widths[0] / 2.5  # 16x the episodes: about a quarter of the width


def test_answer_lines_over_seeds(tmp_path):
    result = build_report(make_multirun(tmp_path, variants=("baseline", "augmented", "aug_upsampled")))
    answer = result["answer"]
    assert result["markdown"].endswith("\n".join(["## Answer", "", "```", *answer, "```", ""]))
    assert answer[0] == "cheetah_run, latent_dim 32: mean returns with 95% intervals"
    lines = answer[:answer.index("cheetah_run, latent_dim 64: mean returns with 95% intervals")]
    baseline, augmented, method = (next(line for line in lines if line.startswith(f"  {v} "))
                                   for v in ("baseline", "augmented", "aug_upsampled"))
    assert "2 seeds  train 800.0 [790.0, 810.0]  mean test 350.0 [340.0, 360.0]  (CI over seeds)" in baseline
    assert "G vs" not in baseline
    assert "mean test 550.0 [540.0, 560.0]  G vs baseline 0.444 [" in method
    assert "P(> baseline) 1.00 [1.00, 1.00]" in method and "2 seeds" in augmented
    assert lines[-1] == ("  Against the baseline, the 95% intervals resolve augmented better, aug_upsampled better "
                         "(with 2 seeds, fewer than 5: provisional).")


def test_answer_lines_for_one_seed_per_variant(tmp_path):
    answer = one_seed_comparison(tmp_path / "clear", 10, std=20.0)["answer"]
    assert answer[0] == "cheetah_run: mean returns with 95% intervals"
    assert all("1 seed  train" in line and "(CI over episodes of one seed)" in line for line in answer[1:3])
    assert "G vs baseline 0.4" in answer[2] and "P(>" not in answer[2]
    assert answer[3] == f"  Against the baseline, the 95% intervals resolve aug_upsampled better ({EPISODE_CAVEAT})."
    # Episodes this noisy leave the 200 points between the variants' test returns unresolved.
    vague = one_seed_comparison(tmp_path / "vague", 4, std=600.0)["answer"]
    assert vague[3] == (f"  Against the baseline, the 95% intervals leave aug_upsampled unresolved "
                        f"({EPISODE_CAVEAT}).")


def test_answer_lines_when_seed_counts_differ(tmp_path):
    for seed in (0, 1):
        write_run(tmp_path / f"baseline_{seed}", "baseline", seed, 50)
    write_run(tmp_path / "method", "aug_upsampled", 0, 50)
    answer = build_report(tmp_path)["answer"]
    assert "2 seeds" in answer[1] and "(CI over seeds)" in answer[1]
    assert "G vs baseline 0.422 (no CI: seed counts differ)" in answer[2] and "over episodes of one seed" in answer[2]
    assert answer[3] == "  Against the baseline, no interval compares aug_upsampled with it."
    assert build_report(tmp_path / "method")["answer"][2] == (
        "  No baseline run: nothing to compare the variants against (add variant=baseline).")
