"""Frame stacking and n-step returns by index, checked against hand computations."""

from __future__ import annotations

import numpy as np
import pytest

from synthvis.core.batches import ContinuousBatch, DiscreteBatch
from synthvis.datamodules.frame_store import FrameStore
from synthvis.datamodules.transitions import TransitionDataset, valid_rows
from tests.helpers import make_episode

GAMMA = 0.9


@pytest.fixture
def store(tmp_path) -> FrameStore:
    # Two episodes: rows 0..5 (frame values 0..5) and rows 6..12 (frame values 100..106).
    episodes = [make_episode(6, start_value=0, seed=1), make_episode(7, start_value=100, seed=2)]
    return FrameStore.build(episodes, tmp_path / "store")


def frame_values(stacked) -> list[int]:
    """The constant value of each 3-channel frame in a stacked observation."""
    return [int(stacked[3 * i, 0, 0]) for i in range(stacked.shape[0] // 3)]


def test_valid_rows_keep_the_nstep_window_inside_the_episode(store):
    # Episode 0 has rows 0..5: t + 3 <= 5 -> t in 0..2. Episode 1 rows 6..12: t in 6..9.
    assert valid_rows(store, nstep=3).tolist() == [0, 1, 2, 6, 7, 8, 9]
    assert valid_rows(store, nstep=1, episodes=[1]).tolist() == [6, 7, 8, 9, 10, 11]
    assert valid_rows(store, nstep=6).tolist() == [6]


def test_frame_stack_and_nstep_match_hand_computation(store):
    dataset = TransitionDataset([(store, valid_rows(store, 3))], frame_stack=3, nstep=3, gamma=GAMMA)
    batch = dataset.__getitems__([0, 4, 6])  # rows 0, 7, 9
    assert isinstance(batch, ContinuousBatch)
    # Row 0 is the reset frame: the stack repeats it. Next obs at t+3 = 3 -> frames 1, 2, 3.
    assert frame_values(batch.obs[0].numpy()) == [0, 0, 0]
    assert frame_values(batch.next_obs[0].numpy()) == [1, 2, 3]
    # Row 7 (second frame of episode 1): the stack must not reach into episode 0.
    assert frame_values(batch.obs[1].numpy()) == [100, 100, 101]
    assert frame_values(batch.next_obs[1].numpy()) == [102, 103, 104]
    assert frame_values(batch.obs[2].numpy()) == [101, 102, 103]
    # Action is the one taken at row t, stored on row t + 1.
    np.testing.assert_array_equal(batch.action[1].numpy(), store.action[8])
    # n-step reward: r_{t+1} + g r_{t+2} + g^2 r_{t+3}, rewards 0.1 * row-within-episode.
    expected_row7 = 0.1 * 2 + GAMMA * 0.1 * 3 + GAMMA**2 * 0.1 * 4
    assert batch.reward[1].item() == pytest.approx(expected_row7, rel=1e-6)
    assert batch.reward[0].item() == pytest.approx(0.1 + GAMMA * 0.2 + GAMMA**2 * 0.3, rel=1e-6)
    assert batch.discount.numpy() == pytest.approx([GAMMA**3] * 3)
    assert batch.obs.shape == (3, 9, 8, 8) and batch.obs.dtype.is_floating_point is False


def test_discrete_terminal_zeroes_next_obs_and_sets_done(tmp_path):
    episodes = [make_episode(4, start_value=10, discrete=True, terminal=True, seed=3),
                make_episode(5, start_value=50, discrete=True, terminal=False, seed=4)]
    store = FrameStore.build(episodes, tmp_path / "store")
    dataset = TransitionDataset([(store, valid_rows(store, 1))], frame_stack=1, nstep=1, gamma=0.99)
    batch = dataset.__getitems__(list(range(len(dataset))))
    assert isinstance(batch, DiscreteBatch)
    assert batch.done.tolist() == [0, 0, 1, 0, 0, 0, 0]
    assert batch.next_obs[2].abs().sum().item() == 0  # terminal: gen_dgrl zeroes the next observation
    assert frame_values(batch.next_obs[1].numpy()) == [12]
    assert batch.action.dtype.is_floating_point is False
    np.testing.assert_array_equal(batch.action.numpy()[:3], store.action[1:4])


def test_mixed_sources_keep_item_order(tmp_path):
    first = FrameStore.build([make_episode(5, start_value=0)], tmp_path / "a")
    second = FrameStore.build([make_episode(5, start_value=200)], tmp_path / "b")
    dataset = TransitionDataset([(first, np.array([0, 1])), (second, np.array([2, 3]))], 1, 1, 0.99)
    assert len(dataset) == 4
    batch = dataset.__getitems__([3, 0, 2, 1])
    assert [frame_values(o.numpy())[0] for o in batch.obs] == [203, 0, 202, 1]
    with pytest.raises(IndexError):
        dataset.__getitems__([4])


def test_store_is_memory_mapped_and_not_pickled_with_frames(store):
    import pickle

    assert isinstance(store.frames, np.memmap)
    clone = pickle.loads(pickle.dumps(store))
    assert clone._frames is None and clone.frames.shape == store.frames.shape
    assert len(pickle.dumps(store)) < store.layout.frame_bytes + 4096 or store.layout.frame_bytes < 4096
