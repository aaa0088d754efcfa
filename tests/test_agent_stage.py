"""The agent and eval stages through train.py: real Trainer runs, checkpoints, TensorBoard events, eval.json, DDP."""

from __future__ import annotations

import json
import shutil
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
@pytest.mark.parametrize(("agent", "loss"), [("drqbc", "train/critic_loss"), ("bc", "train/bc_loss")])
def test_data_agent_eval_pipeline_writes_every_artifact(tmp_path, agent, loss):
    result = run_train(tmp_path, "stages=[data,agent,eval]", "agent_steps=20", f"agent={agent}", "eval.video=true")
    assert result.returncode == 0, result.stderr[-4000:]
    run = tmp_path / "run"
    assert (run / "agent" / "agent.pt").exists()
    assert not (run / "agent" / "checkpoints" / "last.ckpt").exists()  # only an unfinished stage resumes from it
    tags = scalar_tags(run / "tensorboard" / "agent")
    assert {loss, "train/actor_std", "eval/train/return_mean", "eval/hard/return_mean"} <= tags
    assert {"augment/original_vs_augmented", "eval/train/video", "eval/hard/video"} <= tags
    evaluation = json.loads((run / "eval.json").read_text())
    assert set(evaluation["envs"]) == {"train", "hard"}
    assert all(len(env["returns"]) == 2 for env in evaluation["envs"].values())
    assert evaluation["step"] == 20 and evaluation["protocol"]["episodes"] == 2
    assert json.loads((run / "agent" / "done.json").read_text())["result"]["updates"] == 20


