"""A training stage stops at its first non-finite loss; no file ever holds non-finite weights."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

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
