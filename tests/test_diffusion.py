"""EDM math against hand-computed values, SynthER's denoiser size and EMA warm-up, and a small diffusion model
trained with a real Trainer that samples a known 2-D mixture (plus a terminal flag) with both samplers."""

from __future__ import annotations

import functools
import math

import lightning as L
import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import open_dict
from torch.utils.data import BatchSampler, DataLoader, RandomSampler

from synthvis.core.normalizer import StandardNormalizer
from synthvis.lightning_modules.components.residual_mlp import ResidualMLPDenoiser
from synthvis.lightning_modules.diffusion.edm import (
    c_in,
    c_noise,
    c_out,
    c_skip,
    edm_loss,
    karras_sigmas,
    loss_weight,
    precondition,
    sample_training_sigma,
)
from synthvis.lightning_modules.diffusion.samplers import HeunODE, KarrasSDE, churn_gammas
from synthvis.lightning_modules.latent_diffusion import LatentDiffusion
from tests.helpers import compose_config

# sigma, c_skip, c_out, c_in, c_noise, lambda for sigma_data = 1 (by hand: 1/(s^2+1), s/sqrt(s^2+1), ...)
HAND_COMPUTED = [
    (0.5, 0.8, 0.5 / math.sqrt(1.25), 1 / math.sqrt(1.25), math.log(0.5) / 4, 5.0),
    (1.0, 0.5, 1 / math.sqrt(2), 1 / math.sqrt(2), 0.0, 2.0),
    (2.0, 0.2, 2 / math.sqrt(5), 1 / math.sqrt(5), math.log(2) / 4, 1.25),
]


@pytest.mark.parametrize(("sigma", "skip", "out", "inp", "noise", "weight"), HAND_COMPUTED)
def test_preconditioning_and_loss_weight(sigma, skip, out, inp, noise, weight):
    s = torch.tensor(sigma, dtype=torch.float64)
    values = (c_skip(s, 1.0), c_out(s, 1.0), c_in(s, 1.0), c_noise(s), loss_weight(s, 1.0))
    for value, expected in zip(values, (skip, out, inp, noise, weight), strict=True):
        assert value.item() == pytest.approx(expected, abs=1e-12)
    assert (loss_weight(s, 1.0) * c_out(s, 1.0) ** 2).item() == pytest.approx(1.0)  # unit effective weight

    seen = {}

    def net(x_in, t):
        seen.update(x_in=x_in, t=t)
        return torch.ones_like(x_in)

    x = torch.tensor([[1.0, -2.0]], dtype=torch.float64)
    denoised = precondition(net, x, sigma, sigma_data=1.0)  # eq. 7 with F = 1
    torch.testing.assert_close(denoised, skip * x + out)
    torch.testing.assert_close(seen["x_in"], inp * x)
    assert seen["t"].item() == pytest.approx(noise)


def test_edm_loss_matches_its_definition():
    net = ResidualMLPDenoiser(5, width=16, depth=1)
    x0 = torch.randn(64, 5)
    loss = edm_loss(net, x0, 1.0, -1.2, 1.2, torch.Generator().manual_seed(3))
    generator = torch.Generator().manual_seed(3)  # the same draws, in the same order
    sigma = (-1.2 + 1.2 * torch.randn(64, generator=generator)).exp()
    noised = x0 + sigma[:, None] * torch.randn(64, 5, generator=generator)
    padded = sigma[:, None]
    network_output = net(c_in(padded, 1.0) * noised, c_noise(sigma))
    denoised = c_skip(padded, 1.0) * noised + c_out(padded, 1.0) * network_output
    expected = ((sigma**2 + 1) / sigma**2 * ((denoised - x0) ** 2).mean(1)).mean()
    torch.testing.assert_close(loss, expected)


def test_training_noise_levels_are_log_normal():
    sigma = sample_training_sigma(100_000, -1.2, 1.2, torch.Generator().manual_seed(0))
    assert sigma.log().mean().item() == pytest.approx(-1.2, abs=0.02)
    assert sigma.log().std().item() == pytest.approx(1.2, abs=0.02)


