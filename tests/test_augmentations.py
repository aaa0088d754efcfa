"""Pixel augmentations: value ranges, parameter sharing (frames, s / s'), seeding, op semantics, device of draws."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from synthvis.core.batches import ContinuousBatch, DiscreteBatch
from synthvis.datamodules.augmentations import (
    BackgroundOverlay,
    ColorCutout,
    ColorJitter,
    Grayscale,
    PixelAugmentation,
    RandomShift,
    Rotation,
    SeededGenerators,
    augmentation_grid,
    make_augmentation,
)
from synthvis.datamodules.augmentations import generators as generators_module
from tests.helpers import CONF_DIR

SIZE, STACK, BATCH = 16, 3, 8

OPS = {
    "rot90": lambda: Rotation("rot90"),
    "rotation_continuous": lambda: Rotation("continuous", max_degrees=45.0),
    "color_jitter": ColorJitter,
    "color_cutout": ColorCutout,
    "background_overlay": lambda: BackgroundOverlay(count=8),
    "grayscale": Grayscale,
}
PARAMETERISED_OPS = [name for name in OPS if name != "grayscale"]


def random_obs(batch: int = BATCH, size: int = SIZE, seed: int = 0) -> torch.Tensor:
    """(batch, 3·STACK, size, size) uint8 noise."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, 3 * STACK, size, size), generator=generator, dtype=torch.uint8)


def continuous_batch(obs: torch.Tensor, next_obs: torch.Tensor | None = None) -> ContinuousBatch:
    """A ContinuousBatch around the given pixels."""
    n = len(obs)
    next_obs = random_obs(n, obs.shape[-1], seed=1).to(obs.dtype) if next_obs is None else next_obs
    return ContinuousBatch(obs, torch.randn(n, 2), torch.rand(n), torch.ones(n), next_obs)


def single(name: str, p: float = 1.0, seed: int = 0) -> PixelAugmentation:
    """The composite running one op."""
    return PixelAugmentation({name: OPS[name]()}, p=p, seed=seed)


def all_ops(p: float = 1.0, seed: int = 0) -> PixelAugmentation:
    """The composite over every op."""
    return PixelAugmentation({name: make() for name, make in OPS.items()}, p=p, seed=seed)


def frames(obs: torch.Tensor) -> torch.Tensor:
    """(B, 3k, H, W) -> (B, k, 3, H, W)."""
    return obs.view(len(obs), -1, 3, *obs.shape[-2:])


@pytest.mark.parametrize("name", OPS)
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_op_keeps_shape_dtype_and_range(name, dtype):
    batch = continuous_batch(random_obs().to(dtype))
    out = single(name)(batch)
    for before, after in ((batch.obs, out.obs), (batch.next_obs, out.next_obs)):
        assert after.shape == before.shape and after.dtype == dtype
        assert after.min() >= 0 and after.max() <= 255
    assert out.action is batch.action and out.reward is batch.reward and out.discount is batch.discount


@pytest.mark.parametrize("name", OPS)
def test_parameters_shared_by_stacked_frames_and_by_obs_and_next_obs(name):
    newest = random_obs()[:, :3]
    obs = newest.repeat(1, STACK, 1, 1)  # k identical frames per transition
    out = single(name)(continuous_batch(obs, obs.clone()))
    assert torch.equal(out.obs, out.next_obs)
    stacked = frames(out.obs)
    assert all(torch.equal(stacked[:, 0], stacked[:, i]) for i in range(1, STACK))


@pytest.mark.parametrize("name", PARAMETERISED_OPS)
def test_parameters_differ_across_transitions_and_seeds(name):
    obs = random_obs(1).repeat(BATCH, 1, 1, 1)  # the same transition B times
    batch = continuous_batch(obs, obs.clone())
    out = single(name, seed=0)(batch).obs
    assert any(not torch.equal(out[0], out[i]) for i in range(1, BATCH))
    assert torch.equal(single(name, seed=0)(batch).obs, out)
    assert not torch.equal(single(name, seed=1)(batch).obs, out)


