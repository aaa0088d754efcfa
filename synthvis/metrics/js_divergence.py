"""Jensen-Shannon divergence between the latents of a training set and of a test environment.

The estimator (the paper gives no procedure):

1. Per latent dimension d, histogram both sets on the same bins: `bins` equal-width bins over a shared range
   [lo_d, hi_d] (a fixed `value_range` for every dimension, or the pooled min/max of both sets per dimension).
   Values outside the range are counted in the edge bins, so no sample is dropped; the last bin is closed.
2. Normalise the counts to p (train) and q (test), m = ½(p + q), and
   JS_d = ½ KL(p‖m) + ½ KL(q‖m) with log base 2, so 0 <= JS_d <= 1 (0: identical histograms, 1: disjoint
   supports). Empty bins contribute nothing (0·log 0 = 0), and m > 0 wherever p > 0 or q > 0.
3. Report the mean of JS_d over dimensions (or every JS_d).

This is the divergence, not scipy's `jensenshannon`, which returns the distance √JS. A histogram estimate
depends on `bins` and the range, so report them with the numbers (report.py's js.json carries both).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric


def histogram_counts(x: Tensor, lo: Tensor, hi: Tensor, bins: int) -> Tensor:
    """Per-dimension counts (D, bins) of the rows of x (N, D) on `bins` equal bins over [lo_d, hi_d]."""
    # A constant dimension (hi == lo) has zero width: its values go to the first bin instead of dividing by 0.
    span = torch.where(hi > lo, hi - lo, torch.ones_like(hi))
    index = ((x.double() - lo) / span * bins).floor().clamp(0, bins - 1).long()
    flat = index + torch.arange(x.shape[1], device=x.device) * bins
    counts = torch.zeros(x.shape[1] * bins, dtype=torch.long, device=x.device)
    counts.scatter_add_(0, flat.reshape(-1), torch.ones(flat.numel(), dtype=torch.long, device=x.device))
    return counts.view(x.shape[1], bins)


def js_from_counts(p_counts: Tensor, q_counts: Tensor) -> Tensor:
    """JS divergence in bits per row of two (D, bins) histograms (normalised here)."""
    p = p_counts.double() / p_counts.sum(-1, keepdim=True)
    q = q_counts.double() / q_counts.sum(-1, keepdim=True)
    m = 0.5 * (p + q)

    def kl_to_m(a: Tensor) -> Tensor:
        # 0·log 0 = 0: the placeholder 1s keep log2 finite where a == 0, and those terms are zeroed.
        positive = a > 0
        ratio = torch.where(positive, a, torch.ones_like(a)) / torch.where(positive, m, torch.ones_like(m))
        return torch.where(positive, a * torch.log2(ratio), torch.zeros_like(a)).sum(-1)

    # Rounding can leave values a hair outside [0, 1].
    return (0.5 * kl_to_m(p) + 0.5 * kl_to_m(q)).clamp(0.0, 1.0)


def _check_pair(a: Any, b: Any) -> tuple[Tensor, Tensor]:
    a, b = (torch.as_tensor(np.asarray(x), dtype=torch.float64) for x in (a, b))
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or not len(a) or not len(b):
        raise ValueError(f"need non-empty (N, D) and (M, D) arrays with the same D, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    return a, b


def per_dimension_js(a: Any, b: Any, bins: int = 100,
                     value_range: tuple[float, float] | None = None) -> np.ndarray:
    """JS divergence in bits per dimension between the rows of a (N, D) and b (M, D) (module docstring)."""
    a, b = _check_pair(a, b)
    if value_range is None:
        pooled = torch.cat([a, b])
        lo, hi = pooled.min(0).values, pooled.max(0).values
    else:
        lo, hi = (torch.full((a.shape[1],), float(v), dtype=torch.float64) for v in value_range)
    return js_from_counts(histogram_counts(a, lo, hi, bins), histogram_counts(b, lo, hi, bins)).numpy()


def js_divergence(a: Any, b: Any, bins: int = 100, value_range: tuple[float, float] | None = None) -> float:
    """Mean over dimensions of the JS divergence in bits; value_range None = per-dimension pooled min/max."""
    return float(per_dimension_js(a, b, bins, value_range).mean())


def js_matrix(train_sets: Mapping[str, Any], test_sets: Mapping[str, Any], bins: int = 100,
              value_range: tuple[float, float] | None = None) -> dict[str, dict[str, float]]:
    """JS divergence of every training set against every test env: {train_set: {test_env: bits}}."""
    return {train: {test: js_divergence(a, b, bins, value_range) for test, b in test_sets.items()}
            for train, a in train_sets.items()}


def _agreed_range(stacked: Tensor) -> Tensor:
    """Reduce k processes' bin edges (k, 2, D): they must agree, as counts on other bins cannot be summed."""
    known = stacked[~stacked.flatten(1).isnan().any(1)]
    if len(known) and not (known == known[0]).all():
        raise RuntimeError("JensenShannonDivergence states have different bin ranges (value_range=None "
                           "takes each process's first batch): pass a fixed value_range to merge or sync "
                           "across ranks")
    return known[0] if len(known) else stacked[0]


