"""A training stage stops at its first non-finite loss; no file ever holds non-finite weights."""

from __future__ import annotations

import re

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader

from synthvis.callbacks.finite_guard import FiniteGuard
from synthvis.lightning_modules.update_metrics import log_update
from synthvis.stages import diffusion
from synthvis.stages.context import RunContext
from synthvis.utils.finite import NonFiniteError
from synthvis.utils.weights import load_weights, save_weights
from tests.test_checkpoints import latent_run

pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_diverging_stage_fails_at_the_first_nan_and_writes_nothing(tmp_path):
    cfg, run_dir = latent_run(tmp_path, "run", "diffusion.model.lr=1e12", "diffusion.model.grad_clip=null",
                              "callbacks.model_checkpoint.every_n_train_steps=1")
    with pytest.raises(NonFiniteError) as error:
        diffusion.run(RunContext(cfg, run_dir))
    message = str(error.value)
    assert message.startswith("[diffusion] training diverged at update ")
    assert re.search(r"train/loss = (nan|inf|-inf)", message)
    assert "diffusion.model.lr, now 1000000000000.0" in message
    update = int(message.split("at update ")[1].split(":")[0])
    assert not (run_dir / "diffusion" / "model.pt").exists() and not (run_dir / "diffusion" / "done.json").exists()
    checkpoint = torch.load(run_dir / "diffusion" / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["global_step"] == update - 1  # the update that diverged was never checkpointed
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values() if v.is_floating_point())


def test_non_finite_weights_are_neither_written_nor_loaded(tmp_path):
    from omegaconf import OmegaConf
    config = OmegaConf.create({"_target_": "torch.nn.Linear", "in_features": 2, "out_features": 1})
    module = nn.Linear(2, 1)
    save_weights(tmp_path / "ok.pt", module, config, updates=3)
    assert load_weights(tmp_path / "ok.pt")[1]["updates"] == 3
    with torch.no_grad():
        module.bias.fill_(float("nan"))
    with pytest.raises(NonFiniteError, match="refusing to write .*bad.pt: non-finite values in bias"):
        save_weights(tmp_path / "bad.pt", module, config)
    assert not (tmp_path / "bad.pt").exists()
    payload = torch.load(tmp_path / "ok.pt", weights_only=False)
    payload["state_dict"]["weight"][0, 0] = float("inf")
    torch.save(payload, tmp_path / "old.pt")  # e.g. written by an older version
    with pytest.raises(NonFiniteError, match="old.pt holds non-finite weights \\(weight\\)"):
        load_weights(tmp_path / "old.pt")


@pytest.mark.slow
@pytest.mark.parametrize("case", ["bc", "cql"])
def test_a_diverging_agent_stops_the_run_and_is_never_reused(tmp_path, case):
    from tests.test_agent_stage import run_train
    overrides = {"bc": ["agent=bc", "agent.lr=1e10"],
                 "cql": ["suite=procgen", "env.game=bigfish", "data.source.num_transitions=600",
                         "agent.latent_dim=32", "agent.channels=[4,8,8]", "agent.lr=1e12"]}
    for attempt in range(2):  # a rerun fails the same way: nothing of the diverged agent was kept
        result = run_train(tmp_path, "stages=[data,agent,eval]", "agent_steps=30", *overrides[case], dmc=case == "bc")
        output = result.stdout + result.stderr
        assert result.returncode != 0 and "[agent] training diverged at update " in output, output[-4000:]
        assert "(agent.lr, now 1" in output
        run = tmp_path / "run"
        assert not (run / "agent" / "done.json").exists() and not (run / "agent" / "agent.pt").exists()
        assert not (run / "eval.json").exists() and (run / "data" / "done.json").exists()


class _DivergesAt(L.LightningModule):
    """A module whose logged loss turns NaN at update `bad` (1-based), counting the updates it ran."""

    def __init__(self, bad: int, manual: bool = False) -> None:
        super().__init__()
        self.bad, self.ran, self.logged_at = bad, 0, []
        self.weight = nn.Parameter(torch.ones(()))
        self.automatic_optimization = not manual  # manual: the optimizer steps before the metrics are logged

    def training_step(self, batch, batch_idx):
        self.ran += 1
        loss = self.weight * self.ran * (float("nan") if self.ran >= self.bad else 1.0)
        if not self.automatic_optimization:
            self.manual_backward(loss)
            self.optimizers().step()
        metrics = log_update(self, "train", {"loss": loss.detach(), "steady": torch.ones(())})
        return {"loss": loss, **metrics}

    def log_dict(self, *args, **kwargs):
        self.logged_at.append(self.ran)
        super().log_dict(*args, **kwargs)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)

    def train_dataloader(self):
        return DataLoader(torch.ones(64, 2), batch_size=2)


def _fit(tmp_path, module, guard, max_steps=12, **trainer_options):
    trainer = L.Trainer(max_steps=max_steps, callbacks=[guard, *trainer_options.pop("callbacks", [])],
                        logger=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=str(tmp_path), **trainer_options)
    trainer.fit(module)
    return trainer


def test_a_deferred_check_names_the_first_diverged_update_and_never_checkpoints_after_it(tmp_path):
    module = _DivergesAt(bad=3)
    with pytest.raises(NonFiniteError, match=r"^\[agent\] training diverged at update 3: train/loss = nan\. "):
        _fit(tmp_path, module, FiniteGuard("agent", "agent.lr", check_every_n_updates=4), enable_checkpointing=False)
    assert module.ran == 4  # read back on update 4, the first reading step after the divergence
    saves = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=1, save_top_k=-1)
    module = _DivergesAt(bad=3)
    with pytest.raises(NonFiniteError, match="diverged at update 3"):
        _fit(tmp_path, module, FiniteGuard("agent", "agent.lr", check_every_n_updates=10), callbacks=[saves])
    assert module.ran == 3 and sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [
        "epoch=0-step=1.ckpt", "epoch=0-step=2.ckpt"]  # the save after update 3 read the flag and refused


def test_the_guard_reads_back_every_update_on_the_cpu_and_at_the_end(tmp_path):
    module = _DivergesAt(bad=2)
    with pytest.raises(NonFiniteError, match="diverged at update 2"):
        _fit(tmp_path, module, FiniteGuard("agent", "agent.lr"), enable_checkpointing=False)
    assert module.ran == 2
    module = _DivergesAt(bad=12)  # the last update; the reading interval does not divide 12
    with pytest.raises(NonFiniteError, match="diverged at update 12"):
        _fit(tmp_path, module, FiniteGuard("agent", "agent.lr", check_every_n_updates=5), enable_checkpointing=False)
    with pytest.raises(ValueError, match="check_every_n_updates must be >= 1"):
        FiniteGuard("agent", "agent.lr", check_every_n_updates=0)


@pytest.mark.parametrize("manual", [False, True])
def test_updates_log_on_the_trainers_logging_steps_and_the_last(tmp_path, manual):
    module = _DivergesAt(bad=10**9, manual=manual)
    trainer = _fit(tmp_path, module, FiniteGuard("agent", "agent.lr"), enable_checkpointing=False,
                   log_every_n_steps=5)
    assert module.logged_at == [5, 10, 12]
    assert set(trainer.callback_metrics) == {"train/loss", "train/steady"}
    assert float(trainer.callback_metrics["train/loss"]) == 12.0  # the last update's value: the stage's result
