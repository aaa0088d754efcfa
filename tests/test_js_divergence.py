"""The histogram JS divergence (function and torchmetrics Metric) and the generalization scores."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from synthvis.evaluation import latent_divergence as latent_divergence_stage
from synthvis.evaluation.latent_divergence import js_table
from synthvis.metrics.generalization import gap_closed, normalized_score
from synthvis.metrics.js_divergence import (
    JensenShannonDivergence,
    bin_edges,
    histogram_counts,
    js_divergence,
    js_from_counts,
    per_dimension_js,
)


@pytest.fixture
def latents() -> tuple[np.ndarray, np.ndarray]:
    """Two tanh-squashed latent sets with different means."""
    rng = np.random.default_rng(0)
    return np.tanh(rng.normal(0.0, 0.7, (600, 5))), np.tanh(rng.normal(0.4, 0.5, (400, 5)))


def test_identical_sets_have_zero_divergence(latents):
    a, _ = latents
    assert js_divergence(a, a) == 0.0
    assert js_divergence(a, a, binning="width") == 0.0
    assert js_divergence(a, a.copy(), value_range=(-1.0, 1.0)) == 0.0


def test_disjoint_supports_have_divergence_one():
    a = np.full((50, 3), -0.9)
    b = np.full((70, 3), 0.9)
    assert js_divergence(a, b, bins=10, value_range=(-1.0, 1.0)) == pytest.approx(1.0, abs=1e-12)
    assert js_divergence(a, b, binning="width") == pytest.approx(1.0, abs=1e-12)  # the two ends of the range
    assert js_divergence(a, b) == pytest.approx(1.0, abs=1e-12)  # two point masses: one bin each
    rng = np.random.default_rng(1)
    low, high = rng.uniform(0.0, 1.0, (500, 4)), rng.uniform(2.0, 3.0, (500, 4))
    # Equal sizes, an even number of bins: the median edge is the first row of `high`; no bin holds both.
    assert js_divergence(low, high, bins=10) == pytest.approx(1.0, abs=1e-12)


def test_two_bin_case_by_hand():
    # p = [1, 0], q = [1/2, 1/2], m = [3/4, 1/4]:
    # KL(p||m) = log2(4/3); KL(q||m) = 1/2 log2(2/3) + 1/2 log2(2) = 1/2 log2(2/3) + 1/2
    # JS = 1/2 log2(4/3) + 1/4 log2(2/3) + 1/4 = 3/2 - 3/4 log2(3)
    expected = 0.5 * math.log2(4 / 3) + 0.25 * math.log2(2 / 3) + 0.25
    assert expected == pytest.approx(1.5 - 0.75 * math.log2(3))
    p = np.array([[-0.5], [-0.5]])
    q = np.array([[-0.5], [0.5]])
    assert js_divergence(p, q, bins=2, value_range=(-1.0, 1.0)) == pytest.approx(expected, abs=1e-12)


def test_symmetric_bounded_and_averaged_over_dimensions(latents):
    a, b = latents
    forward, backward = js_divergence(a, b), js_divergence(b, a)
    assert forward == pytest.approx(backward, abs=1e-12)
    per_dim = per_dimension_js(a, b)
    assert per_dim.shape == (5,) and np.all((per_dim > 0) & (per_dim < 1))
    assert forward == pytest.approx(per_dim.mean())


def test_values_outside_the_range_count_in_the_edge_bins():
    inside = np.array([[-0.99], [0.99]])
    outside = np.array([[-5.0], [5.0]])
    assert js_divergence(inside, outside, bins=4, value_range=(-1.0, 1.0)) == 0.0


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="same D"):
        js_divergence(np.zeros((3, 2)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="non-empty"):
        js_divergence(np.zeros((0, 2)), np.zeros((3, 2)))


def test_invalid_binning_raises_a_clear_error(latents):
    a, b = latents
    with pytest.raises(ValueError, match="binning must be one of 'quantile', 'width', got 'equal'"):
        js_divergence(a, b, binning="equal")
    with pytest.raises(ValueError, match="binning must be one of"):
        bin_edges(torch.from_numpy(a), 10, "Quantile")


def test_quantile_bins_hold_equal_pooled_mass(latents):
    a, b = latents
    pooled = torch.from_numpy(np.concatenate([a, b]))
    edges = bin_edges(pooled, 10)
    assert edges.shape == (5, 11) and torch.equal(edges[:, 0], pooled.min(0).values)
    assert torch.equal(edges[:, -1], pooled.max(0).values)
    counts = histogram_counts(pooled, edges)
    assert torch.equal(counts.sum(1), torch.full((5,), 1000))
    assert counts.min() >= 99 and counts.max() <= 101  # 1000 pooled rows, 10 bins: ±1 from the rank rounding


def test_tied_quantile_edges_give_a_point_mass_its_own_bin():
    # 600 exact zeros among 1000 pooled values: the edges at ranks round(k * 999 / 100) <= 599 (k <= 60): 0.
    values = torch.cat([torch.zeros(600), torch.linspace(0.001, 1.0, 400)])[:, None]
    edges = bin_edges(values, 100)
    assert torch.equal(edges[0, :61], torch.zeros(61, dtype=torch.float64)) and edges[0, 61] > 0
    counts = histogram_counts(values, edges)[0]
    assert counts[0] == 600  # {0}: the zeros alone, not mixed with the smallest positive values
    assert counts[1:60].sum() == 0  # the other zero-width bins stay empty (they add 0 to JS)
    assert counts[60:].sum() == 400 and counts[60:].min() >= 9 and counts[60:].max() <= 11  # 400 over 40 bins


def test_a_point_mass_at_zero_in_both_sets_has_zero_divergence(latents):
    a, b = latents
    dead_a, dead_b = np.zeros((len(a), 1)), np.zeros((len(b), 1))  # a ReLU unit that never fires
    for binning in ("quantile", "width"):
        per_dim = per_dimension_js(np.hstack([dead_a, a]), np.hstack([dead_b, b]), binning=binning)
        assert per_dim[0] == 0.0 and np.all(per_dim[1:] > 0)


def relu_latents(rng: np.random.Generator, rows: int, zero_fraction: float = 0.6,
                 tail: float = 1.0) -> np.ndarray:
    """ReLU-like features (rows, 8): exact zeros, else an exponential tail; seven weak units and one strong
    one (tail scale 2.5, reaching ~15-20), which alone sets one global value range."""
    scales = np.array([0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 2.5]) * tail
    x = rng.exponential(1.0, (rows, 8)) * scales
    x[rng.random(x.shape) < zero_fraction] = 0.0
    return x


def global_range(*sets: np.ndarray) -> tuple[float, float]:
    """The previous js_table's one value range: the pooled min/max over every set and every dimension."""
    pooled = np.concatenate(sets)
    return float(pooled.min()), float(pooled.max())


