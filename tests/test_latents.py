"""Latent layout, extraction through a frozen agent, and the latent / upsampled datamodules."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from synthvis.core.batches import ContinuousBatch
from synthvis.core.episode import Episode
from synthvis.core.latent_layout import (
    Field,
    LatentLayout,
    dmc_layout,
    procgen_layout,
)
from synthvis.datamodules.augmentations import ColorJitter, PixelAugmentation, Rotation
from synthvis.datamodules.frame_store import FrameStore
from synthvis.datamodules.latent import LatentDataModule, default_batch_size
from synthvis.datamodules.latent_files import LATENTS_FILE, load_latents, save_latents
from synthvis.datamodules.transitions import TransitionDataset, valid_rows
from synthvis.datamodules.upsampled import MixedBatches, UpsampledDataModule
from synthvis.lightning_modules.bc import BC
from synthvis.lightning_modules.discrete_cql import DiscreteCQL
from synthvis.lightning_modules.drqbc import DrQBC
from synthvis.stages.latents import extract_latents
from tests.helpers import make_episode

SIZE, STACK, ACTIONS, GAMMA = 24, 3, 2, 0.9
TINY = {"latent_dim": 8, "hidden_dim": 32}
PROCGEN_SIZE = 16
TINY_CQL = {"latent_dim": 16, "channels": (4, 8, 8)}


pytestmark = pytest.mark.usefixtures("one_thread")


def random_fields(layout: LatentLayout, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Valid field values for `layout`: latents in range, integer actions for one-hot fields, 0/1 terminals."""
    rng = np.random.default_rng(seed)
    fields = {}
    for field in layout.fields:
        shape = (n,) if field.scalar else (n, field.size)
        if field.kind == "onehot":
            fields[field.name] = rng.integers(0, field.size, n)
        elif field.kind == "terminal":
            fields[field.name] = rng.integers(0, 2, shape).astype(np.float32)
        else:  # latents, actions and rewards in [-1, 1) ([0, 1) for ReLU latents)
            fields[field.name] = rng.uniform(0.0 if field.kind == "relu" else -1.0, 1.0, shape).astype(np.float32)
    return fields


# --- layout -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("latent_dim", [32, 64, 128, 256, 50])
@pytest.mark.parametrize("kind", ["dmc", "procgen"])
def test_layout_dims_and_pack_unpack_round_trip(latent_dim, kind):
    action_dim = 6 if kind == "dmc" else 15
    layout = dmc_layout(latent_dim, action_dim) if kind == "dmc" else procgen_layout(latent_dim, action_dim)
    assert layout.dim == (4 * latent_dim + action_dim + 1 if kind == "dmc" else 2 * latent_dim + action_dim + 2)
    fields = random_fields(layout, 5)
    for backend in (np.asarray, torch.from_numpy):
        packed = layout.pack({name: backend(value) for name, value in fields.items()})
        assert packed.shape == (5, layout.dim) and packed.dtype in (np.float32, torch.float32)
        unpacked, decoded = layout.unpack(packed), layout.decode(packed)
        assert list(unpacked) == list(layout.names)
        for name, value in fields.items():
            if name == "action" and layout.discrete:  # packed one-hot, decoded back to the integer
                np.testing.assert_array_equal(np.asarray(unpacked[name]), np.eye(action_dim)[value])
            else:
                np.testing.assert_array_equal(np.asarray(unpacked[name]), value)
            np.testing.assert_array_equal(np.asarray(decoded[name]), value)  # real rows decode to themselves
        assert layout.pack(unpacked).tolist() == packed.tolist()  # pack(unpack(x)) == x, one-hot given as is
    if kind == "dmc":
        assert layout.dim == {32: 135, 64: 263, 128: 519, 256: 1031, 50: 207}[latent_dim]  # 4F + A + 1 with A = 6
        assert layout.skip_norm_dims == () and not layout.discrete
    else:
        assert layout.skip_norm_dims == (layout.dim - 1,) and layout.discrete


