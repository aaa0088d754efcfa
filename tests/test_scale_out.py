"""Runs that use several processes: subprocess DDP under Hydra (one run directory, rank 0 writes), its refusal in a
multirun, and a multirun whose jobs submitit starts (the local executor, as on a SLURM cluster)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf, read_write

from synthvis.config_validation import ConfigError, validate_config
from synthvis.pipeline import await_stage, flatten, run_dir_given, run_pipeline
from synthvis.stages.common import stage_marker
from synthvis.utils.distributed import nonzero_rank, relaunches_command_line
from synthvis.utils.files import atomic_write_json
from synthvis.utils.weights import load_weights
from tests.helpers import CONF_DIR, compose_config, write_tiny_experiment

REPO = Path(__file__).resolve().parents[1]
# One intra-op thread per process: a DDP run is two processes, and a submitit multirun runs its jobs at once.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
# The tiny experiment, with diffusion batches that two ranks can each fill from its ~470 latent rows.
TINY = ["experiment=tiny", "diffusion.datamodule.batch_size=64"]
TRAINING = ("agent", "diffusion", "finetune")


def train(tmp_path: Path, *overrides: str, timeout: int = 600, env: dict[str, str] | None = None
          ) -> subprocess.CompletedProcess:
    """`python train.py` with the tiny experiment of `tmp_path/conf`, started in `tmp_path`."""
    command = [sys.executable, str(REPO / "train.py"), "--config-dir", str(tmp_path / "conf"), *overrides]
    return subprocess.run(command, cwd=tmp_path, env=ENV if env is None else env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def run_files(run: Path) -> set[str]:
    """Every file of a run directory, event files by their folder (their names hold a time and a process id)."""
    files = {path.relative_to(run) for path in run.rglob("*") if path.is_file() and ".hydra" not in path.parts}
    return {str(path.parent / "events") if path.name.startswith("events.out") else str(path) for path in files}


def test_ranks_other_than_0_are_read_from_the_launchers_variables():
    assert nonzero_rank({}) is None
    assert nonzero_rank({"LOCAL_RANK": "0", "NODE_RANK": "0", "WORLD_SIZE": "2"}) is None  # rank 0 after launching
    assert nonzero_rank({"LOCAL_RANK": "1", "NODE_RANK": "0"}) == "LOCAL_RANK=1"  # Lightning's subprocess launcher
    assert nonzero_rank({"LOCAL_RANK": "0", "NODE_RANK": "1"}) == "NODE_RANK=1"  # the next machine's first process
    assert nonzero_rank({"RANK": "3", "LOCAL_RANK": "1"}) == "RANK=3"  # torchrun
    assert nonzero_rank({"SLURM_PROCID": "2"}) == "SLURM_PROCID=2"


TRAINERS = {"default": False, "gpu": False, "ddp": True, "ddp_cpu": False, "ddp_cpu_subprocess": True}


def test_which_trainer_options_rerun_the_command_line(tmp_path):
    assert {path.stem for path in (CONF_DIR / "trainer").glob("*.yaml")} == set(TRAINERS)  # a new option gets a row
    for trainer, reruns in TRAINERS.items():
        assert relaunches_command_line(compose_config([f"trainer={trainer}"], tmp_path).trainer) is reruns, trainer


@pytest.mark.parametrize(("trainer", "reruns"), [
    ({"devices": 1, "strategy": "ddp"}, False),  # one process: nothing to start
    ({"devices": [3], "strategy": "ddp"}, False),
    ({"devices": 2}, True),  # strategy auto picks ddp for several devices
    ({"devices": 1, "num_nodes": 2, "strategy": "ddp"}, True),
    ({"devices": 4, "strategy": "ddp_fork"}, False),
    ({"devices": 4, "strategy": "fsdp"}, True),
    ({"devices": -1, "strategy": "deepspeed_stage_2"}, True),
])
def test_strategies_that_rerun_the_command_line(trainer, reruns):
    assert relaunches_command_line(trainer) is reruns


def set_mode(cfg, mode: RunMode | None) -> None:
    """Make Hydra see `cfg` as a single run (mode None, as compose leaves it) or a multirun's job."""
    with read_write(cfg.hydra):
        cfg.hydra.mode = mode
    HydraConfig.instance().set_config(cfg)


@pytest.mark.parametrize("trainer", list(TRAINERS))
def test_a_multirun_refuses_a_trainer_that_reruns_the_command_line(trainer, tmp_path):
    cfg = compose_config([f"trainer={trainer}"], tmp_path)
    validate_config(cfg)  # a single run starts the other ranks itself
    set_mode(cfg, RunMode.MULTIRUN)
    try:
        if not TRAINERS[trainer]:
            validate_config(cfg)
            return
        with pytest.raises(ConfigError) as caught:
            validate_config(cfg)
        [problem] = caught.value.problems
        assert problem.startswith("trainer.strategy='ddp_find_unused_parameters_true' with trainer.devices=")
        assert "in a multirun (-m)" in problem and "trainer=ddp_cpu" in problem
    finally:
        set_mode(cfg, None)  # later tests compose single runs