def sampling_bias_bound(bins: int, n_p: int, n_q: int) -> float:
    """Expected plug-in JS (bits) of two samples of one distribution with at most `bins` occupied bins.

    Second-order expansion around the mixture m: JS ≈ Σ_k (p̂_k - q̂_k)² / (8 m_k ln 2), and
    E(p̂_k - q̂_k)² = π_k (1 - π_k)(1/n_p + 1/n_q), so E JS ≈ (K - 1)(1/n_p + 1/n_q) / (8 ln 2) with K <= bins
    occupied bins. relu_latents with 100 quantile bins occupies K ≈ 41 (the zeros' bin and ~40 above), an
    expected 0.0048 bits against this bound's 0.0119; the spread of the mean over 8 dimensions
    (√(2 / (K - 1) / 8) ≈ 8%) is far below that factor 2.4.
    """
    return (bins - 1) * (1 / n_p + 1 / n_q) / (8 * math.log(2))


def test_relu_like_shift_is_seen_by_quantile_bins_and_missed_by_one_global_range():
    rng = np.random.default_rng(0)
    train = relu_latents(rng, 3000)
    assert (train == 0).mean() == pytest.approx(0.6, abs=0.02) and 12 < train.max() < 25
    noise_floor = sampling_bias_bound(100, 3000, 3000)  # 0.0119 bits
    for shifted in (relu_latents(rng, 3000, tail=2.0), relu_latents(rng, 3000, zero_fraction=0.45)):
        quantile = js_divergence(train, shifted)
        old = js_divergence(train, shifted, value_range=global_range(train, shifted))
        assert quantile > 1.5 * noise_floor  # clearly positive: 0.0382 (tail x2), 0.0217 (fewer zeros)
        assert old < quantile / 4  # one global range puts the weak units in its first bin: 0.0056, 0.0036
        # Per-dimension ranges help too: 0.0363, 0.0242.
        assert js_divergence(train, shifted, binning="width") > 0.5 * quantile


def test_same_distribution_stays_below_the_sampling_bias_bound():
    rng = np.random.default_rng(1)
    first, second = relu_latents(rng, 3000), relu_latents(rng, 3000)
    value = js_divergence(first, second)
    assert 0.0 < value < sampling_bias_bound(100, 3000, 3000)  # 0.0049 < 0.0119 bits


