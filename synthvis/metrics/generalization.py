"""Zero-shot generalization scores relative to a baseline."""

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


def normalized_score(r: float, r_random: float, r_data: float, eps: float = EPS) -> float:
    """100 (R − R_random)/(R_data − R_random): 0 = uniformly random actions, 100 = the offline dataset's return.

    D4RL's normalized score (Fu et al. 2020), with the dataset's own mean return as the expert reference, so runs
    on different data and envs share one scale. NaN when the references coincide (|R_data − R_random| < eps).
    """
    span = r_data - r_random
    return math.nan if abs(span) < eps else 100.0 * (r - r_random) / span
