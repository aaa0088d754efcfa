"""Adding an agent takes its own class and its config only: a small agent defined here runs through every stage
of the method (pixel training, latents, diffusion, sampling, head fine-tuning, evaluation) with no synthvis edit."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf, open_dict
from torch import nn

from synthvis.core.batches import ContinuousBatch
from synthvis.core.latent_layout import LatentLayout, dmc_layout
from synthvis.lightning_modules.offline_agent import Metrics, OfflineAgent, Optimize
from synthvis.pipeline import run_pipeline
from tests.helpers import TINY_PIPELINE, compose_config


def bc_mse(policy: nn.Module, z_pi: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """The one loss of the agent below, on pixels and on latents alike."""
    return F.mse_loss(torch.tanh(policy(z_pi)), action)


class PooledBC(OfflineAgent):
    """Deterministic behaviour cloning through a pooled-pixel encoder: the smallest complete OfflineAgent."""

    discrete = False

    def __init__(self, obs_shape: Sequence[int], action_dim: int, latent_dim: int = 8, lr: float = 1e-3) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.encoder = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten())
        self.trunk = nn.Sequential(nn.Linear(obs_shape[0] * 16, latent_dim), nn.Tanh())
        self.policy = nn.Linear(latent_dim, action_dim)

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        return self.trunk(self.encoder(obs.float() / 255.0))

    def training_step(self, batch: ContinuousBatch, batch_idx: int) -> torch.Tensor:
        loss = bc_mse(self.policy, self.features(batch.obs), batch.action)
        self.log("train/bc_mse", loss)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)

    @torch.no_grad()
    def latents(self, obs: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"z_pi": self.features(obs)}

    def latent_layout(self, discount: float | None = None) -> LatentLayout:
        return dmc_layout(self.hparams.latent_dim, self.hparams.action_dim, ("z_pi",), discount)

    def heads(self) -> dict[str, nn.Module]:
        return {"policy": self.policy}

    def head_update(self, fields: dict[str, torch.Tensor], optimize: Optimize, step: int,
                    base_updates: int) -> Metrics:
        loss = bc_mse(self.policy, fields["z_pi"], fields["action"])
        optimize(loss, 0)
        return {"bc_mse": loss.detach()}

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        return torch.tanh(self.policy(self.features(obs)))


@pytest.mark.slow
def test_an_agent_defined_outside_synthvis_runs_through_every_stage(tmp_path):
    csv = ["+logger.csv._target_=lightning.pytorch.loggers.CSVLogger", "+logger.csv.save_dir=${paths.output_dir}",
           "+logger.csv.name=csv", "+logger.csv.version=null"]  # a second logger beside TensorBoard
    cfg = compose_config([*TINY_PIPELINE, "reuse_agent=false", "analysis.paired_states=8", *csv], tmp_path)
    with open_dict(cfg):
        cfg.agent = OmegaConf.create({"_target_": f"{__name__}.PooledBC", "obs_shape": "???", "action_dim": "???",
                                      "latent_dim": 8})
        cfg.pop("hydra")
    results = run_pipeline(cfg)
    run = tmp_path / "run"
    assert results["agent"]["updates"] == 10 and results["finetune"]["updates"] == 10
    assert results["latents"]["dim"] == dmc_layout(8, 2, ("z_pi",)).dim  # z_pi, action, reward, next z_pi
    assert "finetune/bc_mse" in results["finetune"]["metrics"]
    base = torch.load(run / "agent" / "agent.pt", weights_only=False)["state_dict"]
    tuned = torch.load(run / "finetune" / "agent.pt", weights_only=False)["state_dict"]
    assert torch.equal(base["trunk.0.weight"], tuned["trunk.0.weight"])  # frozen: only the head moved
    assert not torch.equal(base["policy.weight"], tuned["policy.weight"])
    evaluation = json.loads((run / "eval.json").read_text())
    assert evaluation["weights"] == str(run / "finetune" / "agent.pt")
    assert set(evaluation["envs"]) == {"train", "hard"} and len(evaluation["envs"]["hard"]["returns"]) == 2
    assert set(json.loads((run / "js.json").read_text())["divergence"]) == {"real", "real+synthetic"}
    for stage in ("agent", "diffusion", "sample", "finetune"):
        assert (run / "csv" / stage / "metrics.csv").is_file(), stage
    header = (run / "csv" / "eval" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"hp/train_return", "hp/test_return", "eval/hard/return_mean"} <= set(header)
