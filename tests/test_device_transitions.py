"""Training transitions held on the device: the same batches as the host loader, gathered by index."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch

from synthvis.callbacks.step_seed import StepSeed
from synthvis.datamodules.augmentations import ColorCutout, PixelAugmentation, RandomShift
from synthvis.datamodules.device_transitions import DeviceTransitions, free_bytes
from synthvis.datamodules.pixel import PixelDataModule
from synthvis.datamodules.sources import LocalDataset, vd4rl_path
from synthvis.lightning_modules.bc import BC

pytestmark = pytest.mark.usefixtures("one_thread")


def _datamodule(tmp_path, source, **kwargs) -> PixelDataModule:
    datamodule = PixelDataModule(source, cache_dir=tmp_path / "cache", **kwargs)
    datamodule.prepare_data()
    datamodule.setup()
    return datamodule


def _assert_same(batch, expected) -> None:
    assert type(batch) is type(expected)
    for name, value, want in zip(expected._fields, batch, expected):
        assert value.dtype == want.dtype and torch.equal(value, want), name


@pytest.mark.parametrize("case", ["dmc", "dmc_fdd_mix", "procgen"])
def test_device_batches_equal_the_host_datasets_batches(published_fixtures, tmp_path, case):
    cheetah = LocalDataset(vd4rl_path(published_fixtures / "vd4rl_data", "cheetah_run", "random", 64))
    coinrun = LocalDataset(published_fixtures / "gen_dgrl" / "coinrun")
    options = {"dmc": {"source": cheetah, "frame_stack": 3, "nstep": 3, "val_fraction": 0.5},
               "dmc_fdd_mix": {"source": cheetah, "fdd_source": LocalDataset(vd4rl_path(
                   published_fixtures / "vd4rl_data", "cheetah_run", "random", 64)), "fdd_fraction": 0.3},
               "procgen": {"source": coinrun, "frame_stack": 2, "nstep": 1, "val_fraction": 0.0}}[case]
    dataset = _datamodule(tmp_path, **options).train_set
    held = DeviceTransitions(dataset, "cpu")
    assert len(held) == len(dataset)
    needed = sum(len(np.unique(np.concatenate(dataset.targets(s, rows)[:2]))) for s, rows in enumerate(dataset.rows))
    assert len(held.frames) == needed  # only the frames some transition reads
    order = np.random.default_rng(0).permutation(len(dataset))
    for indices in np.array_split(order, 7):  # every transition, in shuffled batches
        _assert_same(held.batch(torch.from_numpy(indices)), dataset.__getitems__(indices.tolist()))
    if case == "procgen":
        batch = held.batch(torch.arange(len(held)))
        assert batch.done.sum() == 3 and batch.next_obs[batch.done.bool()].abs().sum() == 0


def _initial_bc() -> BC:
    torch.manual_seed(0)
    return BC((9, 64, 64), action_dim=6, latent_dim=8, hidden_dim=32, std_schedule=0.1, augmentation=RandomShift(4))


class _Held(L.Callback):
    """Records, every update, whether the datamodule held the training frames on the device."""

    def __init__(self) -> None:
        self.held: list[bool] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.held.append(trainer.datamodule.device_set is not None)


def _trained_bc(tmp_path, source, frames_on_device: bool) -> dict[str, torch.Tensor]:
    augmentation = PixelAugmentation({"color_cutout": ColorCutout(reference_size=64)}, p=0.5)
    datamodule = PixelDataModule(source, batch_size=16, val_fraction=0.2, cache_dir=tmp_path / "cache", seed=3,
                                 augmentation=augmentation, frames_on_device=frames_on_device)
    agent = _initial_bc()
    trainer = L.Trainer(max_steps=6, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[StepSeed(7), held := _Held()], limit_val_batches=0,
                        default_root_dir=str(tmp_path))
    trainer.fit(agent, datamodule=datamodule)
    assert held.held == [frames_on_device] * 6 and datamodule.device_set is None  # freed when the fit ends
    return agent.state_dict()


def test_training_on_device_held_frames_equals_training_on_host_batches(published_fixtures, tmp_path):
    source = LocalDataset(vd4rl_path(published_fixtures / "vd4rl_data", "cheetah_run", "random", 64))
    on_host = _trained_bc(tmp_path / "host", source, frames_on_device=False)
    on_device = _trained_bc(tmp_path / "device", source, frames_on_device=True)
    initial = _initial_bc().state_dict()
    assert any(not torch.equal(value, initial[name]) for name, value in on_host.items())  # it trained
    for name, value in on_host.items():
        assert torch.equal(value, on_device[name]), name


def test_device_placement_is_decided_by_the_free_memory_and_checked(published_fixtures, tmp_path, monkeypatch):
    cheetah = LocalDataset(vd4rl_path(published_fixtures / "vd4rl_data", "cheetah_run", "random", 64))
    host = _datamodule(tmp_path, cheetah, batch_size=8, val_fraction=0.5, frames_on_device=False)
    batch = next(iter(host.train_dataloader()))
    assert host.device_set is None and batch.obs.shape == (8, 9, 64, 64)
    assert not host.train_dataloader().pin_memory  # no GPU
    assert free_bytes(torch.device("cpu")) > 0  # the host's free RAM, as Linux reports it
    frame_bytes = host.store.layout.frame_bytes
    for free, held in ((2 * frame_bytes - 1, False), (2 * frame_bytes, True)):  # null: room for the frames twice
        monkeypatch.setattr("synthvis.datamodules.pixel.free_bytes", lambda device, free=free: free)
        datamodule = _datamodule(tmp_path, cheetah, batch_size=8, val_fraction=0.5)
        loaded = next(iter(datamodule.train_dataloader()))
        assert (datamodule.device_set is not None) == held
        if held:  # indices: the batch is gathered on the device, equal to the host loader's
            assert loaded.dtype == torch.long and loaded.shape == (8,)
            _assert_same(datamodule.on_after_batch_transfer(loaded, 0), batch)
        else:
            _assert_same(loaded, batch)
    with pytest.raises(ValueError, match="data.frames_on_device must be true, false or null"):
        PixelDataModule(cheetah, frames_on_device="auto")
    with pytest.raises(ValueError, match="data.pin_memory must be true, false or null"):
        PixelDataModule(cheetah, pin_memory="yes")