def test_paper_dimensions():
    assert dmc_layout(50, 6).dim == 207 and dmc_layout(50, 21).dim == 222  # walker/cheetah, humanoid
    assert procgen_layout(256, 15).dim == 529
    assert dmc_layout(8, 2, latents=("z_pi",)).names == ("z_pi", "action", "reward", "next_z_pi")


def test_decode_clips_argmaxes_and_thresholds():
    dmc = dmc_layout(2, 2)
    row = torch.tensor([[1.5, -0.2, -3.0, 0.4, 2.0, 0.7, 9.0, -0.5, 0.5, -1.2, 5.0]])
    decoded = dmc.decode(row)
    assert decoded["z_pi"].tolist() == [[1.0, pytest.approx(-0.2)]]
    assert decoded["z_q"].tolist() == [[-1.0, pytest.approx(0.4)]]
    assert decoded["action"].tolist() == [[1.0, pytest.approx(0.7)]]
    assert decoded["reward"].tolist() == [9.0]  # rewards are not clipped
    assert decoded["next_z_q"].tolist() == [[-1.0, 1.0]]
    procgen = procgen_layout(3, 15)
    samples = torch.randn(200, procgen.dim, generator=torch.Generator().manual_seed(0)) * 2
    decoded = procgen.decode(samples)
    assert decoded["action"].dtype == torch.int64 and ((decoded["action"] >= 0) & (decoded["action"] < 15)).all()
    assert decoded["action"].tolist() == samples[:, 3:18].argmax(1).tolist()
    assert set(decoded["done"].unique().tolist()) == {0.0, 1.0}
    assert decoded["done"].tolist() == (samples[:, -1] > 0.5).float().tolist()
    assert (decoded["z_q"] >= 0).all() and (decoded["next_z_q"] >= 0).all()  # ReLU latents
    numpy_decoded = procgen.decode(samples.numpy())
    assert numpy_decoded["action"].dtype == np.int64 and numpy_decoded["done"].dtype == np.float32
    np.testing.assert_array_equal(numpy_decoded["action"], decoded["action"].numpy())


def test_layout_json_round_trip_and_validation():
    for layout in (dmc_layout(50, 6, discount=0.99**3), procgen_layout(256), dmc_layout(8, 2, latents=("z_pi",))):
        assert LatentLayout.from_dict(json.loads(json.dumps(layout.to_dict()))) == layout
    with pytest.raises(ValueError, match="unknown kind"):
        Field("z", 3, "sigmoid")
    with pytest.raises(ValueError, match="size"):
        Field("reward", 2, "scalar")
    with pytest.raises(ValueError, match="unique"):
        LatentLayout((Field("z", 2, "tanh"), Field("z", 2, "tanh")))
    layout = dmc_layout(4, 2)
    fields = random_fields(layout, 3)
    with pytest.raises(KeyError, match="next_z_q"):
        layout.pack({k: v for k, v in fields.items() if k != "next_z_q"})
    with pytest.raises(ValueError, match="columns"):
        layout.pack({**fields, "action": np.zeros((3, 3), np.float32)})
    with pytest.raises(ValueError, match="latent transitions"):
        layout.unpack(np.zeros((3, layout.dim + 1)))


def test_each_agent_declares_the_layout_of_its_latents():
    agents = {"drqbc": DrQBC((9, SIZE, SIZE), ACTIONS, **TINY), "bc": BC((9, SIZE, SIZE), ACTIONS, **TINY),
              "cql": DiscreteCQL((3, PROCGEN_SIZE, PROCGEN_SIZE), **TINY_CQL)}
    assert agents["drqbc"].latent_layout(0.5) == dmc_layout(8, ACTIONS, discount=0.5)
    assert agents["bc"].latent_layout().names == ("z_pi", "action", "reward", "next_z_pi")
    assert agents["cql"].latent_layout() == procgen_layout(16, 15)
    for agent in agents.values():  # the declared widths are those `latents` returns
        latents = agent.latents(torch.zeros(2, *agent.hparams.obs_shape))
        layout = agent.latent_layout()
        assert {name: z.shape[1] for name, z in latents.items()} == {
            f.name: f.size for f in layout.fields if f.name in latents}
        assert {f.name for f in layout.fields if f.kind in ("tanh", "relu")} == {*latents, *(f"next_{n}" for n in latents)}