def test_seed_method_and_explicit_generator_reproduce_the_stream():
    batch = continuous_batch(random_obs())
    augmentation = all_ops(p=0.7, seed=5)
    first = augmentation(batch).obs
    assert not torch.equal(augmentation(batch).obs, first)  # the stream moves on
    augmentation.seed(5)
    assert torch.equal(augmentation(batch).obs, first)
    generator = torch.Generator().manual_seed(5)
    assert torch.equal(all_ops(p=0.7, seed=99)(batch, generator=generator).obs, first)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_p_zero_is_the_identity(dtype):
    obs = random_obs().to(dtype) + (0.25 if dtype.is_floating_point else 0)
    out = all_ops(p=0.0)(DiscreteBatch(obs, torch.zeros(BATCH, dtype=torch.long), torch.zeros(BATCH), obs + 1,
                                       torch.zeros(BATCH)))
    assert torch.equal(out.obs, obs) and torch.equal(out.next_obs, obs + 1)
    assert make_augmentation({"rotation": Rotation()}, p=0.0) is None
    assert make_augmentation({"rotation": None}, p=0.5) is None
    with pytest.raises(ValueError, match="at least one op"):
        PixelAugmentation({"rotation": None})


def test_p_one_changes_every_transition_and_p_half_about_half():
    batch = continuous_batch(random_obs(64))
    out = all_ops(p=1.0)(batch)
    assert (out.obs != batch.obs).flatten(1).any(1).all()
    assert (out.next_obs != batch.next_obs).flatten(1).any(1).all()
    batch = continuous_batch(random_obs(1000, size=8))
    changed = (all_ops(p=0.5)(batch).obs != batch.obs).flatten(1).any(1).float().mean()
    assert 0.44 < changed < 0.56


def test_untouched_transitions_stay_bit_exact_on_float_input():
    obs = random_obs(200).float() / 3  # fractional values would not survive a /255 * 255 round trip unguarded
    out = all_ops(p=0.5)(continuous_batch(obs)).obs
    kept = (out == obs).flatten(1).all(1)
    assert 0 < kept.sum() < len(obs)


def test_rot90_is_an_exact_quarter_turn():
    batch = continuous_batch(random_obs())
    out = PixelAugmentation({"rotation": Rotation(quarter_turns=[1])}, p=1.0)(batch)
    assert torch.equal(out.obs, torch.rot90(batch.obs, 1, dims=(-2, -1)))
    assert torch.equal(out.next_obs, torch.rot90(batch.next_obs, 1, dims=(-2, -1)))
    out = PixelAugmentation({"rotation": Rotation()}, p=1.0)(batch).obs
    left, right = (torch.rot90(batch.obs, k, dims=(-2, -1)) for k in (1, -1))
    is_left, is_right = ((out == turned).flatten(1).all(1) for turned in (left, right))
    assert (is_left ^ is_right).all() and is_left.any() and is_right.any()
    with pytest.raises(ValueError, match="square"):
        Rotation()(torch.rand(1, 2, 3, 8, 10), torch.Generator())


