"""Evaluation in worker processes: the same returns, observations and paired renders as in this process."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from synthvis.envs.dmc import DMCPixelEnv
from synthvis.envs.procgen import ProcgenPixelEnv
from synthvis.evaluation.evaluator import ZeroShotEvaluator, dmc_test_envs, procgen_test_envs
from tests.test_evaluation import TINY_DMC, PixelMeanAgent


def evaluate(evaluator: ZeroShotEvaluator, agent, paired_states: int) -> tuple:
    """Everything an eval stage takes from one evaluator: returns, kept observations, pairs, the random reference."""
    pairing = evaluator.pairing(paired_states, seed=0)
    with evaluator:
        returns, observations = evaluator.evaluate_with_observations(agent, observation_stride=7, pairing=pairing)
        random = evaluator.random_returns()
    return returns, observations, pairing.observations(), random


def assert_same(serial: tuple, parallel: tuple) -> None:
    returns, observations, pairs, random = serial
    assert parallel[0] == returns and parallel[3] == random
    assert set(parallel[1]) == set(observations)
    for name, seen in observations.items():
        assert seen.size and np.array_equal(parallel[1][name], seen), name
    assert np.array_equal(parallel[2].clean, pairs.clean) and pairs.clean.size
    assert set(parallel[2].shifted) == set(pairs.shifted) and parallel[2].skipped == pairs.skipped
    for name, shifted in pairs.shifted.items():
        assert np.array_equal(parallel[2].shifted[name], shifted), name


def test_dmc_evaluation_on_workers_equals_serial_evaluation():
    # Three chunks per env (parallel_envs 2 of 5 episodes) over two workers: chunks finish out of order.
    test_envs = dmc_test_envs(modes=["fixed_easy", "hard"], kinds=["color", "camera", "background"])
    serial, parallel = (evaluate(ZeroShotEvaluator(TINY_DMC, test_envs, num_episodes=5, seed=7, parallel_envs=2,
                                                   workers=workers), PixelMeanAgent(), paired_states=12)
                        for workers in (0, 2))
    assert_same(serial, parallel)
    assert len(serial[0]["train"]) == 5 and len(serial[3]) == 5
    assert serial[3] != serial[0]["train"]  # random actions and the agent's differ


def test_procgen_evaluation_on_workers_equals_serial_evaluation():
    factory = functools.partial(ProcgenPixelEnv, game="bigfish")
    test_envs = procgen_test_envs(variants=["no_backgrounds"])
    serial, parallel = (evaluate(ZeroShotEvaluator(factory, test_envs, num_episodes=4, seed=1, parallel_envs=2,
                                                   epsilon=0.2, workers=workers),
                                 PixelMeanAgent(discrete=True), paired_states=10) for workers in (0, 2))
    assert_same(serial, parallel)
    assert any(r != 0 for returns in serial[0].values() for r in returns)


def test_a_failing_worker_names_the_episodes_and_the_workers_stop():
    evaluator = ZeroShotEvaluator(functools.partial(DMCPixelEnv, domain="point_mass", task="no_such_task"), {},
                                  num_episodes=2, workers=1)
    failure = r"evaluation worker failed on train episodes 0-1:(.|\n)*no_such_task"
    with pytest.raises(RuntimeError, match=failure), evaluator:
        processes = list(evaluator._pool.processes)
        evaluator.evaluate(PixelMeanAgent())
    assert processes and not any(process.is_alive() for process in processes) and evaluator._pool is None


def test_workers_default_to_the_jobs_cpu_share():
    threads = torch.get_num_threads()
    try:
        for share, expected in ((1, 0), (3, 3)):
            torch.set_num_threads(share)
            assert ZeroShotEvaluator(TINY_DMC).num_workers() == expected
    finally:
        torch.set_num_threads(threads)
    assert ZeroShotEvaluator(TINY_DMC, workers=0).num_workers() == 0
    with pytest.raises(ValueError, match="eval.workers must be >= 0"):
        ZeroShotEvaluator(TINY_DMC, workers=-1)


def test_an_evaluation_of_some_envs_plays_those_alone():
    test_envs = dmc_test_envs(modes=["hard"], kinds=["color"])
    evaluator = ZeroShotEvaluator(TINY_DMC, test_envs, num_episodes=2, seed=3, workers=0)
    everything = evaluator.evaluate(PixelMeanAgent())
    assert evaluator.evaluate(PixelMeanAgent(), envs=["train"]) == {"train": everything["train"]}
    with pytest.raises(ValueError, match=r"no env \['easy'\] to evaluate"):
        evaluator.evaluate(PixelMeanAgent(), envs=["easy"])


def test_periodic_evaluation_can_leave_the_test_envs_to_the_eval_stage():
    from types import SimpleNamespace

    from synthvis.callbacks.evaluation import EvaluationCallback

    evaluator = ZeroShotEvaluator(TINY_DMC, dmc_test_envs(modes=["hard"], kinds=["color"]), num_episodes=1, workers=0)
    trainer = SimpleNamespace(loggers=[])
    assert list(EvaluationCallback(evaluator, test_envs=False)._run(trainer, PixelMeanAgent(), 10)) == ["train"]
    assert list(EvaluationCallback(evaluator)._run(trainer, PixelMeanAgent(), 10)) == ["train", "hard"]


def test_a_call_starts_no_more_workers_than_it_has_chunks():
    evaluator = ZeroShotEvaluator(TINY_DMC, {}, num_episodes=4, parallel_envs=2, workers=8)
    with evaluator._workers(1) as none:  # one chunk: played in this process, no worker started
        assert none is None
    with evaluator._workers(2) as pool:
        assert len(pool.processes) == 2