def test_a_waiting_rank_reads_rank_0s_marker_and_stops_when_rank_0_is_gone(tmp_path):
    atomic_write_json(stage_marker(tmp_path, "latents"), {"stage": "latents", "result": {"rows": 7}})
    assert await_stage(tmp_path, "latents", os.getppid()) == {"rows": 7}
    with pytest.raises(RuntimeError, match=r"exited before finishing \[sample\]"):
        await_stage(tmp_path, "sample", parent=-1)  # not this process's parent: rank 0 has exited


def test_a_rank_other_than_0_refuses_a_run_directory_of_its_own(tmp_path, monkeypatch):
    assert not run_dir_given(compose_config([], tmp_path))  # a fresh timestamp of this process's clock
    assert run_dir_given(compose_config(['hydra.run.dir="/runs/a"'], tmp_path))  # as Lightning's launcher passes it
    assert run_dir_given(compose_config([f"run_dir={tmp_path / 'shared'}"], tmp_path))
    monkeypatch.setenv("NODE_RANK", "1")  # the second machine of a multi-node run, started without run_dir
    with pytest.raises(ValueError, match="NODE_RANK=1 makes this process a rank other than 0.*same run_dir="):
        run_pipeline(compose_config([], tmp_path))
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_subprocess_ddp_under_hydra_writes_one_run_like_one_process(tmp_path):
    """trainer=ddp's launcher (rank 1 reruns the command line) on two CPU processes, against one process.

    Both runs leave the same files in one timestamped run directory each (rank 1 adds only its own log,
    train_ddp_process_1.log): one TensorBoard event file and one checkpoint folder per training stage, every stage's
    marker and result. Comparable and equal: the config (but the trainer), the dataset, the update count of each
    training stage, the latent layout and row counts, and the evaluation protocol. Not equal, as DDP makes them:
    the weights, losses and returns. Each rank draws its own data.batch_size batch of update k (the datamodules
    shard by rank), so an update sees twice the batch, and augmentation and diffusion noise are drawn per rank.
    """
    write_tiny_experiment(tmp_path / "conf")
    shared = [*TINY, f"paths.data_dir={tmp_path / 'data_cache'}"]
    one = train(tmp_path, *shared, f"paths.root_dir={tmp_path / 'one'}")
    assert one.returncode == 0, one.stderr[-4000:]
    two = train(tmp_path, *shared, f"paths.root_dir={tmp_path / 'two'}", "trainer=ddp_cpu_subprocess")
    output = two.stderr + two.stdout
    assert two.returncode == 0, output[-4000:]
    assert "Starting with 2 processes" in output and "GLOBAL_RANK: 1" in output

    [single] = (tmp_path / "one" / "logs" / "runs").iterdir()
    assert [path.name for path in (tmp_path / "two" / "logs").iterdir()] == ["runs"]
    [run] = (tmp_path / "two" / "logs" / "runs").iterdir()  # one run directory for both ranks
    assert run_files(run) == run_files(single) | {"train_ddp_process_1.log"}
    for stage in TRAINING:
        assert len(list((run / "tensorboard" / stage).glob("events.out*"))) == 1
        assert list((run / stage / "checkpoints").iterdir()) == []  # the finished stage's last.ckpt, deleted once

    # Rank 1 trained with rank 0, waited for the stages rank 0 runs alone, and stopped before the evaluation.
    rank1 = (run / "train_ddp_process_1.log").read_text()
    assert all(f"[{stage}] LOCAL_RANK=1: training with rank 0" in rank1 for stage in TRAINING)
    assert all(f"[{stage}] waiting for rank 0" in rank1 for stage in ("latents", "sample"))
    assert "[eval]" not in rank1 and "[report]" not in rank1

    def marker(path: Path, stage: str) -> dict:
        return json.loads(stage_marker(path, stage).read_text())["result"]

    saved = [flatten(OmegaConf.to_container(OmegaConf.create(
        (path / "config.yaml").read_text().replace(str(path), "<run>").replace(str(root), "<root>"))))
        for path, root in ((single, tmp_path / "one"), (run, tmp_path / "two"))]
    assert {key for key in saved[0].keys() | saved[1].keys() if saved[0].get(key) != saved[1].get(key)} == {
        "trainer.devices", "trainer.strategy"}
    assert marker(run, "data")["dataset_path"] == marker(single, "data")["dataset_path"]
    for stage in TRAINING:
        assert marker(run, stage)["updates"] == marker(single, stage)["updates"]
    assert (run / "latents" / "layout.json").read_text() == (single / "latents" / "layout.json").read_text()
    for stage in ("latents", "sample"):
        assert marker(run, stage).get("rows") == marker(single, stage).get("rows")
    agent, extras = load_weights(run / "finetune" / "agent.pt")
    assert extras["updates"] == marker(single, "finetune")["updates"] and agent is not None
    evaluations = [json.loads((path / "eval.json").read_text()) for path in (single, run)]
    assert evaluations[1]["protocol"] == evaluations[0]["protocol"]
    assert {env: len(e["returns"]) for env, e in evaluations[1]["envs"].items()} == {"train": 2, "hard": 2}
    assert evaluations[1]["weights"] == str(run / "finetune" / "agent.pt")


