"""Zero-shot evaluation: reproducible for a seed, every test env evaluated, eval.json and TensorBoard output."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
import torch
from torch import nn

from synthvis.core.latent_layout import dmc_layout
from synthvis.envs.dmc import DMCPixelEnv
from synthvis.envs.procgen import ProcgenPixelEnv
from synthvis.evaluation.evaluator import (
    ZeroShotEvaluator,
    dmc_test_envs,
    procgen_test_envs,
    summarize,
    write_eval_json,
)
from synthvis.evaluation.video import encode_gif
from synthvis.lightning_modules.offline_agent import OfflineAgent

TINY_DMC = functools.partial(DMCPixelEnv, domain="point_mass", task="easy", image_size=16, action_repeat=8)


class PixelMeanAgent(OfflineAgent):
    """A deterministic stand-in agent whose actions depend on the pixels it sees."""

    def __init__(self, discrete: bool = False) -> None:
        super().__init__()
        self.discrete = discrete
        self.encoder = nn.Identity()
        self.scale = nn.Parameter(torch.tensor(1.0))

    def latents(self, obs):
        return {"z_pi": obs.float().mean(dim=(1, 2, 3))[:, None]}

    def latent_layout(self, discount=None):
        return dmc_layout(1, 2, ("z_pi",), discount)

    def heads(self):
        return {}

    def head_update(self, fields, optimize, step, base_updates):
        raise NotImplementedError("an evaluation stand-in has no heads to fine-tune")

    def act(self, obs, deterministic=True):
        signal = obs.float().mean(dim=(1, 2, 3)) / 255.0 * self.scale
        if self.discrete:
            return (signal * 1000).long() % 15
        return torch.tanh(torch.stack([signal - 0.4, 0.4 - signal], dim=1))


def test_dmc_evaluation_is_reproducible_and_covers_every_test_env():
    test_envs = dmc_test_envs(modes=["fixed_easy", "hard"], kinds=["color", "camera"])
    evaluator = ZeroShotEvaluator(TINY_DMC, test_envs, num_episodes=3, seed=7, parallel_envs=2)
    agent = PixelMeanAgent()
    first = evaluator.evaluate(agent)
    assert list(first) == ["train", "fixed_easy", "hard"]
    assert all(len(returns) == 3 for returns in first.values())
    assert first == evaluator.evaluate(agent)  # same seed, same returns
    other = ZeroShotEvaluator(TINY_DMC, test_envs, num_episodes=3, seed=8, parallel_envs=3).evaluate(agent)
    assert other["train"] != first["train"]
    assert agent.training  # evaluation restores the module's mode


def test_random_reference_is_reproducible_and_scores_low():
    evaluator = ZeroShotEvaluator(TINY_DMC, {}, num_episodes=3, seed=7, parallel_envs=2)
    returns = evaluator.random_returns()
    assert len(returns) == 3 and returns == evaluator.random_returns()
    assert max(returns) < 500  # uniform random forces rarely hold the point mass on the target
    procgen = ZeroShotEvaluator(functools.partial(ProcgenPixelEnv, game="bigfish"), {}, num_episodes=2, seed=1)
    assert len(procgen.random_returns()) == 2


def test_procgen_evaluation_on_train_and_unseen_levels():
    factory = functools.partial(ProcgenPixelEnv, game="bigfish")
    evaluator = ZeroShotEvaluator(factory, procgen_test_envs(variants=["no_backgrounds"]), num_episodes=2, seed=1)
    results = evaluator.evaluate(PixelMeanAgent(discrete=True))
    assert list(results) == ["train", "test_levels", "test_levels_no_backgrounds"]
    assert results == evaluator.evaluate(PixelMeanAgent(discrete=True))


def test_mismatched_test_envs_are_refused():
    with pytest.raises(ValueError, match="does not fit a Procgen env"):
        ZeroShotEvaluator(functools.partial(ProcgenPixelEnv, game="maze"), dmc_test_envs(modes=["hard"]))
    with pytest.raises(ValueError, match="does not fit a dm_control env"):
        ZeroShotEvaluator(TINY_DMC, procgen_test_envs())


def test_eval_json_holds_protocol_and_every_return(tmp_path):
    evaluator = ZeroShotEvaluator(TINY_DMC, {}, num_episodes=2)
    results = {"train": [1.0, 3.0]}
    write_eval_json(tmp_path / "eval.json", results, evaluator, step=42)
    payload = json.loads((tmp_path / "eval.json").read_text())
    assert payload["step"] == 42 and payload["protocol"]["episodes"] == 2
    assert payload["envs"]["train"] == {"return_mean": 2.0, "return_std": 1.0, "returns": [1.0, 3.0]}
    assert summarize(results)["train"]["return_mean"] == 2.0


def test_gif_encoding_has_every_frame():
    import io

    from PIL import Image

    frames = [np.full((3, 8, 8), v, dtype=np.uint8) for v in (0, 120, 255)]
    gif = Image.open(io.BytesIO(encode_gif(frames)))
    assert gif.format == "GIF" and gif.n_frames == 3


def test_observations_seen_during_evaluation_are_sampled():
    evaluator = ZeroShotEvaluator(TINY_DMC, dmc_test_envs(modes=["hard"], kinds=["color"]), num_episodes=2, seed=3)
    returns, observations = evaluator.evaluate_with_observations(PixelMeanAgent(), observation_stride=25)
    assert returns == evaluator.evaluate(PixelMeanAgent())
    # 125-step episodes, both envs stepped together: 125 policy calls, every 25th kept -> 5 batches of 2.
    assert set(observations) == {"train", "hard"}
    assert observations["train"].shape == (10, 9, 16, 16) and observations["train"].dtype == np.uint8
    assert not np.array_equal(observations["train"], observations["hard"])
