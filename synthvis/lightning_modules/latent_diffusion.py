"""SynthER's EDM diffusion model of latent transitions as a LightningModule: train, validate, sample (EMA)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import lightning as L
import torch
from ema_pytorch import EMA
from torch import nn
from tqdm.auto import tqdm

from synthvis.core.normalizer import StandardNormalizer
from synthvis.lightning_modules.diffusion.edm import edm_loss, precondition
from synthvis.lightning_modules.diffusion.samplers import Sampler
from synthvis.lightning_modules.update_metrics import log_update
from synthvis.utils.seeding import derive_seed


def _sync_skip_dims(module: LatentDiffusion, incompatible_keys: object) -> None:
    """After load_state_dict: the normalizer's skip_dims from the saved mask (a plain list is not saved)."""
    module.normalizer.skip_dims = module.skip_dims


class LatentDiffusion(L.LightningModule):
    """EDM (Karras et al. 2022) with SynthER's settings on (B, d_in) float rows of latent transitions.

    Training normalizes each batch with the fitted normalizer and minimizes the EDM loss: AdamW with a cosine
    LR over `max_steps` (stepped every update), global-norm gradient clipping at `grad_clip`, and an EMA of
    the denoiser updated after every step (ema_pytorch warm-up). `sample` draws from the EMA weights.
    `denoiser(d_in=d_in)` builds the network (e.g. a partial ResidualMLPDenoiser), so the row width is given once.

    The normalizer: build the module, then `set_normalizer(StandardNormalizer.fit(train_rows, skip_dims))`
    before `fit`. Its mean / std and a `skip_mask` of the skipped dims are buffers of this module, so a
    checkpoint or `state_dict` carries them and `load_state_dict` into a freshly built module (same config)
    restores them without re-fitting. `fit` refuses to start with an unfitted normalizer.
    """

    def __init__(
        self,
        d_in: int,
        denoiser: Callable[..., nn.Module],
        sigma_data: float = 1.0,
        p_mean: float = -1.2,
        p_std: float = 1.2,
        lr: float = 3e-4,
        betas: Sequence[float] = (0.9, 0.99),
        weight_decay: float = 0.0,
        max_steps: int | None = None,
        grad_clip: float | None = 1.0,
        ema_decay: float = 0.995,
        ema_update_every: int = 10,
        ema_update_after_step: int = 100,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["denoiser"])
        self.denoiser = denoiser(d_in=d_in)
        # SynthER's EMA (ema_pytorch.EMA): a copy of the online weights through the warm-up, then an average with the
        # decay min(beta, 1 - (1 + epoch)^(-2/3)). The online denoiser stays outside the EMA's module tree (saved once).
        self.ema = EMA(self.denoiser, beta=ema_decay, update_every=ema_update_every,
                       update_after_step=ema_update_after_step, include_online_model=False)
        self.normalizer = StandardNormalizer(d_in)
        self.register_buffer("skip_mask", torch.zeros(d_in, dtype=torch.bool))
        self.register_buffer("normalizer_fitted", torch.tensor(False))
        self.register_load_state_dict_post_hook(_sync_skip_dims)

    @property
    def skip_dims(self) -> list[int]:
        """Dimensions the normalizer leaves unchanged (terminal flags)."""
        return self.skip_mask.nonzero().flatten().tolist()

    def set_normalizer(self, normalizer: StandardNormalizer) -> None:
        """Take the statistics and skip_dims of a fitted normalizer (copied into this module's buffers)."""
        if normalizer.mean.shape != self.normalizer.mean.shape:
            raise ValueError(f"normalizer of {normalizer.mean.numel()} dims for a "
                             f"{self.hparams.d_in}-dim model")
        self.normalizer.load_state_dict(normalizer.state_dict())
        self.skip_mask.zero_()
        self.skip_mask[list(normalizer.skip_dims)] = True
        self.normalizer.skip_dims = self.skip_dims
        self.normalizer_fitted.fill_(True)

    def on_fit_start(self) -> None:
        """Refuse to train on unnormalized data (statistics come from `set_normalizer` or a checkpoint)."""
        if not self.normalizer_fitted:
            raise RuntimeError("LatentDiffusion has no fitted normalizer: call "
                               "set_normalizer(StandardNormalizer.fit(train_rows, skip_dims)) before fit")

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> dict[str, torch.Tensor | float]:
        """EDM loss of a (B, d_in) batch of raw rows."""
        hp = self.hparams
        loss = edm_loss(self.denoiser, self.normalizer.normalize(batch), hp.sigma_data, hp.p_mean, hp.p_std)
        metrics = log_update(self, "train", {"loss": loss}, prog_bar=True)
        log_update(self, "train", {"lr": self.trainer.optimizers[0].param_groups[0]["lr"]})
        return {"loss": loss, **metrics}

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        """The optimizer step, then one EMA update (SynthER calls ema.update() after every step).

        Here rather than in on_train_batch_end, which Lightning runs after the checkpoint callbacks: a checkpoint
        must hold the EMA of the updates it counts, or a resumed run would miss one EMA update.
        """
        super().optimizer_step(*args, **kwargs)
        self.ema.update()

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        """EDM loss of held-out rows for the online and the EMA denoiser (`val/loss`, `val/loss_ema`).

        The noise levels and noise are seeded by batch index, so successive validations see the same draws and
        their losses differ only through the weights.
        """
        hp = self.hparams
        x0 = self.normalizer.normalize(batch)
        for name, net in (("loss", self.denoiser), ("loss_ema", self.ema.ema_model)):
            generator = torch.Generator(self.device).manual_seed(batch_idx)
            loss = edm_loss(net, x0, hp.sigma_data, hp.p_mean, hp.p_std, generator)
            self.log(f"val/{name}", loss, prog_bar=name == "loss", sync_dist=True)

    def configure_optimizers(self) -> dict:
        """AdamW (SynthER: lr 3e-4, betas (0.9, 0.99), no weight decay) and a per-step cosine LR to 0."""
        hp = self.hparams
        max_steps = hp.max_steps if hp.max_steps is not None else self.trainer.max_steps
        if max_steps is None or max_steps <= 0:
            raise ValueError("the cosine LR needs a length: set LatentDiffusion(max_steps=...) or "
                             "Trainer(max_steps=...)")
        params = [p for p in self.denoiser.parameters() if p.requires_grad]  # not the frozen Fourier features
        # fused: one kernel over all tensors; on the CPU the per-tensor loop costs up to a third of a step. Full
        # precision only: under mixed precision Lightning refuses to clip a fused optimizer's gradients (it unscales
        # them inside its step), and on a GPU the default multi-tensor AdamW is as fast.
        full_precision = self._trainer is None or str(self.trainer.precision).startswith("32")
        optimizer = torch.optim.AdamW(params, lr=hp.lr, betas=tuple(hp.betas), weight_decay=hp.weight_decay,
                                      fused=full_precision)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def configure_gradient_clipping(self, optimizer: torch.optim.Optimizer,
                                    gradient_clip_val: float | None = None,
                                    gradient_clip_algorithm: str | None = None) -> None:
        """Clip the global gradient norm at `grad_clip` (SynthER: 1.0) unless the Trainer sets a clipping."""
        if gradient_clip_val is None and self.hparams.grad_clip is not None:
            gradient_clip_val, gradient_clip_algorithm = self.hparams.grad_clip, "norm"
        self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)

    @torch.inference_mode()
    def sample(self, num_samples: int, sampler: Sampler, batch_size: int = 2048, seed: int = 0,
               rank: int = 0, world_size: int = 1, progress: bool = True) -> torch.Tensor:
        """`num_samples` rows in the data's scale, from the EMA denoiser, returned on the CPU.

        Rows are drawn in batches of `batch_size` on this module's device (`Trainer.fit` leaves the module on
        the CPU: `.to("cuda")` it first); 1024-2048 is fastest on a CPU (cache-sized activations), SynthER
        uses 100k on a GPU. Batch i uses its own generator seeded with derive_seed(seed, i), so (seed,
        batch_size) fix the samples on a given device type. To split the work across DDP ranks, pass
        rank=trainer.global_rank, world_size=trainer.world_size: rank r draws batches r, r + world_size, ...;
        every rank's batches put back in batch order (all_gather) are exactly the single-process result.
        """
        if not self.normalizer_fitted:
            raise RuntimeError("LatentDiffusion has no fitted normalizer: train it or load a trained state "
                               "dict")
        denoise = functools.partial(precondition, self.ema.ema_model, sigma_data=self.hparams.sigma_data)
        batches = list(enumerate(range(0, num_samples, batch_size)))[rank::world_size]
        chunks = [torch.empty(0, self.hparams.d_in)]
        steps = len(batches) * sampler.num_steps
        with tqdm(total=steps, desc="sampling", unit="step", disable=not progress) as bar:
            for index, start in batches:
                generator = torch.Generator(self.device).manual_seed(derive_seed(seed, index))
                rows = min(batch_size, num_samples - start)
                x = sampler(denoise, (rows, self.hparams.d_in), generator, callback=lambda _: bar.update())
                chunks.append(self.normalizer.unnormalize(x).cpu())
        return torch.cat(chunks)