# --- extraction ---------------------------------------------------------------------------------------------
def stacked(store: FrameStore, rows: list[int]) -> torch.Tensor:
    """The stacked observation of frames `rows` (oldest first), built by hand."""
    return torch.from_numpy(np.concatenate([store.frames[r] for r in rows]))[None]


@pytest.fixture
def dmc_data(tmp_path):
    episodes = [make_episode(7, start_value=0, action_dim=ACTIONS, size=SIZE, seed=1),
                make_episode(6, start_value=100, action_dim=ACTIONS, size=SIZE, seed=2)]
    store = FrameStore.build(episodes, tmp_path / "store")
    return store, TransitionDataset([(store, valid_rows(store, 3))], STACK, nstep=3, gamma=GAMMA)


def test_extraction_matches_hand_computed_latents(dmc_data):
    store, dataset = dmc_data
    agent = DrQBC((3 * STACK, SIZE, SIZE), ACTIONS, **TINY).train()
    weights = {k: v.clone() for k, v in agent.state_dict().items()}
    array, layout = extract_latents(agent, dataset, batch_size=3, progress=False)
    assert array.shape == (len(dataset), 4 * 8 + ACTIONS + 1) and array.dtype == np.float32
    assert layout == dmc_layout(8, ACTIONS, discount=GAMMA**3)
    assert agent.training and all(torch.equal(v, weights[k]) for k, v in agent.state_dict().items())
    fields = layout.unpack(array)
    # Items 0, 1 -> rows 0, 1 of episode 0 (rows 0..6); items 4, 5 -> rows 7, 8 of episode 1 (rows 7..12).
    # obs repeats the episode's first frame; next obs is the stack ending at t + n.
    cases = [(0, 0, [0, 0, 0], [1, 2, 3]), (1, 1, [0, 0, 1], [2, 3, 4]), (4, 7, [7, 7, 7], [8, 9, 10]),
             (5, 8, [7, 7, 8], [9, 10, 11])]
    for item, row, obs_rows, next_rows in cases:
        z, next_z = agent.latents(stacked(store, obs_rows)), agent.latents(stacked(store, next_rows))
        for name in ("z_pi", "z_q"):
            torch.testing.assert_close(torch.from_numpy(fields[name][item]), z[name][0])
            torch.testing.assert_close(torch.from_numpy(fields[f"next_{name}"][item]), next_z[name][0])
        reward = sum(GAMMA**k * store.reward[row + 1 + k] for k in range(3))  # n-step: r_{t+1} .. r_{t+3}
        assert fields["reward"][item] == pytest.approx(reward, rel=1e-6)
        np.testing.assert_array_equal(fields["action"][item], store.action[row + 1])


def test_extraction_refuses_continuous_terminals(tmp_path):
    store = FrameStore.build([make_episode(8, action_dim=ACTIONS, size=SIZE, terminal=True)], tmp_path / "store")
    dataset = TransitionDataset([(store, valid_rows(store, 3))], STACK, nstep=3, gamma=GAMMA)
    with pytest.raises(ValueError, match="no terminals"):
        extract_latents(DrQBC((3 * STACK, SIZE, SIZE), ACTIONS, **TINY), dataset, progress=False)


