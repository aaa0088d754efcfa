"""Sample-quality distance between two sets of rows: the mean over dimensions of the 1-D Wasserstein-1 distance."""

from __future__ import annotations

import numpy as np


def per_dimension_wasserstein(a: np.ndarray, b: np.ndarray, quantiles: int = 1000) -> np.ndarray:
    """W1 between the marginals of a (N, D) and b (M, D), per dimension: the mean |quantile gap| (exact as
    quantiles -> inf; 1-D W1 is the L1 distance between quantile functions)."""
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need (N, D) and (M, D) arrays with the same D, got {a.shape} and {b.shape}")
    levels = (np.arange(quantiles) + 0.5) / quantiles
    return np.abs(np.quantile(a, levels, axis=0) - np.quantile(b, levels, axis=0)).mean(axis=0)