@pytest.mark.slow
def test_a_killed_run_resumes_without_redoing_finished_stages(tmp_path):
    import os
    import signal
    import time

    command = [sys.executable, str(REPO / "train.py"), *TINY, *TINY_DMC, f"paths.root_dir={tmp_path}",
               f"hydra.run.dir={tmp_path / 'run'}", "stages=[data,agent]", "agent_steps=60"]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    checkpoint = tmp_path / "run" / "agent" / "checkpoints" / "last.ckpt"
    deadline = time.time() + 600
    while not checkpoint.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)  # killed mid-stage, right after its first checkpoint
    process.wait()
    assert checkpoint.exists() and not (tmp_path / "run" / "agent" / "done.json").exists()
    data_marker = (tmp_path / "run" / "data" / "done.json").stat().st_mtime

    # `run_dir=<run>` alone: the run continues with the config it saved when it started.
    resumed = subprocess.run([sys.executable, str(REPO / "train.py"), f"run_dir={tmp_path / 'run'}"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=900, check=False)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    output = resumed.stderr + resumed.stdout
    assert "data] already finished" in output and "resuming from" in output
    assert (tmp_path / "run" / "data" / "done.json").stat().st_mtime == data_marker  # not redone
    assert json.loads((tmp_path / "run" / "agent" / "done.json").read_text())["result"]["updates"] == 60


@pytest.mark.slow
def test_two_process_ddp_on_cpu(tmp_path):
    # DrQ+BC: two backward passes per update, the case DDP's find_unused_parameters is set for.
    ddp = ["agent_steps=6", "trainer=ddp_cpu", "agent=drqbc", "callbacks.evaluation.every_n_updates=0"]
    result = run_train(tmp_path, "stages=[data,agent,latents]", *ddp)
    output = result.stderr + result.stdout
    assert result.returncode == 0, output[-4000:]
    assert "distributed_backend=gloo" in output and "Starting with 2 processes" in output
    run = tmp_path / "run"
    assert (run / "agent" / "agent.pt").exists()
    assert json.loads((run / "agent" / "done.json").read_text())["result"]["updates"] == 6
    # The latents stage took the agent the spawned workers trained from memory: the same latents as from its file.
    shutil.copytree(run, tmp_path / "again", ignore=shutil.ignore_patterns("latents"))
    again = subprocess.run([sys.executable, str(REPO / "train.py"), f"run_dir={tmp_path / 'again'}", "stages=[latents]"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=900, check=False)  # its saved config
    assert again.returncode == 0, (again.stderr + again.stdout)[-4000:]
    assert (run / "latents" / "latents.npy").read_bytes() == (tmp_path / "again" / "latents" / "latents.npy").read_bytes()


@pytest.mark.slow
def test_discrete_cql_on_procgen_through_train_py(tmp_path):
    result = run_train(tmp_path, "stages=[data,agent,eval]", "agent_steps=5", "suite=procgen", "env.game=bigfish",
                       "data.source.num_transitions=600",
                       "eval.test_envs.variants=[no_backgrounds]", "agent.latent_dim=32", "agent.channels=[4,8,8]",
                       dmc=False)
    assert result.returncode == 0, result.stderr[-4000:]
    evaluation = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert set(evaluation["envs"]) == {"train", "test_levels", "test_levels_no_backgrounds"}


UPSAMPLING = ["stages=[data,agent,latents,diffusion,sample,finetune,eval]", "agent_steps=10", "diffusion.steps=20",
              "finetune.steps=10", "diffusion.model.denoiser.width=64", "sample.num_samples=300", "sample=heun",
              "sample.sampler.num_steps=8", "finetune.datamodule.batch_size=32"]


@pytest.mark.slow
def test_upsampling_pipeline_writes_every_artifact_and_keeps_the_encoder_frozen(tmp_path):
    import torch

    result = run_train(tmp_path, *UPSAMPLING, "agent=drqbc", "latents.augmented_views=1")
    assert result.returncode == 0, result.stderr[-4000:]
    run = tmp_path / "run"
    layout = json.loads((run / "latents" / "layout.json").read_text())
    assert sum(field["size"] for field in layout["fields"]) == 4 * 50 + 2 + 1  # 4F + |A| + 1
    import numpy as np

    real = np.load(run / "latents" / "latents.npy")
    synthetic = np.load(run / "synthetic" / "latents.npy")
    assert real.shape[1] == synthetic.shape[1] == 203 and len(synthetic) == 300
    reward_column = 50 + 50 + 2
    assert np.abs(np.delete(synthetic, reward_column, axis=1)).max() <= 1.0  # tanh latents and actions clipped
    assert {"train/loss"} <= scalar_tags(run / "tensorboard" / "diffusion")
    sample_events = EventAccumulator(str(run / "tensorboard" / "sample"))
    sample_events.Reload()
    assert "fidelity/z_pi/synthetic" in sample_events.Tags()["histograms"]
    base = torch.load(run / "agent" / "agent.pt", weights_only=False)["state_dict"]
    tuned = torch.load(run / "finetune" / "agent.pt", weights_only=False)["state_dict"]
    frozen = [k for k in base if k.startswith(("encoder.", "actor.trunk.", "critic.trunk."))]
    assert frozen and all(torch.equal(base[k], tuned[k]) for k in frozen)
    assert not torch.equal(base["actor.policy.0.weight"], tuned["actor.policy.0.weight"])
    assert json.loads((run / "eval.json").read_text())["weights"].endswith("finetune/agent.pt")


@pytest.mark.slow
def test_upsampling_pipeline_on_procgen_decodes_valid_transitions(tmp_path):
    import numpy as np

    result = run_train(tmp_path, *UPSAMPLING, "suite=procgen", "env.game=bigfish",
                       "data.source.num_transitions=600", "eval.test_envs.variants=[]",
                       "agent.latent_dim=32", "agent.channels=[4,8,8]", dmc=False)
    assert result.returncode == 0, result.stderr[-4000:]
    run = tmp_path / "run"
    synthetic = np.load(run / "synthetic" / "latents.npy")
    assert synthetic.shape[1] == 2 * 32 + 15 + 2  # z_q, one-hot action, reward, next z_q, done
    onehot, done = synthetic[:, 32:47], synthetic[:, -1]
    assert set(np.unique(onehot)) <= {0.0, 1.0} and (onehot.sum(1) == 1).all()
    assert set(np.unique(done)) <= {0.0, 1.0}
    assert set(json.loads((run / "eval.json").read_text())["envs"]) == {"train", "test_levels"}
