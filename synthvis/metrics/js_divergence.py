"""Jensen-Shannon divergence between the latents of a training set and of a test environment.

The estimator (the paper gives no procedure):

1. Per latent dimension d, histogram both sets on the same bins, with edges e_0 <= e_1 <= ... <= e_bins taken
   from the pooled rows of the sets being compared (here both sets; in `synthvis.evaluation.latent_divergence`
   every training set and test env, so all cells of its table share one binning per dimension). `binning`:
   - "quantile" (the default): e_k is the pooled k/bins quantile of dimension d (the nearest-rank order
     statistic), so every bin holds about 1/bins of the pooled rows, whatever the scale or the tail of d
     (equal-frequency binning, as in Dougherty, Kohavi & Sahami 1995, "Supervised and Unsupervised
     Discretization of Continuous Features").
   - "width": `bins` equal-width bins over the pooled min/max of dimension d.
   A fixed `value_range` (lo, hi) gives every dimension the same equal-width bins instead (the Metric's
   default (-1, 1) fits tanh trunk features).
   Bin k is [e_k, e_{k+1}), the last one closed; values outside [e_0, e_bins] go to the edge bins, so no sample
   is dropped. Ties collapse: when one value v holds more than 1/bins of the pooled mass (ReLU's exact zeros),
   several quantile edges equal v; v then gets the point-mass bin {v} of its own (the first of the tied
   edges), values above v go to the next bin of positive width, and the other zero-width bins stay empty in
   both sets, adding nothing (step 2).
2. Normalise the counts to p (train) and q (test), m = ½(p + q), and
   JS_d = ½ KL(p‖m) + ½ KL(q‖m) with log base 2 (Lin 1991, "Divergence Measures Based on the Shannon
   Entropy"), so 0 <= JS_d <= 1 (0: identical histograms, 1: disjoint supports). Empty bins contribute nothing
   (0·log 0 = 0), and m > 0 wherever p > 0 or q > 0.
3. Report the mean of JS_d over dimensions (or every JS_d).

Why quantiles: tanh features live in (-1, 1), but discrete CQL's ReLU features are unbounded, with a point
mass at 0 and a long tail whose largest values are a few outliers, and units of very different scales.
Equal-width bins over a range set by the extremes (one global min/max over every dimension, or less so each
dimension's own) put nearly all of a weak unit's mass in its first bin or two, and JS ≈ 0 whatever happens in
the bulk. Quantile edges put the bins where the mass is, and as they are order statistics of the data, the
counts (hence JS) do not change under any strictly increasing transform of a dimension.

Reading the numbers: this is the divergence, not scipy's `jensenshannon`, which returns the distance √JS. A
histogram estimate depends on `bins` and the binning, so report them with the numbers (js.json carries both).
It is biased upwards: two samples (n_p and n_q rows) of one distribution with K occupied bins give about
(K - 1)(1/n_p + 1/n_q) / (8 ln 2) bits per dimension (a second-order expansion of KL around m), not 0.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric

Binning = Literal["quantile", "width"]
BINNINGS: tuple[str, ...] = ("quantile", "width")


def check_binning(binning: str) -> str:
    """`binning` itself if it is one of BINNINGS, else a ValueError naming the valid modes."""
    if binning not in BINNINGS:
        raise ValueError(f"binning must be one of {', '.join(map(repr, BINNINGS))}, got {binning!r}")
    return binning


def quantile_edges(pooled: Tensor, bins: int) -> Tensor:
    """Per-dimension edges (D, bins + 1) at the k/bins quantiles (nearest rank) of the pooled rows (N, D)."""
    ordered = pooled.double().sort(dim=0).values
    quantiles = torch.linspace(0.0, 1.0, bins + 1, dtype=torch.float64, device=pooled.device)
    ranks = (quantiles * (len(ordered) - 1)).round().long()
    return ordered[ranks].T.contiguous()


def width_edges(lo: Tensor, hi: Tensor, bins: int) -> Tensor:
    """Per-dimension edges (D, bins + 1) of `bins` equal-width bins over [lo_d, hi_d]."""
    steps = torch.arange(bins + 1, dtype=torch.float64, device=lo.device) / bins
    return (lo.double()[:, None] + (hi.double() - lo.double())[:, None] * steps).contiguous()


def bin_edges(pooled: Tensor, bins: int, binning: Binning = "quantile") -> Tensor:
    """Per-dimension edges (D, bins + 1) of the pooled rows (N, D) in a binning mode (module docstring)."""
    if check_binning(binning) == "quantile":
        return quantile_edges(pooled, bins)
    return width_edges(pooled.min(0).values, pooled.max(0).values, bins)


def range_edges(value_range: tuple[float, float], num_dims: int, bins: int) -> Tensor:
    """Edges (num_dims, bins + 1) of `bins` equal-width bins over one fixed (lo, hi) for every dimension."""
    lo, hi = (torch.full((num_dims,), float(v), dtype=torch.float64) for v in value_range)
    return width_edges(lo, hi, bins)


def bin_index(x: Tensor, edges: Tensor) -> Tensor:
    """Bin (N, D) of each value of x (N, D) on edges (D, bins + 1); a tied edge value gets its own bin."""
    values = x.double().T.contiguous()
    below = torch.searchsorted(edges, values, side="left")  # edges < x
    at_or_below = torch.searchsorted(edges, values, side="right")  # edges <= x
    # x on an edge: the bin it opens (of tied edges, the first: the point-mass bin); else the bin around x.
    index = torch.where(at_or_below > below, below, below - 1)
    return index.clamp(0, edges.shape[1] - 2).T


def histogram_counts(x: Tensor, edges: Tensor) -> Tensor:
    """Per-dimension counts (D, bins) of the rows of x (N, D) on per-dimension edges (D, bins + 1)."""
    bins = edges.shape[1] - 1
    flat = bin_index(x, edges) + torch.arange(x.shape[1], device=x.device) * bins
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
    """Both sets as float64 tensors (N, D) and (M, D), or a ValueError."""
    a, b = (torch.as_tensor(np.asarray(x), dtype=torch.float64) for x in (a, b))
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or not len(a) or not len(b):
        raise ValueError(f"need non-empty (N, D) and (M, D) arrays with the same D, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    return a, b


def per_dimension_js(a: Any, b: Any, bins: int = 100, value_range: tuple[float, float] | None = None,
                     binning: Binning = "quantile") -> np.ndarray:
    """JS in bits per dimension between the rows of a (N, D) and b (M, D); a value_range overrides binning."""
    check_binning(binning)
    a, b = _check_pair(a, b)
    edges = (bin_edges(torch.cat([a, b]), bins, binning) if value_range is None
             else range_edges(value_range, a.shape[1], bins))
    return js_from_counts(histogram_counts(a, edges), histogram_counts(b, edges)).numpy()


def js_divergence(a: Any, b: Any, bins: int = 100, value_range: tuple[float, float] | None = None,
                  binning: Binning = "quantile") -> float:
    """Mean over dimensions of the JS divergence in bits (per_dimension_js, module docstring)."""
    return float(per_dimension_js(a, b, bins, value_range, binning).mean())


def _agreed_edges(stacked: Tensor) -> Tensor:
    """Reduce k processes' edges (k, D, bins + 1): they must agree (counts on other bins cannot be summed)."""
    known = stacked[~stacked.flatten(1).isnan().any(1)]
    if len(known) and not (known == known[0]).all():
        raise RuntimeError("JensenShannonDivergence states have different bin edges (value_range=None takes "
                           "each process's first batch): pass a fixed value_range or edges to merge or sync "
                           "across ranks")
    return known[0] if len(known) else stacked[0]


