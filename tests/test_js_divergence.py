"""The histogram JS divergence (function and torchmetrics Metric) and the generalization scores."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from synthvis.metrics.generalization import gap_closed, normalized_score
from synthvis.metrics.js_divergence import JensenShannonDivergence, js_divergence, js_matrix, per_dimension_js


@pytest.fixture
def latents() -> tuple[np.ndarray, np.ndarray]:
    """Two tanh-squashed latent sets with different means."""
    rng = np.random.default_rng(0)
    return np.tanh(rng.normal(0.0, 0.7, (600, 5))), np.tanh(rng.normal(0.4, 0.5, (400, 5)))


def test_identical_sets_have_zero_divergence(latents):
    a, _ = latents
    assert js_divergence(a, a) == 0.0
    assert js_divergence(a, a.copy(), value_range=(-1.0, 1.0)) == 0.0


def test_disjoint_supports_have_divergence_one():
    a = np.full((50, 3), -0.9)
    b = np.full((70, 3), 0.9)
    assert js_divergence(a, b, bins=10, value_range=(-1.0, 1.0)) == pytest.approx(1.0, abs=1e-12)
    assert js_divergence(a, b) == pytest.approx(1.0, abs=1e-12)  # pooled range: the two ends of it


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


def test_matrix_is_train_set_by_test_env(latents):
    a, b = latents
    matrix = js_matrix({"real": a, "real+synthetic": np.concatenate([a, b])}, {"easy": a, "hard": b})
    assert list(matrix) == ["real", "real+synthetic"] and list(matrix["real"]) == ["easy", "hard"]
    assert matrix["real"]["easy"] == 0.0
    assert matrix["real"]["hard"] == pytest.approx(js_divergence(a, b))
    assert 0.0 < matrix["real+synthetic"]["hard"] < matrix["real"]["hard"]


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="same D"):
        js_divergence(np.zeros((3, 2)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="non-empty"):
        js_divergence(np.zeros((0, 2)), np.zeros((3, 2)))


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
    assert metric.compute().item() == pytest.approx(js_divergence(a.numpy(), b.numpy()))
    other = JensenShannonDivergence(num_dims=5, value_range=None)
    other.update(a[:10], b[:10])
    with pytest.raises(RuntimeError, match="fixed value_range"):
        metric.merge_state(other)
    metric.reset()
    metric.update(train_latents=a)
    with pytest.raises(RuntimeError, match="both train and test"):
        metric.compute()


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