def test_augmented_views_change_latents_and_share_parameters(tmp_path):
    # Every frame of the episode is the same noise image, so obs == next_obs for every transition: with one
    # parameter draw shared by s and s', an augmented view must give z' == z exactly.
    image = np.random.default_rng(0).integers(0, 256, (1, 3, SIZE, SIZE), dtype=np.uint8)
    episode = Episode(frames=np.repeat(image, 8, axis=0), action=np.zeros((8, ACTIONS), np.float32),
                      reward=np.ones(8, np.float32), discount=np.ones(8, np.float32))
    store = FrameStore.build([episode], tmp_path / "store")
    dataset = TransitionDataset([(store, valid_rows(store, 1))], STACK, nstep=1, gamma=GAMMA)
    agent = DrQBC((3 * STACK, SIZE, SIZE), ACTIONS, **TINY)
    ops = {"jitter": ColorJitter(), "rotation": Rotation("continuous", max_degrees=30.0)}
    augmentation = PixelAugmentation(ops, p=1.0)
    array, layout = extract_latents(agent, dataset, batch_size=4, augmentation=augmentation, views=2, seed=3,
                                    progress=False)
    num = len(dataset)
    assert array.shape == (3 * num, layout.dim)
    fields = layout.unpack(array)
    original, views = fields["z_q"][:num], fields["z_q"][num:]
    np.testing.assert_array_equal(fields["z_q"], fields["next_z_q"])  # s and s' shared each draw
    np.testing.assert_array_equal(fields["z_pi"], fields["next_z_pi"])
    assert np.allclose(original, original[0])  # identical transitions before augmentation
    assert (np.abs(views - original[0]).max(axis=1) > 1e-4).all()  # augmentation changed every latent
    assert len(np.unique(views.round(5), axis=0)) == 2 * num  # ... with its own draw per transition and view
    np.testing.assert_array_equal(fields["reward"][num:], np.tile(fields["reward"][:num], 2))  # labels are copied
    again, _ = extract_latents(agent, dataset, batch_size=4, augmentation=augmentation, views=2, seed=3,
                               progress=False)
    other, _ = extract_latents(agent, dataset, batch_size=4, augmentation=augmentation, views=2, seed=4,
                               progress=False)
    np.testing.assert_array_equal(again, array)
    assert not np.array_equal(other[num:], array[num:])
    with pytest.raises(ValueError, match="augmentation"):
        extract_latents(agent, dataset, views=1)


def test_procgen_extraction_one_hot_actions_and_terminals(tmp_path):
    episodes = [make_episode(4, start_value=10, discrete=True, terminal=True, size=PROCGEN_SIZE, seed=3),
                make_episode(5, start_value=50, discrete=True, size=PROCGEN_SIZE, seed=4)]
    store = FrameStore.build(episodes, tmp_path / "store")
    dataset = TransitionDataset([(store, valid_rows(store, 1))], 1, nstep=1, gamma=0.99)
    agent = DiscreteCQL((3, PROCGEN_SIZE, PROCGEN_SIZE), **TINY_CQL)
    augmentation = PixelAugmentation({"jitter": ColorJitter()}, p=1.0)
    array, layout = extract_latents(agent, dataset, batch_size=4, augmentation=augmentation, views=1,
                                    progress=False)
    assert layout == procgen_layout(16, 15, discount=0.99) and array.shape == (2 * len(dataset), 2 * 16 + 17)
    decoded = layout.decode(array)
    batch = dataset.__getitems__(range(len(dataset)))
    np.testing.assert_array_equal(decoded["action"], np.tile(batch.action.numpy(), 2))
    np.testing.assert_array_equal(decoded["done"], np.tile(batch.done.numpy(), 2))
    assert decoded["done"].tolist()[:7] == [0, 0, 1, 0, 0, 0, 0]
    # A terminal's next obs is all zeros, also in the augmented view: its latent is the constant ReLU(fc(conv(0))).
    zero_latent = agent.latents(torch.zeros(1, 3, PROCGEN_SIZE, PROCGEN_SIZE))["z_q"][0].numpy()
    for row in (2, len(dataset) + 2):
        np.testing.assert_allclose(decoded["next_z_q"][row], zero_latent, rtol=1e-5, atol=1e-6)