def old_per_dimension_js(a: np.ndarray, b: np.ndarray, bins: int) -> np.ndarray:
    """The estimator before quantile binning (value_range=None): equal bins over each dimension's min/max."""
    pooled = np.concatenate([a, b])
    lo, hi = pooled.min(0), pooled.max(0)
    span = np.where(hi > lo, hi - lo, 1.0)

    def counts(x: np.ndarray) -> torch.Tensor:
        index = np.clip(np.floor((x - lo) / span * bins), 0, bins - 1).astype(int)
        return torch.from_numpy(np.stack([np.bincount(column, minlength=bins) for column in index.T]))

    return js_from_counts(counts(a), counts(b)).numpy()


def test_width_binning_equals_the_previous_per_dimension_min_max_estimator(latents):
    a, b = latents
    constant = 0.3  # a constant dimension too (pooled min == max)
    a, b = np.hstack([a, np.full((len(a), 1), constant)]), np.hstack([b, np.full((len(b), 1), constant)])
    rng = np.random.default_rng(2)
    for bins in (7, 50, 100):
        np.testing.assert_array_equal(per_dimension_js(a, b, bins, binning="width"),
                                      old_per_dimension_js(a, b, bins))
        relu_a, relu_b = relu_latents(rng, 500), relu_latents(rng, 400, tail=2.0)
        np.testing.assert_array_equal(per_dimension_js(relu_a, relu_b, bins, binning="width"),
                                      old_per_dimension_js(relu_a, relu_b, bins))


def test_metric_matches_the_function_and_reports_per_dimension(latents):
    a, b = latents
    metric = JensenShannonDivergence(num_dims=5, bins=50)
    metric.update(torch.from_numpy(a), torch.from_numpy(b))
    assert metric.compute().item() == pytest.approx(js_divergence(a, b, bins=50, value_range=(-1.0, 1.0)))
    per_dim = JensenShannonDivergence(num_dims=5, bins=50, reduction="none")
    per_dim.update(torch.from_numpy(a).float(), torch.from_numpy(b).float())
    np.testing.assert_allclose(per_dim.compute().numpy(), per_dimension_js(a, b, 50, (-1.0, 1.0)))


def test_metric_incremental_updates_equal_one_update(latents):
    a, b = (torch.from_numpy(x) for x in latents)
    whole = JensenShannonDivergence(num_dims=5)
    whole.update(a, b)
    pieces = JensenShannonDivergence(num_dims=5)
    for a_part, b_part in zip(a.split(150), b.split(100)):
        pieces.update(a_part, b_part)
    pieces.update(train_latents=a[:0])  # empty and one-sided updates are fine
    assert torch.equal(pieces.train_counts, whole.train_counts) and torch.equal(pieces.test_counts,
                                                                                whole.test_counts)
    assert pieces.compute().item() == whole.compute().item()


def test_metric_merged_ranks_equal_one_process(latents):
    a, b = (torch.from_numpy(x) for x in latents)
    single = JensenShannonDivergence(num_dims=5)
    single.update(a, b)
    rank0, rank1 = JensenShannonDivergence(num_dims=5), JensenShannonDivergence(num_dims=5)
    rank0.update(a[:250], b[:300])
    rank1.update(a[250:], test_latents=None)
    rank1.update(test_latents=b[300:])
    rank0.merge_state(rank1)
    assert torch.equal(rank0.train_counts, single.train_counts)
    assert rank0.compute().item() == single.compute().item()


def test_metric_data_range_is_set_by_the_first_update_and_must_agree_to_merge(latents):
    a, b = (torch.from_numpy(x) for x in latents)
    metric = JensenShannonDivergence(num_dims=5, value_range=None)
    metric.update(a, b)
    assert metric.compute().item() == pytest.approx(js_divergence(a.numpy(), b.numpy(), binning="width"))
    other = JensenShannonDivergence(num_dims=5, value_range=None)
    other.update(a[:10], b[:10])
    with pytest.raises(RuntimeError, match="fixed value_range"):
        metric.merge_state(other)
    metric.reset()
    metric.update(train_latents=a)
    with pytest.raises(RuntimeError, match="both train and test"):
        metric.compute()


