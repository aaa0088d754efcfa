"""Training batches indexed by update: the same batch k whether a stage starts at 0 or resumes at k."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from synthvis.datamodules.step_sampler import StepBatchSampler


def take(sampler: StepBatchSampler, count: int) -> list[list[int]]:
    return list(itertools.islice(iter(sampler), count))


def test_batch_k_does_not_depend_on_where_the_stream_started():
    full = take(StepBatchSampler(100, 8, seed=3), 40)  # 12 batches per epoch: crosses three epoch boundaries
    for start in (1, 11, 12, 25):
        assert take(StepBatchSampler(100, 8, seed=3, start=start), 40 - start) == full[start:]
    assert take(StepBatchSampler(100, 8, seed=4), 40) != full


def test_each_epoch_is_a_permutation_and_ranks_share_it_without_overlap():
    per_epoch = 100 // (8 * 2)
    ranks = [take(StepBatchSampler(100, 8, seed=0, rank=r, world_size=2), 2 * per_epoch) for r in (0, 1)]
    for epoch in range(2):
        rows = [i for r in ranks for batch in r[epoch * per_epoch:(epoch + 1) * per_epoch] for i in batch]
        assert len(rows) == len(set(rows)) == per_epoch * 16 and set(rows) <= set(range(100))
    assert ranks[0][0] != ranks[0][per_epoch]
    assert all(len(batch) == 8 for r in ranks for batch in r)


def test_too_little_data_for_one_batch_per_rank_is_refused():
    with pytest.raises(ValueError, match="batch"):
        StepBatchSampler(15, 8, seed=0, world_size=2)
    assert np.array(take(StepBatchSampler(16, 8, seed=0, world_size=2), 1)).shape == (1, 8)