class JensenShannonDivergence(Metric):
    """Histogram JS divergence in bits between accumulated train and test latents, averaged over dimensions.

    The state is two (D, bins) count tensors summed across processes (`dist_reduce_fx="sum"`), so DDP ranks
    and `merge_state` give exactly the single-process result. The bins must therefore be known before the
    first count: `edges` (a (D, bins + 1) tensor, non-decreasing per dimension, e.g. `bin_edges` of the
    pooled rows computed once) fixes them per dimension and takes precedence over `value_range`;
    `value_range=(lo, hi)` gives every dimension equal-width bins on it (the default (-1, 1) fits tanh trunk
    features); `value_range=None` takes equal-width bins over the per-dimension pooled min/max of the first
    update (give it both sets; values outside the range later go to the edge bins), which is per process:
    merging or syncing states whose edges differ raises.
    `reduction="none"` makes `compute()` return the per-dimension values (D,) instead of their mean.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, num_dims: int, bins: int = 100, value_range: tuple[float, float] | None = (-1.0, 1.0),
                 reduction: Literal["mean", "none"] = "mean", edges: Tensor | np.ndarray | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if num_dims < 1 or bins < 1:
            raise ValueError(f"num_dims and bins must be >= 1, got {num_dims}, {bins}")
        if edges is None and value_range is not None and not value_range[0] < value_range[1]:
            raise ValueError(f"value_range must be (lo, hi) with lo < hi, got {value_range}")
        if reduction not in ("mean", "none"):
            raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
        self.num_dims, self.bins, self.reduction = num_dims, bins, reduction
        if edges is not None:
            initial = _checked_edges(edges, num_dims, bins)
        elif value_range is not None:
            initial = range_edges(value_range, num_dims, bins)
        else:  # NaN until the first update
            initial = torch.full((num_dims, bins + 1), float("nan"), dtype=torch.float64)
        self.add_state("edges", initial, dist_reduce_fx=_agreed_edges)
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
            self.edges = bin_edges(pooled, self.bins, "width").to(self.edges.device)
        for name, x in rows.items():
            setattr(self, name, getattr(self, name) + histogram_counts(x, self.edges))

    def compute(self) -> Tensor:
        """Mean JS divergence in bits over dimensions (per dimension with reduction="none")."""
        if not self.train_counts.sum() or not self.test_counts.sum():
            raise RuntimeError("JensenShannonDivergence needs both train and test latents before compute()")
        per_dim = js_from_counts(self.train_counts, self.test_counts)
        return per_dim if self.reduction == "none" else per_dim.mean()


def _checked_edges(edges: Tensor | np.ndarray, num_dims: int, bins: int) -> Tensor:
    """Explicit edges as float64 (num_dims, bins + 1), or a ValueError: bad shape, non-finite, decreasing."""
    edges = torch.as_tensor(edges, dtype=torch.float64).detach().cpu()
    if edges.shape != (num_dims, bins + 1):
        raise ValueError(f"edges must have shape (num_dims, bins + 1) = ({num_dims}, {bins + 1}), "
                         f"got {tuple(edges.shape)}")
    if not edges.isfinite().all() or (edges.diff(dim=1) < 0).any():
        raise ValueError("edges must be finite and non-decreasing along each dimension")
    return edges.contiguous()