def test_metric_with_explicit_edges_equals_the_function(latents):
    a, b = latents
    rng = np.random.default_rng(3)
    for first, second in ((a, b), (relu_latents(rng, 900), relu_latents(rng, 700, tail=2.0))):
        edges = bin_edges(torch.from_numpy(np.concatenate([first, second])), 30)
        expected = per_dimension_js(first, second, 30)
        single = JensenShannonDivergence(num_dims=first.shape[1], bins=30, edges=edges, reduction="none")
        single.update(torch.from_numpy(first), torch.from_numpy(second))
        np.testing.assert_array_equal(single.compute().numpy(), expected)
        rank0, rank1 = (JensenShannonDivergence(num_dims=first.shape[1], bins=30, edges=edges.numpy())
                        for _ in range(2))
        rank0.update(torch.from_numpy(first[:200]), torch.from_numpy(second[:300]))
        rank1.update(torch.from_numpy(first[200:]), torch.from_numpy(second[300:]))
        rank0.merge_state(rank1)
        assert rank0.compute().item() == pytest.approx(expected.mean(), abs=1e-15)


def test_metric_edges_are_checked():
    with pytest.raises(ValueError, match=r"shape \(num_dims, bins \+ 1\) = \(3, 11\)"):
        JensenShannonDivergence(num_dims=3, bins=10, edges=torch.zeros(3, 10))
    decreasing = torch.linspace(1.0, 0.0, 11).repeat(3, 1)
    with pytest.raises(ValueError, match="non-decreasing"):
        JensenShannonDivergence(num_dims=3, bins=10, edges=decreasing)


def test_js_table_bins_every_cell_on_one_binning_per_dimension():
    rng = np.random.default_rng(4)
    real, synthetic = relu_latents(rng, 800), relu_latents(rng, 800, tail=1.5)
    train_sets = {"real": real, "real+synthetic": np.concatenate([real, synthetic])}
    test_sets = {"train": relu_latents(rng, 300), "hard": relu_latents(rng, 300, tail=2.0) + 1.0}
    pooled = torch.from_numpy(np.concatenate([*train_sets.values(), *test_sets.values()]))
    for binning in ("quantile", "width"):
        table = js_table(train_sets, test_sets, bins=20, binning=binning)
        assert list(table) == ["real", "real+synthetic"] and list(table["real"]) == ["train", "hard"]
        edges = bin_edges(pooled, 20, binning)  # one set of edges for every cell
        counts = {name: histogram_counts(torch.from_numpy(x), edges)
                  for name, x in {**train_sets, **test_sets}.items()}
        for train_name, row in table.items():
            for env, value in row.items():
                assert value == pytest.approx(float(js_from_counts(counts[train_name], counts[env]).mean()),
                                              abs=1e-15)
        metric = JensenShannonDivergence(num_dims=8, bins=20, edges=edges)  # the Metric, given those edges
        metric.update(torch.from_numpy(real), torch.from_numpy(test_sets["hard"]))
        assert metric.compute().item() == pytest.approx(table["real"]["hard"], abs=1e-15)
        # Not each pair's own edges: those would bin `real` against `train` on different edges than `hard`.
        pairwise = js_divergence(real, test_sets["train"], 20, binning=binning)
        assert table["real"]["train"] != pytest.approx(pairwise)


def test_js_json_records_bins_and_binning(monkeypatch):
    rng = np.random.default_rng(5)
    monkeypatch.setattr(latent_divergence_stage, "encode_observations", lambda agent, obs: obs)
    observations = {"train": relu_latents(rng, 100), "hard": relu_latents(rng, 100, tail=2.0),
                    "empty": np.zeros((0, 8))}
    js = latent_divergence_stage.latent_divergence({"real": relu_latents(rng, 400)}, None, observations, 25, "width")
    assert list(js) == ["bins", "binning", "divergence"] and (js["bins"], js["binning"]) == (25, "width")
    assert list(js["divergence"]["real"]) == ["train", "hard"]


def test_gap_closed_on_hand_values():
    # Baseline: 800 on train, 350 on test (gap 450); the method gets 550 on test: it closes 200/450.
    assert gap_closed(550.0, 350.0, 800.0) == pytest.approx(200 / 450)
    assert gap_closed(350.0, 350.0, 800.0) == 0.0
    assert gap_closed(800.0, 350.0, 800.0) == 1.0
    assert gap_closed(300.0, 350.0, 800.0) == pytest.approx(-50 / 450)
    assert math.isnan(gap_closed(550.0, 350.0, 350.0))  # no baseline gap: undefined


def test_normalized_score_puts_random_at_0_and_the_data_at_100():
    assert normalized_score(0.0, 0.0, 908.0) == 0.0 and normalized_score(908.0, 0.0, 908.0) == 100.0
    assert normalized_score(33.3, 0.0, 900.0) == pytest.approx(3.7)  # a small return stays readable, not 0.000
    assert normalized_score(50.0, 100.0, 300.0) == -25.0  # worse than random actions
    assert math.isnan(normalized_score(5.0, 2.0, 2.0))