def test_karras_schedule_and_churn():
    sigmas = karras_sigmas(128, 0.002, 80.0, 7.0)
    assert sigmas.shape == (129,)
    assert sigmas[0].item() == pytest.approx(80.0)
    assert sigmas[1].item() == pytest.approx(76.62, abs=0.005)
    assert sigmas[126].item() == pytest.approx(0.00242, abs=5e-6)
    assert sigmas[127].item() == pytest.approx(0.002)
    assert sigmas[128].item() == 0.0
    assert (sigmas[:-1].diff() < 0).all()
    gammas = churn_gammas(sigmas.tolist(), s_churn=80.0, s_tmin=0.05, s_tmax=50.0)
    assert len(gammas) == 128
    assert sum(g > 0 for g in gammas) == 96  # the sigmas inside [S_tmin, S_tmax]
    assert {round(g, 12) for g in gammas} == {0.0, round(math.sqrt(2) - 1, 12)}  # 80/128 > sqrt(2) - 1
    assert KarrasSDE().nfe == 255
    assert HeunODE(num_steps=18).nfe == 35


@pytest.mark.parametrize(("d_in", "count"), [(207, 6_687_319), (135, 6_604_303), (263, 6_751_887)])
def test_synther_denoiser_parameter_count(d_in, count):
    net = ResidualMLPDenoiser(d_in, width=1024, depth=6)
    assert sum(p.numel() for p in net.parameters()) == count
    assert not net.time_mlp[0].weights.requires_grad  # random Fourier features stay fixed
    assert net(torch.randn(4, d_in), torch.randn(4)).shape == (4, d_in)


def synther_decay(step: int, beta: float = 0.995, update_every: int = 10, update_after_step: int = 100) -> float:
    """SynthER's EMA decay at update counter `step` (ema-pytorch 0.1.2, which SynthER pins), 0 = copy the weights:
    a copy through the warm-up and once more at the first update past it, then min(beta, 1 - (1 + epoch)^(-2/3))."""
    if step - update_every <= update_after_step:
        return 0.0
    return min(beta, 1.0 - (1.0 + step - update_after_step) ** (-2 / 3))


def test_the_diffusion_models_ema_follows_synthers_schedule_exactly():
    assert synther_decay(120) == 1 - 21 ** (-2 / 3) and synther_decay(2928) == 0.995 > synther_decay(2927)
    model = LatentDiffusion(3, functools.partial(ResidualMLPDenoiser, width=16, depth=1))  # SynthER's EMA settings
    online, ema = model.denoiser, model.ema.ema_model
    torch.manual_seed(0)
    for step in range(3000):
        with torch.no_grad():
            for param in online.parameters():
                if param.requires_grad:
                    param.add_(torch.randn_like(param), alpha=0.01)
        expected = [p.clone() for p in ema.parameters()]
        if step % 10 == 0:  # the float64 update a hand-written EMA does: ema + (1 - decay) (online - ema)
            for target, param in zip(expected, online.parameters()):
                target.lerp_(param, 1.0 - synther_decay(step))
        model.ema.update()
        if step % 10 == 0 or step < 12:
            for actual, target in zip(ema.parameters(), expected):
                torch.testing.assert_close(actual, target, rtol=0, atol=0)
    assert int(model.ema.step) == 3000
    assert not any(p.requires_grad for p in ema.parameters())
    assert not any(key.startswith("ema.online") for key in model.state_dict())  # the online model is saved once


CENTERS = torch.tensor([[-2.0, -2.0], [-2.0, 2.0], [2.0, -2.0], [2.0, 2.0]])
SCALE, SHIFT = torch.tensor([10.0, 0.5]), torch.tensor([5.0, -3.0])


def mixture(n: int, seed: int) -> torch.Tensor:
    """Rows (x, y, done): 4 equal Gaussian modes (std 0.3 before scaling), a terminal flag 1 w.p. 0.3."""
    generator = torch.Generator().manual_seed(seed)
    modes = CENTERS[torch.randint(0, 4, (n,), generator=generator)]
    points = modes + 0.3 * torch.randn(n, 2, generator=generator)
    done = (torch.rand(n, 1, generator=generator) < 0.3).float()
    return torch.cat((points * SCALE + SHIFT, done), dim=1)


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, projections: int = 64) -> float:
    """Mean 1-D Wasserstein-1 distance of equal-size samples over random unit directions."""
    directions = torch.randn(a.shape[1], projections, generator=torch.Generator().manual_seed(0))
    directions /= directions.norm(dim=0)
    return ((a @ directions).sort(0).values - (b @ directions).sort(0).values).abs().mean().item()


def build_model(max_steps: int | None = None) -> LatentDiffusion:
    """A small model; the EMA warms up and averages faster than SynthER's because the run is short."""
    return LatentDiffusion(3, functools.partial(ResidualMLPDenoiser, width=128, depth=2), lr=1e-3, max_steps=max_steps,
                           ema_decay=0.99, ema_update_every=1, ema_update_after_step=10)


