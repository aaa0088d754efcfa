"""PixelDataModule end to end: generation, caching, resume, splits, sampling, FDD mixing and bad input."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

import synthvis.datamodules.sources as sources_module
from synthvis.core.batches import ContinuousBatch, DiscreteBatch
from synthvis.datamodules.formats import DatasetError, iter_episodes
from synthvis.datamodules.generated_dmc import GeneratedDMCDataset
from synthvis.datamodules.pixel import PixelDataModule
from synthvis.datamodules.sources import LocalDataset, vd4rl_path
from synthvis.envs.dmc import DMCPixelEnv


def first_batch_of(datamodule: PixelDataModule):
    """The first training batch as an update receives it (gathered from indices when the frames are held)."""
    return datamodule.on_after_batch_transfer(next(iter(datamodule.train_dataloader())), 0)


# A cheap env: 16 px frames, action repeat 8 -> 125 agent steps per episode.
TINY_ENV = functools.partial(DMCPixelEnv, domain="point_mass", task="easy", image_size=16, frame_stack=3,
                             action_repeat=8)


def tiny_source(tmp_path, **kwargs) -> GeneratedDMCDataset:
    defaults = {"env": TINY_ENV, "quality": "expert", "num_episodes": 3, "seed": 0, "format": "vd4rl_npz",
                "cache_dir": tmp_path / "cache", "episodes_per_file": 1}
    return GeneratedDMCDataset(**(defaults | kwargs))


def test_generated_dataset_is_sampled_with_correct_stacks_and_nstep_returns(tmp_path):
    datamodule = PixelDataModule(tiny_source(tmp_path), frame_stack=3, nstep=3, gamma=0.9, batch_size=8,
                                 val_fraction=0.34, cache_dir=tmp_path / "cache", seed=1)
    datamodule.prepare_data()
    datamodule.setup("fit")
    folder = tiny_source(tmp_path).folder
    assert (folder / "metadata.json").exists()
    episodes = list(iter_episodes(folder))
    assert len(episodes) == 3 and all(len(e) == 126 for e in episodes)
    assert all(e.episode_return > 100 for e in episodes)  # the scripted expert, not noise
    # 2 train episodes, 1 validation episode; valid rows stop n steps before each episode's end.
    assert len(datamodule.train_set) == 2 * (126 - 3) and len(datamodule.val_set) == 126 - 3

    batch = first_batch_of(datamodule)
    assert isinstance(batch, ContinuousBatch)
    assert batch.obs.shape == (8, 9, 16, 16) and batch.obs.dtype == torch.uint8
    # Recompute one sampled transition by hand from the episode files.
    train_set = datamodule.train_set
    store = train_set.stores[0]
    row = int(train_set.rows[0][5])
    episode_index = int(np.searchsorted(store.episode_starts, row, side="right") - 1)
    episode, t = episodes[episode_index], row - int(store.episode_starts[episode_index])
    item = train_set[5]
    expected_obs = np.concatenate([episode.frames[max(t - 2 + j, 0)] for j in range(3)])
    expected_next = np.concatenate([episode.frames[t + 3 - 2 + j] for j in range(3)])
    np.testing.assert_array_equal(item.obs.numpy(), expected_obs)
    np.testing.assert_array_equal(item.next_obs.numpy(), expected_next)
    np.testing.assert_array_equal(item.action.numpy(), episode.action[t + 1])
    expected_reward = sum(0.9**k * episode.reward[t + 1 + k] for k in range(3))
    assert item.reward.item() == pytest.approx(expected_reward, rel=1e-5)
    assert item.discount.item() == pytest.approx(0.9**3)


def test_generation_is_cached_and_resumes_after_a_kill(tmp_path, monkeypatch):
    real_write = sources_module.write_episodes
    calls = {"n": 0}

    def write_then_die(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # killed while writing the third episode
        return real_write(*args, **kwargs)

    monkeypatch.setattr(sources_module, "write_episodes", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        tiny_source(tmp_path).prepare()
    folder = tiny_source(tmp_path).folder
    assert not (folder / "metadata.json").exists()
    assert len(list(folder.glob("*.npz"))) == 2

    monkeypatch.setattr(sources_module, "write_episodes", real_write)
    resumed = [e.frames for e in iter_episodes(tiny_source(tmp_path).prepare())]
    fresh = [e.frames for e in iter_episodes(tiny_source(tmp_path / "fresh").prepare())]
    assert len(resumed) == 3
    for a, b in zip(resumed, fresh, strict=True):
        np.testing.assert_array_equal(a, b)  # the resumed third episode is the one a clean run makes

    mtime = (folder / "metadata.json").stat().st_mtime
    tiny_source(tmp_path).prepare()  # cached: nothing regenerated
    assert (folder / "metadata.json").stat().st_mtime == mtime


def test_cache_key_changes_with_the_generating_config(tmp_path):
    base = tiny_source(tmp_path).folder
    assert tiny_source(tmp_path, seed=1).folder != base
    assert tiny_source(tmp_path, quality="random").folder != base
    assert tiny_source(tmp_path, env=functools.partial(TINY_ENV, image_size=32)).folder != base
    assert tiny_source(tmp_path).folder == base


def test_published_vd4rl_fixture_through_the_datamodule(published_fixtures, tmp_path):
    root = published_fixtures / "vd4rl_data"
    for size in (64, 84):
        source = LocalDataset(vd4rl_path(root, "cheetah_run", "random", size))
        datamodule = PixelDataModule(source, frame_stack=3, nstep=3, batch_size=32, val_fraction=0.5,
                                     cache_dir=tmp_path / "cache")
        datamodule.prepare_data()
        datamodule.setup()
        assert len(datamodule.train_set) == 501 - 1 - 2 and len(datamodule.val_set) == 498
        batch = first_batch_of(datamodule)
        assert batch.obs.shape == (32, 9, size, size) and batch.action.shape == (32, 6)


def test_published_gen_dgrl_fixture_gives_discrete_batches(published_fixtures, tmp_path):
    source = LocalDataset(published_fixtures / "gen_dgrl" / "coinrun")
    datamodule = PixelDataModule(source, frame_stack=1, nstep=1, batch_size=64, val_fraction=0.0,
                                 cache_dir=tmp_path / "cache")
    datamodule.prepare_data()
    datamodule.setup()
    assert len(datamodule.train_set) == 185 + 532 + 1000
    assert datamodule.val_dataloader() == []
    batch = datamodule.train_set.__getitems__(list(range(len(datamodule.train_set))))
    assert isinstance(batch, DiscreteBatch)
    assert batch.done.sum().item() == 3  # every fixture episode ends in a done
    assert batch.next_obs[batch.done.bool()].abs().sum().item() == 0
    assert batch.reward.sum().item() == pytest.approx(10.0)
    assert batch.action.dtype == torch.int64 and int(batch.action.max()) < 15


def test_same_seed_same_batches_and_different_seed_differs(published_fixtures, tmp_path):
    path = vd4rl_path(published_fixtures / "vd4rl_data", "cheetah_run", "random", 64)

    def first_batch(seed: int) -> torch.Tensor:
        dm = PixelDataModule(LocalDataset(path), batch_size=16, val_fraction=0.5, seed=seed,
                             cache_dir=tmp_path / "cache")
        dm.prepare_data()
        dm.setup()
        return first_batch_of(dm).action

    torch.testing.assert_close(first_batch(3), first_batch(3))
    assert not torch.equal(first_batch(3), first_batch(4))


def test_fdd_mix_keeps_size_and_draws_the_fraction_from_fixed_distraction_data(published_fixtures, tmp_path):
    root = published_fixtures / "vd4rl_data"
    main = LocalDataset(vd4rl_path(root, "cheetah_run", "random", 64))
    fdd = LocalDataset(vd4rl_path(root, "cheetah_run", "random", 64))  # stands in for fixed-distraction data
    plain = PixelDataModule(main, batch_size=16, val_fraction=0.5, cache_dir=tmp_path / "cache")
    mixed = PixelDataModule(main, batch_size=16, val_fraction=0.5, cache_dir=tmp_path / "cache",
                            fdd_source=fdd, fdd_fraction=0.05)
    for dm in (plain, mixed):
        dm.prepare_data()
        dm.setup()
    assert len(mixed.train_set) == len(plain.train_set)
    assert len(mixed.train_set.rows[1]) == round(0.05 * len(plain.train_set))


def test_bad_inputs_raise_clear_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        PixelDataModule(LocalDataset(tmp_path / "nowhere"), cache_dir=tmp_path).prepare_data()
    (tmp_path / "no_files").mkdir()
    with pytest.raises(DatasetError, match=r"no_files: holds no \*\.hdf5"):
        PixelDataModule(LocalDataset(tmp_path / "no_files"), cache_dir=tmp_path).prepare_data()
    with pytest.raises(ValueError, match="val_fraction"):
        PixelDataModule(LocalDataset(tmp_path), val_fraction=1.0)
    with pytest.raises(ValueError, match="fdd_source"):
        PixelDataModule(LocalDataset(tmp_path), fdd_fraction=0.05)
    with pytest.raises(ValueError, match="num_episodes"):
        tiny_source(tmp_path, num_episodes=0)


def test_batch_larger_than_dataset_is_refused(published_fixtures, tmp_path):
    path = vd4rl_path(published_fixtures / "vd4rl_data", "cheetah_run", "random", 64)
    dm = PixelDataModule(LocalDataset(path), batch_size=4096, val_fraction=0.5, cache_dir=tmp_path)
    dm.prepare_data()
    dm.setup()
    with pytest.raises(ValueError, match="batch_size"):
        dm.train_dataloader()


def test_fixed_distraction_data_for_fdd_is_generated_and_mixed(tmp_path):
    distraction = {"mode": "fixed_hard", "kinds": ["color", "camera"]}
    clean = tiny_source(tmp_path, num_episodes=2)
    distracted = tiny_source(tmp_path, num_episodes=1, distraction=distraction)
    assert distracted.folder != clean.folder and "fixed_hard" in distracted.folder.name
    datamodule = PixelDataModule(clean, frame_stack=3, nstep=3, batch_size=8, val_fraction=0.0,
                                 cache_dir=tmp_path / "cache", fdd_source=distracted, fdd_fraction=0.05)
    datamodule.prepare_data()
    datamodule.setup()
    clean_frames = next(iter_episodes(clean.folder)).frames
    distracted_frames = next(iter_episodes(distracted.folder)).frames
    assert np.abs(clean_frames[0].astype(int) - distracted_frames[0].astype(int)).mean() > 5
    assert len(datamodule.train_set.rows[1]) == round(0.05 * 2 * (126 - 3))