def process_stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state, parent, ...); None once the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid`."""
    found = [(int(path.name), process_stat(int(path.name))) for path in Path("/proc").glob("[0-9]*")]
    return [child for child, stat in found if stat is not None and int(stat[1]) == pid]


def running(pid: int) -> bool:
    """Whether `pid` exists and has not exited (a zombie has)."""
    stat = process_stat(pid)
    return stat is not None and stat[0] != "Z"


@pytest.mark.slow
def test_rank_1_stops_when_rank_0_dies_while_it_waits(tmp_path):
    write_tiny_experiment(tmp_path / "conf")
    # Enough augmented views that the latents stage, which rank 0 runs alone, lasts a few seconds.
    command = [sys.executable, str(REPO / "train.py"), "--config-dir", str(tmp_path / "conf"), *TINY,
               "trainer=ddp_cpu_subprocess", "stages=[data,agent,latents,diffusion]", "latents.augmented_views=60",
               f"paths.root_dir={tmp_path}"]
    with (tmp_path / "out.txt").open("w") as out:
        rank0 = subprocess.Popen(command, cwd=tmp_path, env=ENV, stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    try:
        deadline = time.time() + 300
        logs = tmp_path / "logs" / "runs"
        while time.time() < deadline and rank0.poll() is None and not any(
                "[latents] waiting" in log.read_text() for log in logs.glob("*/train_ddp_process_1.log")):
            time.sleep(0.2)
        assert rank0.poll() is None, (tmp_path / "out.txt").read_text()[-4000:]
        [rank1] = children(rank0.pid)
        rank0.send_signal(signal.SIGKILL)
        rank0.wait()
        while time.time() < deadline and running(rank1):
            time.sleep(0.2)
        assert not running(rank1)
        assert "exited before finishing [latents]" in (tmp_path / "out.txt").read_text()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(rank0.pid, signal.SIGKILL)  # whatever is left of the session


@pytest.mark.slow
def test_a_multirun_with_subprocess_ddp_is_refused_before_any_stage(tmp_path):
    write_tiny_experiment(tmp_path / "conf")
    sweep = tmp_path / "sweep"
    result = train(tmp_path, "-m", *TINY, "trainer=ddp_cpu_subprocess", "seed=0,1", f"paths.root_dir={tmp_path}",
                   f"hydra.sweep.dir={sweep}", timeout=300)
    assert result.returncode != 0
    assert "trainer.strategy='ddp_find_unused_parameters_true' with trainer.devices=2 in a multirun (-m)" in result.stderr
    assert "GLOBAL_RANK" not in result.stderr + result.stdout  # no rank was started
    assert not (tmp_path / "logs").exists() and not (tmp_path / "data_cache").exists()
    assert not list(sweep.glob("*/config.yaml"))  # each job stopped at validation, before writing anything


@pytest.mark.slow
def test_a_submitit_local_multirun_runs_both_jobs_and_reports_them(tmp_path):
    """hydra/launcher=submitit_local runs the jobs at once, each in a process submitit starts, as submitit_slurm
    does on a cluster. It sets no SLURM variable or CPU affinity, so each job takes the launcher's cpus_per_task
    as its threads (without OMP_NUM_THREADS, which would come first)."""
    write_tiny_experiment(tmp_path / "conf")
    sweep = tmp_path / "sweep"
    environ = {key: value for key, value in ENV.items() if key != "OMP_NUM_THREADS"}
    result = train(tmp_path, "-m", *TINY, "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10",
                   "hydra.launcher.cpus_per_task=1", "seed=0,1", f"paths.root_dir={tmp_path}",
                   f"hydra.sweep.dir={sweep}", env=environ)
    assert result.returncode == 0, result.stderr[-4000:]
    jobs = sorted(path for path in sweep.iterdir() if path.is_dir() and not path.name.startswith("."))
    assert [job.name.split("_", 1)[0] for job in jobs] == ["0", "1"]
    for job, seed in zip(jobs, (0, 1), strict=True):
        assert f"seed={seed}" in job.name
        assert all(stage_marker(job, stage).exists() for stage in OmegaConf.load(job / "config.yaml").stages)
        assert (job / "eval.json").exists() and (job / "report.md").exists()
        assert json.loads((job / "versions.json").read_text())["threads"] == 1
        assert "1 intra-op thread (hydra.launcher.cpus_per_task)" in (job / "train.log").read_text()
    assert "sweep report: " in result.stderr + result.stdout
    assert "aug_upsampled  2 seeds" in (sweep / "report.md").read_text()