def test_save_and_load_latents(tmp_path):
    layout = procgen_layout(4, 15, discount=0.99)
    array = layout.pack(random_fields(layout, 10))
    save_latents(tmp_path / "latents", array, layout)
    assert sorted(p.name for p in (tmp_path / "latents").iterdir()) == [LATENTS_FILE, "layout.json"]  # no temp files
    loaded, loaded_layout = load_latents(tmp_path / "latents")
    assert loaded_layout == layout and isinstance(loaded, np.memmap)
    np.testing.assert_array_equal(loaded, array)
    with pytest.raises(ValueError, match="latent transitions"):
        save_latents(tmp_path / "bad", array[:, 1:], layout)
    with pytest.raises(FileNotFoundError, match="latents"):
        load_latents(tmp_path / "missing")


# --- datamodules ----------------------------------------------------------------------------------------------
def test_latent_datamodule_normalizer_and_loaders(tmp_path):
    layout = procgen_layout(3, 15)
    rng = np.random.default_rng(0)
    array = layout.pack(random_fields(layout, 400)) * rng.uniform(0.5, 4, layout.dim).astype(np.float32) + 2
    save_latents(tmp_path, array, layout)
    dm = LatentDataModule(tmp_path, batch_size=32, val_fraction=0.1, seed=1)
    dm.setup("fit")
    assert dm.layout == layout
    train_rows, val_rows = dm.train_set.rows, dm.val_set.rows
    assert len(val_rows) == 40 and sorted(np.concatenate([train_rows, val_rows]).tolist()) == list(range(400))
    train = array[train_rows].astype(np.float64)
    expected_mean, expected_std = train.mean(0), train.std(0, ddof=1) + 1e-5
    expected_mean[-1], expected_std[-1] = 0.0, 1.0  # the terminal flag is left unnormalized
    np.testing.assert_allclose(dm.normalizer.mean.numpy(), expected_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dm.normalizer.std.numpy(), expected_std, rtol=1e-5)
    per_epoch = 360 // 32
    batches = list(itertools.islice(dm.train_dataloader(), 2 * per_epoch))  # an endless stream
    assert all(b.shape == (32, layout.dim) and b.dtype == torch.float32 for b in batches)
    epoch = torch.cat(batches[:per_epoch])
    assert len(torch.unique(epoch, dim=0)) == per_epoch * 32  # without replacement within an epoch
    assert not torch.equal(batches[0], batches[per_epoch])  # a new epoch, a new order
    again = LatentDataModule(array, layout, batch_size=32, val_fraction=0.1, seed=1)
    again.setup("fit")
    assert all(torch.equal(a, b) for a, b in zip(batches, again.train_dataloader()))  # seeded shuffle
    np.testing.assert_array_equal(torch.cat(list(dm.val_dataloader())).numpy(), array[val_rows])
    with pytest.raises(ValueError, match="layout"):
        LatentDataModule(array)


def test_latent_datamodule_batch_size_follows_synther():
    assert default_batch_size(799_999) == 256 and default_batch_size(800_000) == 1024
    layout = dmc_layout(1, 1)
    small = LatentDataModule(np.zeros((300, layout.dim), np.float32), layout, val_fraction=0.0)
    large = LatentDataModule(np.random.default_rng(0).random((800_000, layout.dim), np.float32), layout)
    small.setup()
    large.setup()
    assert (small.batch_size, large.batch_size) == (256, 1024)
    assert small.val_dataloader() == []


