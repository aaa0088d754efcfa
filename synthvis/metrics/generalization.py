"""Zero-shot generalization scores relative to a baseline."""

from __future__ import annotations

import math

EPS = 1e-8
# Envs where the baseline keeps less than this fraction of its training-env return have no scale to normalize by.
MIN_BASELINE_FRACTION = 0.01

TRAIN_ENV = "train"  # the name eval.json records the training environment's returns under


def gap_closed(t_test: float, b_test: float, b_train: float, eps: float = EPS) -> float:
    """G = (T_test − B_test)/(B_train − B_test): the part of the baseline's train→test gap the method closes.

    1 means the method reaches the baseline's training-env return on the test env, 0 no better than the
    baseline, < 0 worse. NaN when the baseline has no gap (|B_train − B_test| < eps): the ratio is then
    undefined (or explodes on noise), so report the raw returns instead.
    """
    gap = b_train - b_test
    return math.nan if abs(gap) < eps else (t_test - b_test) / gap


def normalized_to_baseline(t: float, b: float, eps: float = EPS) -> float:
    """Return t as a multiple of the baseline's return b on the same env; NaN when |b| < eps (no scale)."""
    return math.nan if abs(b) < eps else t / b


def mean_normalized_return(t: dict[str, float], b: dict[str, float], b_train: float,
                           min_fraction: float = MIN_BASELINE_FRACTION) -> float:
    """Per-env t/b averaged over the test envs where the baseline keeps at least `min_fraction` of its
    training-env return b_train: below that, b is noise (a baseline scoring 0.001 would turn 1 into 1000).
    NaN when no env qualifies."""
    floor = max(min_fraction * abs(b_train), EPS)
    ratios = [normalized_to_baseline(t[env], b[env]) for env in t if abs(b[env]) >= floor]
    return sum(ratios) / len(ratios) if ratios else math.nan