def row_loader(rows: torch.Tensor, batch_size: int, shuffle: bool) -> DataLoader:
    """(B, D) batches by one fancy index per batch."""
    order = RandomSampler(rows) if shuffle else range(len(rows))
    return DataLoader(rows, sampler=BatchSampler(order, batch_size, drop_last=shuffle), batch_size=None)


TRAIN_STEPS = 1200


# The small models here run fastest on one thread: OpenMP hand-offs cost more than they save at width 128.
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(model, trainer, checkpoint path) after TRAIN_STEPS updates on the mixture, with validation."""
    torch.manual_seed(0)
    model = build_model()
    train_rows = mixture(8192, seed=0)
    model.set_normalizer(StandardNormalizer.fit(train_rows, skip_dims=[2]))
    root = tmp_path_factory.mktemp("diffusion")
    checkpoint = L.pytorch.callbacks.ModelCheckpoint(dirpath=root, save_last=True)
    trainer = L.Trainer(max_steps=TRAIN_STEPS, accelerator="cpu", logger=False, callbacks=[checkpoint],
                        default_root_dir=root, enable_progress_bar=False, enable_model_summary=False,
                        check_val_every_n_epoch=None, val_check_interval=TRAIN_STEPS, num_sanity_val_steps=0)
    trainer.fit(model, row_loader(train_rows, 256, True), row_loader(mixture(1024, seed=9), 512, False))
    return model, trainer, root / "last.ckpt"


def test_training_logs_losses_and_anneals_the_lr(trained):
    model, trainer, _ = trained
    metrics = trainer.callback_metrics
    assert {"train/loss", "train/lr", "val/loss", "val/loss_ema"} <= set(metrics)
    assert metrics["val/loss_ema"].item() < 0.8  # F = 0 (D = c_skip x) scores exactly 1 on unit-variance data
    assert metrics["train/lr"].item() < 1e-6  # cosine to 0 over the Trainer's max_steps
    assert int(model.ema.step) == TRAIN_STEPS


@pytest.mark.parametrize("sampler", [KarrasSDE(), HeunODE(num_steps=18)], ids=["karras_sde", "heun"])
def test_samples_follow_the_training_distribution(trained, sampler):
    model, _, _ = trained
    samples = model.sample(4000, sampler, batch_size=2000, seed=0, progress=False)
    truth = mixture(4000, seed=1)
    scale = truth.std(0)
    torch.testing.assert_close(samples.mean(0) / scale, truth.mean(0) / scale, atol=0.1, rtol=0)
    torch.testing.assert_close(samples.std(0) / scale, torch.ones(3), atol=0.08, rtol=0)
    # Far below a moment-matched Gaussian (about 0.22 on these standardized rows; two true draws: 0.03).
    assert sliced_wasserstein(samples / scale, truth / scale) < 0.07
    nearest = torch.cdist((samples[:, :2] - SHIFT) / SCALE, CENTERS).min(1)
    assert (nearest.values < 1.0).float().mean() > 0.9  # mass sits on the modes, not between them
    torch.testing.assert_close(torch.bincount(nearest.indices, minlength=4) / 4000, torch.full((4,), 0.25),
                               atol=0.06, rtol=0)
    assert (samples[:, 2] > 0.5).float().mean().item() == pytest.approx(0.3, abs=0.06)  # unnormalized flag


def test_same_seed_same_samples_and_rank_split(trained):
    model, _, _ = trained
    sampler = HeunODE(num_steps=8)
    first = model.sample(300, sampler, batch_size=128, seed=7, progress=False)
    assert first.shape == (300, 3)
    torch.testing.assert_close(model.sample(300, sampler, batch_size=128, seed=7, progress=False), first,
                               rtol=0, atol=0)
    assert not torch.allclose(model.sample(300, sampler, batch_size=128, seed=8, progress=False), first)
    ranks = [model.sample(300, sampler, batch_size=128, seed=7, rank=rank, world_size=2, progress=False)
             for rank in (0, 1)]
    in_batch_order = torch.cat((ranks[0][:128], ranks[1][:128], ranks[0][128:]))
    torch.testing.assert_close(in_batch_order, first, rtol=0, atol=0)


def test_checkpoint_restores_normalizer_and_ema_on_cpu(trained):
    model, _, path = trained
    state = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
    assert any(key.startswith("ema.ema_model.") for key in state) and "normalizer.mean" in state
    restored = build_model()
    restored.load_state_dict(state)
    assert restored.skip_dims == [2] and restored.normalizer.skip_dims == [2]
    torch.testing.assert_close(restored.normalizer.std, model.normalizer.std, rtol=0, atol=0)
    sampler = HeunODE(num_steps=8)
    from_lightning = LatentDiffusion.load_from_checkpoint(path, map_location="cpu",
                                                          denoiser=functools.partial(ResidualMLPDenoiser, width=128, depth=2))
    expected = model.sample(256, sampler, seed=3, progress=False)
    for loaded in (restored, from_lightning):
        torch.testing.assert_close(loaded.sample(256, sampler, seed=3, progress=False), expected,
                                   rtol=0, atol=0)


def fit_two_steps(model: LatentDiffusion, root, precision: str = "32-true") -> L.Trainer:
    """Two updates with a bare Trainer (no clipping or logging settings)."""
    trainer = L.Trainer(max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=root,
                        precision=precision)
    trainer.fit(model, row_loader(mixture(64, 0), 32, True))
    return trainer


def test_unfitted_normalizer_is_refused(tmp_path):
    model = build_model(max_steps=2)
    with pytest.raises(RuntimeError, match="set_normalizer"):
        fit_two_steps(model, tmp_path)
    with pytest.raises(RuntimeError, match="no fitted normalizer"):
        model.sample(4, HeunODE(num_steps=2), progress=False)
    with pytest.raises(ValueError, match="4 dims for a 3-dim model"):
        model.set_normalizer(StandardNormalizer(4))


def test_gradients_are_clipped_at_one_without_trainer_settings(tmp_path, monkeypatch):
    model = build_model(max_steps=2)
    model.set_normalizer(StandardNormalizer.fit(mixture(64, 0)))
    calls = []
    monkeypatch.setattr(model, "clip_gradients", lambda optimizer, value, how: calls.append((value, how)))
    fit_two_steps(model, tmp_path)
    assert calls == [(1.0, "norm")] * 2


def test_mixed_precision_training_clips_gradients(tmp_path):
    # trainer=gpu trains in bf16-mixed; Lightning refuses to clip a fused optimizer's gradients there.
    model = build_model(max_steps=2)
    model.set_normalizer(StandardNormalizer.fit(mixture(64, 0)))
    trainer = fit_two_steps(model, tmp_path, precision="bf16-mixed")
    assert trainer.global_step == 2 and not trainer.optimizers[0].defaults["fused"]
    full = build_model(max_steps=2)
    full.set_normalizer(StandardNormalizer.fit(mixture(64, 0)))
    assert fit_two_steps(full, tmp_path).optimizers[0].defaults["fused"]  # fp32: one fused kernel


def test_configs_build_synthers_model_and_both_samplers(tmp_path):
    cfg = compose_config(["diffusion=resmlp", "sample=karras_sde"], tmp_path)
    with open_dict(cfg):
        cfg.diffusion.model.d_in = 207
    model = instantiate(cfg.diffusion.model)
    assert isinstance(model, LatentDiffusion)
    assert sum(p.numel() for p in model.denoiser.parameters()) == 6_687_319
    assert model.hparams.betas == [0.9, 0.99] and model.ema.update_every == 10
    assert instantiate(cfg.sample.sampler) == KarrasSDE()
    assert model.hparams.max_steps == cfg.diffusion.steps  # the cosine period follows the stage's length
    heun = instantiate(compose_config(["sample=heun"], tmp_path).sample.sampler)
    assert isinstance(heun, HeunODE) and heun.num_steps == 16


def test_the_fidelity_floor_draws_real_rows_from_the_whole_training_set():
    from synthvis.stages.sample import fidelity

    # Stored rows come in order (original views, then augmented ones): the first rows alone are not the set.
    rng = np.random.default_rng(0)
    train = np.concatenate([rng.normal(0, 1, (2000, 3)), rng.normal(3, 1, (2000, 3))]).astype(np.float32)
    held_out = train[rng.permutation(len(train))[:1000]] + rng.normal(0, 0.01, (1000, 3)).astype(np.float32)
    result = fidelity(lambda x: x, train, held_out, synthetic=train[:1000], seed=0)
    assert result["w1_real"] < 0.2 and result["w1_synthetic"] > 1.0  # a subset spans both halves; train[:1000] not
