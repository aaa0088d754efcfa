"""The agent and eval stages through train.py: real Trainer runs, checkpoints, TensorBoard events, eval.json, DDP."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

REPO = Path(__file__).resolve().parents[1]
# A tiny CPU configuration: few updates, small batches, 2 evaluation episodes, frequent checkpoints.
TINY = ["data.batch_size=16", "eval.num_episodes=2", "callbacks.evaluation.every_n_updates=10",
        "callbacks.model_checkpoint.every_n_train_steps=10", "trainer.val_check_interval=10",
        "trainer.limit_val_batches=2"]
# dm_control at 32 px with 125-step episodes and one distracted test env.
TINY_DMC = ["image_size=32", "env.action_repeat=8", "data.source.num_episodes=3", "eval.test_envs.modes=[hard]",
            "eval.test_envs.kinds=[color,camera]", "agent.hidden_dim=64"]


def run_train(tmp_path: Path, *overrides: str, run_dir: str = "run", dmc: bool = True) -> subprocess.CompletedProcess:
    command = [sys.executable, str(REPO / "train.py"), *TINY, *(TINY_DMC if dmc else []), f"paths.root_dir={tmp_path}",
               f"hydra.run.dir={tmp_path / run_dir}", *overrides]
    return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900, check=False)


def scalar_tags(event_dir: Path) -> set[str]:
    accumulator = EventAccumulator(str(event_dir))
    accumulator.Reload()
    return set(accumulator.Tags()["scalars"]) | set(accumulator.Tags()["images"])


@pytest.mark.slow
@pytest.mark.parametrize(("agent", "loss"), [("drqbc", "train/critic_loss"), ("bc", "train/actor_loss")])
def test_data_agent_eval_pipeline_writes_every_artifact(tmp_path, agent, loss):
    result = run_train(tmp_path, "stages=[data,agent,eval]", "steps.agent=20", f"agent={agent}", "eval.video=true")
    assert result.returncode == 0, result.stderr[-4000:]
    run = tmp_path / "run"
    assert (run / "agent" / "checkpoints" / "last.ckpt").exists()
    assert (run / "agent" / "agent.pt").exists()
    tags = scalar_tags(run / "tensorboard" / "agent")
    assert {loss, "train/actor_loss", "eval/train/return_mean", "eval/hard/return_mean"} <= tags
    assert {"augment/original_vs_augmented", "eval/train/video", "eval/hard/video"} <= tags
    evaluation = json.loads((run / "eval.json").read_text())
    assert set(evaluation["envs"]) == {"train", "hard"}
    assert all(len(env["returns"]) == 2 for env in evaluation["envs"].values())
    assert evaluation["step"] == 20 and evaluation["protocol"]["episodes"] == 2
    assert json.loads((run / "agent" / "done.json").read_text())["result"]["updates"] == 20


@pytest.mark.slow
def test_interrupted_agent_stage_resumes_from_its_last_checkpoint(tmp_path):
    first = run_train(tmp_path, "stages=[data,agent]", "steps.agent=10")
    assert first.returncode == 0, first.stderr[-4000:]
    # Pretend the run died after the checkpoint at update 10: no completion marker, more updates wanted.
    (tmp_path / "run" / "agent" / "done.json").unlink()
    resumed = run_train(tmp_path, "stages=[data,agent]", "steps.agent=20")
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert "resuming from" in resumed.stderr + resumed.stdout
    assert "data] already finished" in resumed.stderr + resumed.stdout
    assert json.loads((tmp_path / "run" / "agent" / "done.json").read_text())["result"]["updates"] == 20


@pytest.mark.slow
def test_two_process_ddp_on_cpu(tmp_path):
    result = run_train(tmp_path, "stages=[data,agent]", "steps.agent=6", "trainer=ddp_cpu",
                       "callbacks.evaluation.every_n_updates=0")
    output = result.stderr + result.stdout
    assert result.returncode == 0, output[-4000:]
    assert "distributed_backend=gloo" in output and "Starting with 2 processes" in output
    assert (tmp_path / "run" / "agent" / "agent.pt").exists()
    assert json.loads((tmp_path / "run" / "agent" / "done.json").read_text())["result"]["updates"] == 6


@pytest.mark.slow
def test_discrete_cql_on_procgen_through_train_py(tmp_path):
    result = run_train(tmp_path, "stages=[data,agent,eval]", "steps.agent=5", "env=procgen", "env.game=bigfish",
                       "data=generated_procgen", "data.source.num_transitions=600", "agent=cql", "eval=procgen",
                       "eval.test_envs.variants=[no_backgrounds]", "agent.latent_dim=32", "agent.channels=[4,8,8]",
                       dmc=False)
    assert result.returncode == 0, result.stderr[-4000:]
    evaluation = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert set(evaluation["envs"]) == {"train", "test_levels", "test_levels_no_backgrounds"}
