"""BC on scripted-expert pixels fits the data and then beats a random policy on the training env."""

from __future__ import annotations

import functools

import lightning as L
import numpy as np
import pytest
import torch

from synthvis.datamodules.augmentations import RandomShift
from synthvis.datamodules.generated_dmc import GeneratedDMCDataset
from synthvis.datamodules.pixel import PixelDataModule
from synthvis.envs.dmc import DMCPixelEnv
from synthvis.evaluation.evaluator import ZeroShotEvaluator
from synthvis.lightning_modules.bc import BC
from synthvis.lightning_modules.offline_agent import OfflineAgent

# point_mass-easy at 32 px with 125-step episodes: 30 expert episodes give 30 different start states.
ENV = functools.partial(DMCPixelEnv, domain="point_mass", task="easy", image_size=32, action_repeat=8)


class UniformRandomAgent(OfflineAgent):
    """Uniform random actions from a seeded generator: the baseline BC must beat."""

    discrete = False

    def __init__(self) -> None:
        super().__init__()
        self.encoder = torch.nn.Identity()
        self.generator = torch.Generator().manual_seed(0)

    def latents(self, obs):
        return {}

    def latent_layout(self, discount=None):
        raise NotImplementedError("a random-action reference has no latents")

    def heads(self):
        return {}

    def head_update(self, fields, optimize, step, base_updates):
        raise NotImplementedError("a random-action reference has no heads")

    def act(self, obs, deterministic=True):
        return torch.rand(len(obs), 2, generator=self.generator) * 2 - 1


@pytest.mark.slow
def test_bc_fits_expert_data_and_beats_random(tmp_path):
    source = GeneratedDMCDataset(ENV, quality="expert", num_episodes=30, cache_dir=tmp_path)
    datamodule = PixelDataModule(source, frame_stack=3, nstep=1, batch_size=64, val_fraction=0.0,
                                 cache_dir=tmp_path)
    datamodule.prepare_data()
    datamodule.setup()
    L.seed_everything(0)
    agent = BC(datamodule.obs_shape, action_dim=2, hidden_dim=256, std_schedule=0.1, augmentation=RandomShift(2))
    L.Trainer(max_steps=4000, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              accelerator="cpu").fit(agent, datamodule)

    batch = datamodule.train_set.__getitems__(list(range(0, len(datamodule.train_set), 5)))
    with torch.no_grad():
        mse = torch.mean((agent.eval().act(batch.obs) - batch.action) ** 2).item()
    assert mse < 0.03 < batch.action.var().item()

    evaluator = ZeroShotEvaluator(ENV, {}, num_episodes=5, seed=100)
    bc_return = np.mean(evaluator.evaluate(agent)["train"])
    random_return = np.mean(evaluator.evaluate(UniformRandomAgent())["train"])
    assert bc_return > random_return + 200, (bc_return, random_return)