def upsample_arrays(dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Real rows in [0, 1) and synthetic rows in [10, 11), so every row says where it came from."""
    rng = np.random.default_rng(0)
    return rng.random((50, dim), np.float32), 10 + rng.random((80, dim), np.float32)


@pytest.mark.parametrize(("ratio", "num_synthetic"), [(0.0, 0), (0.25, 2), (0.5, 5), (0.75, 8), (1.0, 10)])
def test_upsampled_batches_mix_exactly(ratio, num_synthetic):
    layout = dmc_layout(2, 1)
    real, synthetic = upsample_arrays(layout.dim)
    dm = UpsampledDataModule(real if ratio < 1 else None, synthetic if ratio > 0 else None, layout,
                             batch_size=10, synthetic_ratio=ratio, seed=0)
    stream = iter(dm.train_dataloader())
    for _ in range(20):
        batch = next(stream)
        assert batch.shape == (10, layout.dim) and batch.dtype == torch.float32
        assert int((batch[:, 0] >= 10).sum()) == num_synthetic
    assert (dm.num_real, dm.num_synthetic) == (10 - num_synthetic, num_synthetic)


def test_upsampled_batches_are_seeded_and_uniform():
    layout = dmc_layout(2, 1)
    real, synthetic = upsample_arrays(layout.dim)

    def draws(seed: int, count: int = 200) -> torch.Tensor:
        stream = iter(UpsampledDataModule(real, synthetic, layout, batch_size=16, seed=seed).train_dataloader())
        return torch.stack([next(stream) for _ in range(count)])

    first = draws(0)
    assert torch.equal(first, draws(0)) and not torch.equal(first, draws(1))
    synthetic_rows = first[:, 8:].reshape(-1, layout.dim)
    seen = {tuple(row) for row in synthetic_rows.tolist()}
    assert len(seen) == len(synthetic)  # 1600 uniform draws with replacement reach every synthetic row
    with pytest.raises(ValueError, match="synthetic"):
        UpsampledDataModule(real, None, layout, synthetic_ratio=0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        UpsampledDataModule(real, synthetic, layout, synthetic_ratio=1.5)
    with pytest.raises(ValueError, match="shape"):
        UpsampledDataModule(real[:, 1:], synthetic, layout)


def test_upsampled_stream_resumes_where_an_uninterrupted_one_is():
    layout = dmc_layout(2, 1)
    real, synthetic = upsample_arrays(layout.dim)
    whole = list(itertools.islice(MixedBatches(real, synthetic, 6, 4, seed=5, chunk=8), 40))
    assert len({tuple(batch.flatten().tolist()) for batch in whole}) == 40  # every batch drawn afresh
    for start in (3, 8, 21):  # inside a chunk, at its start, and some chunks on
        resumed = list(itertools.islice(MixedBatches(real, synthetic, 6, 4, seed=5, start=start, chunk=8),
                                        40 - start))
        assert all(torch.equal(a, b) for a, b in zip(resumed, whole[start:], strict=True))
    other_rank = list(itertools.islice(MixedBatches(real, synthetic, 6, 4, seed=5, rank=1, chunk=8), 40))
    assert not any(torch.equal(a, b) for a, b in zip(other_rank, whole))


def test_the_latents_stage_augments_every_transition_of_a_view(tmp_path):
    from synthvis.stages.latents import view_augmentation
    from tests.helpers import compose_config

    cfg = compose_config(["variant=aug_upsampled", "augment=paper"], tmp_path)
    assert cfg.augment.p == 0.5 and cfg.latents.view_p == 1.0  # training batches mix; views do not
    augmentation = view_augmentation(cfg)
    assert augmentation.p == 1.0
    augmentation.seed(0)
    obs = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (64, 9, 32, 32), dtype=np.uint8))
    batch = ContinuousBatch(obs, torch.zeros(64, 2), torch.zeros(64), torch.ones(64), obs.clone())
    augmented = augmentation(batch)
    changed = (augmented.obs != obs).flatten(1).any(dim=1)
    assert changed.all(), f"{int((~changed).sum())} of 64 view transitions are exact copies"