def test_continuous_rotation_fills_corners_with_black():
    obs = torch.full((BATCH, 3 * STACK, SIZE, SIZE), 200, dtype=torch.uint8)
    out = PixelAugmentation({"rotation": Rotation("continuous", max_degrees=90.0)}, p=1.0)(
        continuous_batch(obs)).obs
    corner_darker = out[:, :, 0, 0].float() < 200
    assert corner_darker.any() and torch.equal(out[:, :, SIZE // 2, SIZE // 2], obs[:, :, SIZE // 2, SIZE // 2])


def test_cutout_paints_one_box_with_one_colour_per_transition():
    size = 84
    obs = torch.full((64, 3 * STACK, size, size), 7, dtype=torch.uint8)  # no drawn colour can match it on 3 channels
    batch = continuous_batch(obs, obs.clone())
    out = single("color_cutout")(batch)
    changed = (frames(out.obs) != 7).any(2)  # (B, k, H, W)
    assert torch.equal(out.obs, out.next_obs) and (changed == changed[:, :1]).all()
    colours = set()
    for i in range(len(obs)):
        rows, cols = changed[i, 0].any(1).nonzero()[:, 0], changed[i, 0].any(0).nonzero()[:, 0]
        for span in (rows, cols):  # RAD: offset = size = s, s in 10..29 at 84 px
            start = int(span[0])
            assert 10 <= start < 30 and torch.equal(span, torch.arange(start, 2 * start))
        box = frames(out.obs)[i][:, :, rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        colour = box[0, :, 0, 0]
        assert (box == colour.view(1, 3, 1, 1)).all()
        colours.add(tuple(colour.tolist()))
    assert len(colours) > 1
    assert ColorCutout().span(torch.Generator(), 100, 42).sum(1).max() <= 15  # scaled to 42 px: 5..14


def test_overlay_alpha_zero_is_identity_and_alpha_one_is_a_texture():
    batch = continuous_batch(random_obs())
    out = PixelAugmentation({"overlay": BackgroundOverlay(alpha=0.0, count=4)}, p=1.0)(batch)
    assert torch.equal(out.obs, batch.obs) and torch.equal(out.next_obs, batch.next_obs)
    overlay = BackgroundOverlay(alpha=1.0, count=4)
    out = PixelAugmentation({"overlay": overlay}, p=1.0, seed=0)(batch)
    bank = overlay.bank(SIZE, SIZE, batch.obs.device)
    assert bank.dtype == torch.uint8 and bank.shape == (4, 3, SIZE, SIZE)
    for stack in torch.cat([frames(out.obs), frames(out.next_obs)], 1):
        assert any((stack == texture).all() for texture in bank)
    float_out = PixelAugmentation({"overlay": overlay}, p=1.0, seed=0)(continuous_batch(batch.obs.float()))
    assert torch.allclose(float_out.obs, out.obs.float(), atol=1e-3)


def test_overlay_reads_an_image_folder(tmp_path):
    colours = [(255, 0, 0), (0, 0, 255)]
    for i, colour in enumerate(colours):
        Image.new("RGB", (40, 30), colour).save(tmp_path / f"{i}.png")
    overlay = BackgroundOverlay(alpha=1.0, source="image_folder", path=tmp_path)
    out = PixelAugmentation({"overlay": overlay}, p=1.0)(continuous_batch(random_obs()))
    pixels = {tuple(frame[:, 0, 0].tolist()) for frame in frames(out.obs).flatten(0, 1)}
    assert pixels <= set(colours) and len(overlay.bank(SIZE, SIZE, torch.device("cpu"))) == 2
    with pytest.raises(ValueError, match="path"):
        BackgroundOverlay(source="image_folder")


def test_random_shift_is_an_integer_translation_of_the_padded_image():
    pad = 4
    obs = random_obs(4)
    shift = RandomShift(pad, seed=0)
    out = shift(obs)
    assert out.dtype == torch.float32 and out.shape == obs.shape
    padded = F.pad(obs.float(), (pad,) * 4, mode="replicate")
    offsets = []
    for sample, image in zip(padded, out):
        matches = [(dx, dy) for dx in range(2 * pad + 1) for dy in range(2 * pad + 1)
                   if torch.allclose(image, sample[:, dy:dy + SIZE, dx:dx + SIZE], atol=1e-3)]
        assert len(matches) == 1
        offsets.append(matches[0])
    assert len(set(offsets)) > 1
    shift.seed(0)
    assert torch.equal(shift(obs.float()), out)  # uint8 and float [0, 255] input agree
    assert not torch.equal(shift(obs), shift(obs))  # obs and next_obs get independent shifts


def test_parameters_are_drawn_on_the_batch_device_with_an_owned_generator(monkeypatch):
    created = []
    cpu_generator = torch.Generator

    def recording_generator(device):
        created.append(torch.device(device))
        return cpu_generator()  # no accelerator here: record the request, hand back a CPU generator

    monkeypatch.setattr(generators_module.torch, "Generator", recording_generator)
    generators = SeededGenerators(seed=3)
    assert generators(torch.device("cuda", 1)) is generators(torch.device("cuda", 1))
    assert created == [torch.device("cuda", 1)]
    monkeypatch.undo()

    # Every random draw of every op and of RandomShift names a generator on the pixels' device: none falls
    # back to the global RNG, and none is made on another device and copied.
    batch = continuous_batch(random_obs())
    draws = []
    for function in ("rand", "randint", "randn", "randperm"):
        original = getattr(torch, function)

        def spy(*args, _original=original, **kwargs):
            draws.append((kwargs.get("generator"), kwargs.get("device")))
            return _original(*args, **kwargs)

        monkeypatch.setattr(torch, function, spy)
    augmentation = all_ops(p=0.9)
    augmentation(batch)
    RandomShift(seed=0)(batch.obs)
    assert draws
    for generator, device in draws:
        assert generator is not None and torch.device(device) == batch.obs.device == generator.device
    assert any(generator is augmentation.generators(batch.obs.device) for generator, _ in draws)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_batch_stays_on_cuda():
    batch = ContinuousBatch(*(field.cuda() for field in continuous_batch(random_obs())))
    augmentation = all_ops(p=1.0)
    out = augmentation(batch)
    assert out.obs.is_cuda and out.next_obs.is_cuda and out.obs.dtype == torch.uint8
    assert augmentation.generators(batch.obs.device).device.type == "cuda"
    assert RandomShift(seed=0)(batch.obs).is_cuda


def test_augmentation_grid_shape():
    batch = continuous_batch(random_obs())
    grid = augmentation_grid(batch, all_ops(p=1.0), n=5)
    assert grid.dtype == torch.uint8 and grid.shape == (3, 2 * (SIZE + 2), 5 * (SIZE + 2))
    assert torch.equal(grid[:, 1:SIZE + 1, 1:SIZE + 1], batch.obs[0, -3:])
    assert augmentation_grid(batch, all_ops(), n=50).shape[-1] == BATCH * (SIZE + 2)


@pytest.mark.parametrize("name", ["none", "paper", "all"])
def test_augment_configs_instantiate(name):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR / "augment"), version_base="1.3"):
        group = compose(config_name=name)
    augmentation = instantiate(OmegaConf.create({"seed": 3, "augment": group}).augment)  # ${seed} lives at the root
    expected = {"none": None, "paper": ["rotation", "color_jitter", "color_cutout", "background_overlay"]}
    expected["all"] = [*expected["paper"], "grayscale"]
    if expected[name] is None:
        assert augmentation is None
    else:
        assert list(augmentation.ops) == expected[name] and augmentation.p == 0.5
        out = augmentation(continuous_batch(random_obs()))
        assert out.obs.dtype == torch.uint8


def test_augmentation_survives_a_process_spawn_and_restarts_its_stream():
    import pickle

    from synthvis.datamodules.augmentations import SeededGenerators

    generators = SeededGenerators(seed=5)
    first = torch.rand(3, generator=generators(torch.device("cpu")))
    clone = pickle.loads(pickle.dumps(generators))  # what DDP spawn and DataLoader workers do
    torch.testing.assert_close(torch.rand(3, generator=clone(torch.device("cpu"))), first)


def test_a_callers_generator_alone_decides_the_augmentation():
    batch = continuous_batch(random_obs())

    def augmented(own_seed: int, generator_seed: int) -> torch.Tensor:
        augmentation = all_ops(p=0.7, seed=own_seed)
        augmentation(batch)  # advances its own streams; the caller's generator must not care
        return augmentation.augment(batch.obs, batch.next_obs, torch.Generator().manual_seed(generator_seed))[0]

    assert torch.equal(augmented(1, 5), augmented(2, 5))
    assert not torch.equal(augmented(1, 5), augmented(1, 6))
