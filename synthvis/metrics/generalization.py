"""Zero-shot generalization scores relative to a baseline (algorithms.md §4.5)."""

from __future__ import annotations

import math

EPS = 1e-8


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
