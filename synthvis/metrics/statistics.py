"""Scores over seeds as the field aggregates them: rliable (Agarwal et al. 2021, "Deep Reinforcement Learning at the
Edge of the Statistical Precipice"). IQM and mean with stratified-bootstrap confidence intervals, probability of
improvement, the gap closed G with a bootstrap interval, and per-task means with intervals.

Score matrices are (runs, tasks): one row per seed, one column per task (an env), each entry a run's mean episode
return on that env, so episodes are averaged within a seed first. Every interval is a 95% percentile interval of
`reps` stratified bootstrap resamples (runs resampled within each task), seeded, so a report is reproducible.
The rows may also be one run's evaluation episodes: the intervals then measure evaluation noise alone.
"""

from __future__ import annotations

import warnings

import numpy as np
from rliable import library as rly
from rliable import metrics as rm

from synthvis.metrics.generalization import gap_closed

CONFIDENCE = 0.95
REPS = 2000

Interval = tuple[float, float, float]  # point estimate, lower bound, upper bound


def _interval(scores: np.ndarray | tuple[np.ndarray, ...], statistic, reps: int, seed: int) -> list[Interval]:
    """The statistic's point estimates and 95% CIs; a tuple of matrices is resampled independently.

    rliable's independent (tuple) bootstrap draws from NumPy's global RNG rather than its `random_state`, so the
    global state is seeded here and put back afterwards; arch's warning about `random_state` is rliable's to fix.
    """
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "random_state is deprecated", FutureWarning)
            point, bounds = rly.get_interval_estimates({"x": scores}, lambda *s: np.atleast_1d(statistic(*s)),
                                                       reps=reps, confidence_interval_size=CONFIDENCE,
                                                       random_state=np.random.RandomState(seed))
    finally:
        np.random.set_state(state)
    return [(float(p), float(lo), float(hi)) for p, lo, hi in zip(point["x"], *bounds["x"], strict=True)]


def aggregate(scores: np.ndarray, reps: int = REPS, seed: int = 0) -> dict[str, Interval]:
    """{'iqm', 'mean'} of a (runs, tasks) matrix over all runs and tasks, each with its 95% CI."""
    iqm, mean = _interval(np.asarray(scores, float),
                          lambda s: np.array([rm.aggregate_iqm(s), rm.aggregate_mean(s)]), reps, seed)
    return {"iqm": iqm, "mean": mean}


def mean_intervals(scores: np.ndarray, reps: int = REPS, seed: int = 0) -> list[Interval]:
    """Each column's mean over the rows of a (runs, tasks) matrix, with its 95% CI (rows resampled per column)."""
    return _interval(np.asarray(scores, float), lambda s: s.mean(axis=0), reps, seed)


def improvement_probability(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y) + P(X = Y) / 2 per task over all run pairs, averaged over tasks: rliable's
    `metrics.probability_of_improvement` (the Mann-Whitney U / (n m)) without a scipy call per task, which made
    a bootstrap of it take seconds."""
    x, y = x[:, None, :], y[None, :, :]
    return float(((x > y) + 0.5 * (x == y)).mean(axis=(0, 1)).mean())


def probability_of_improvement(x: np.ndarray, y: np.ndarray, reps: int = REPS, seed: int = 0) -> Interval:
    """P(X > Y) of two (runs, tasks) matrices, the per-task probabilities averaged over tasks, with its 95% CI."""
    return _interval((np.asarray(x, float), np.asarray(y, float)), improvement_probability, reps, seed)[0]


def gap_closed_interval(target: np.ndarray, baseline: np.ndarray, reps: int = REPS, seed: int = 0) -> Interval:
    """G = (T_test - B_test) / (B_train - B_test) with its 95% CI, from (runs, 1 + tests) matrices whose first
    column is the training env: seed-averaged returns, test returns averaged over the test envs."""
    def g(t: np.ndarray, b: np.ndarray) -> float:
        return gap_closed(float(t[:, 1:].mean()), float(b[:, 1:].mean()), float(b[:, 0].mean()))

    return _interval((np.asarray(target, float), np.asarray(baseline, float)), g, reps, seed)[0]


def resolves(interval: Interval, null: float) -> bool:
    """Whether a 95% interval excludes `null` (0.5 for a probability of improvement, 0 for G)."""
    return not interval[1] <= null <= interval[2]