class JensenShannonDivergence(Metric):
    """Histogram JS divergence in bits between accumulated train and test latents, averaged over dimensions.

    The state is two (D, bins) count tensors summed across processes (`dist_reduce_fx="sum"`), so DDP ranks
    and `merge_state` give exactly the single-process result. The bins must therefore be known before the
    first count: `value_range=(lo, hi)` fixes them for every dimension (the default (-1, 1) fits tanh trunk
    features); `value_range=None` takes the per-dimension pooled min/max of the first update (give it both sets;
    values outside the range later go to the edge bins), which is per process: merging or syncing states whose
    ranges differ raises.
    `reduction="none"` makes `compute()` return the per-dimension values (D,) instead of their mean.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, num_dims: int, bins: int = 100, value_range: tuple[float, float] | None = (-1.0, 1.0),
                 reduction: Literal["mean", "none"] = "mean", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if num_dims < 1 or bins < 1:
            raise ValueError(f"num_dims and bins must be >= 1, got {num_dims}, {bins}")
        if value_range is not None and not value_range[0] < value_range[1]:
            raise ValueError(f"value_range must be (lo, hi) with lo < hi, got {value_range}")
        if reduction not in ("mean", "none"):
            raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
        self.num_dims, self.bins, self.reduction = num_dims, bins, reduction
        edges = torch.full((2, num_dims), float("nan"), dtype=torch.float64)
        if value_range is not None:
            edges[0], edges[1] = value_range
        # Row 0 = lo, row 1 = hi per dimension; NaN until the first update when value_range is None.
        self.add_state("edges", edges, dist_reduce_fx=_agreed_range)
        self.add_state("train_counts", torch.zeros(num_dims, bins, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("test_counts", torch.zeros(num_dims, bins, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, train_latents: Tensor | None = None, test_latents: Tensor | None = None) -> None:
        """Add rows (N, D) of training-set latents and/or (M, D) of test-env latents to the histograms."""
        rows = {name: x.detach().double() for name, x in (("train_counts", train_latents),
                                                           ("test_counts", test_latents)) if x is not None}
        for x in rows.values():
            if x.ndim != 2 or x.shape[1] != self.num_dims:
                raise ValueError(f"expected (N, {self.num_dims}) latents, got shape {tuple(x.shape)}")
        pooled = torch.cat(list(rows.values())) if rows else None
        if pooled is not None and len(pooled) and self.edges.isnan().any():
            self.edges = torch.stack([pooled.min(0).values, pooled.max(0).values])
        for name, x in rows.items():
            counts = histogram_counts(x, self.edges[0], self.edges[1], self.bins)
            setattr(self, name, getattr(self, name) + counts)

    def compute(self) -> Tensor:
        """Mean JS divergence in bits over dimensions (per dimension with reduction="none")."""
        if not self.train_counts.sum() or not self.test_counts.sum():
            raise RuntimeError("JensenShannonDivergence needs both train and test latents before compute()")
        per_dim = js_from_counts(self.train_counts, self.test_counts)
        return per_dim if self.reduction == "none" else per_dim.mean()
