"""Aggregation over seeds (rliable) against hand-computed values on fabricated results."""

from __future__ import annotations

import numpy as np
import pytest
from rliable import metrics as rm

from synthvis.metrics.statistics import (
    aggregate,
    gap_closed_interval,
    improvement_probability,
    mean_intervals,
    probability_of_improvement,
    resolves,
)


def test_iqm_and_mean_match_hand_computed_values():
    scores = np.arange(1.0, 9.0)[:, None]  # 8 runs of one task: the IQM averages the middle half, 3..6
    result = aggregate(scores, reps=200)
    assert result["iqm"][0] == pytest.approx(4.5) and result["mean"][0] == pytest.approx(4.5)
    skewed = np.array([[0.0], [1.0], [1.0], [100.0]])  # IQM drops the outlier; the mean does not
    result = aggregate(skewed, reps=200)
    assert result["iqm"][0] == pytest.approx(1.0) and result["mean"][0] == pytest.approx(25.5)
    two_tasks = np.array([[1.0, 10.0], [2.0, 20.0]])  # over all runs and tasks: middle half of 1, 2, 10, 20
    assert aggregate(two_tasks, reps=200)["iqm"][0] == pytest.approx(6.0)


def test_intervals_contain_the_truth_of_a_known_distribution_and_shrink_with_runs():
    rng = np.random.default_rng(0)
    widths = []
    for runs in (10, 160):
        point, low, high = aggregate(rng.normal(3.0, 1.0, size=(runs, 1)), reps=2000)["mean"]
        assert low < 3.0 < high and low <= point <= high
        widths.append(high - low)
    assert 2 * 1.96 / np.sqrt(10) * 0.6 < widths[0] < 2 * 1.96 / np.sqrt(10) * 1.6  # ~ 2 * 1.96 * sigma / sqrt(n)
    assert widths[1] < widths[0] / 2.5  # 16x the runs: about a quarter of the width


def test_probability_of_improvement_is_half_for_identical_and_one_for_dominating_variants():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 3))
    same = probability_of_improvement(x, x.copy(), reps=500)
    assert same[0] == 0.5 and not resolves(same, 0.5)
    better = probability_of_improvement(x + 100, x, reps=500)
    assert better == (1.0, 1.0, 1.0) and resolves(better, 0.5)
    assert probability_of_improvement(x, x + 100, reps=500)[0] == 0.0


def test_gap_closed_interval_and_reproducibility():
    baseline = np.array([[100.0, 0.0, 0.0], [100.0, 0.0, 0.0], [100.0, 0.0, 0.0]])  # train, then two test envs
    target = np.array([[90.0, 50.0, 50.0]] * 3)
    assert gap_closed_interval(target, baseline, reps=200) == pytest.approx((0.5, 0.5, 0.5))
    noisy = target + np.random.default_rng(2).normal(0, 10, size=target.shape)
    first = gap_closed_interval(noisy, baseline, reps=500, seed=3)
    assert first == gap_closed_interval(noisy, baseline, reps=500, seed=3)  # seeded bootstrap
    assert first[1] <= first[0] <= first[2] and resolves(first, 0.0)


def test_improvement_probability_is_rliables_with_ties():
    rng = np.random.default_rng(4)
    for runs_x, runs_y in ((5, 5), (3, 7)):
        x, y = rng.integers(0, 4, size=(runs_x, 3)).astype(float), rng.integers(0, 4, size=(runs_y, 3)).astype(float)
        assert improvement_probability(x, y) == pytest.approx(rm.probability_of_improvement(x, y))


def test_mean_intervals_per_column_match_the_aggregate_mean_and_collapse_for_constant_columns():
    scores = np.column_stack([np.random.default_rng(5).normal(2.0, 1.0, size=8), np.full(8, 0.3)])
    varying, constant = mean_intervals(scores, reps=500)
    assert varying[0] == pytest.approx(scores[:, 0].mean()) and varying[1] < varying[0] < varying[2]
    assert constant == pytest.approx((0.3, 0.3, 0.3))
    # One column: the same resamples as aggregate's mean.
    assert mean_intervals(scores[:, :1], reps=500)[0] == pytest.approx(aggregate(scores[:, :1], reps=500)["mean"])
