"""Paired rendering: the same states clean and shifted (dm_control distractions, Procgen variants), and their JS."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
import torch

from synthvis.config_validation import ConfigError, validate_config
from synthvis.envs.distractions import DISTRACTION_KINDS, make_distractions
from synthvis.envs.dmc import DMCPixelEnv
from synthvis.envs.paired_render import (
    StateRecordingEnv,
    frame_histories,
    procgen_level_env,
    render_observations,
    render_state,
    render_with_variant,
    replay_level,
)
from synthvis.envs.procgen import ProcgenPixelEnv
from synthvis.evaluation.evaluator import ZeroShotEvaluator, dmc_test_envs, procgen_test_envs
from synthvis.evaluation.paired_divergence import mean_pairwise_distance, paired_divergence
from synthvis.evaluation.paired_states import PairedObservations, sampled_steps
from tests.helpers import compose_config
from tests.test_agent_stage import run_train, scalar_tags
from tests.test_evaluation import TINY_DMC, PixelMeanAgent


def distracted(mode: str = "fixed_hard", kinds=DISTRACTION_KINDS, dynamic: bool = False) -> DMCPixelEnv:
    """The tiny point_mass env of episode seed 3 under a distraction."""
    env = TINY_DMC(seed=3)
    env.distractions = make_distractions(env.domain, mode, kinds=kinds, dynamic=dynamic, camera_id=env.camera_id,
                                         seed=5)
    return env


def record_episode(env: DMCPixelEnv, steps: int = 12) -> tuple[StateRecordingEnv, np.ndarray]:
    """Reset and step `env` with fixed actions: its recorder and the observations it returned."""
    recorder = StateRecordingEnv(env)
    observations = [recorder.reset().observation]
    for action in np.random.default_rng(0).uniform(-1, 1, (steps, env.action_dim)):
        observations.append(recorder.step(action).observation)
    return recorder, np.stack(observations)


def test_frame_histories_repeat_the_reset_frame():
    assert frame_histories(np.array([0, 1, 5]), 3).tolist() == [[0, 0, 0], [0, 0, 1], [3, 4, 5]]


def test_each_episode_gives_its_share_of_the_states():
    shares = [len(sampled_steps(126, 25, 10, e, seed=0)) for e in range(10)]
    assert shares == [3] * 5 + [2] * 5
    assert len(sampled_steps(4, 100, 2, 0, seed=0)) == 4  # never more than the episode's frames
    steps = sampled_steps(126, 25, 10, 3, seed=0)
    assert np.array_equal(steps, sampled_steps(126, 25, 10, 3, seed=0)) and np.all(np.diff(steps) > 0)
    assert not np.array_equal(steps, sampled_steps(126, 25, 10, 3, seed=1))


def test_with_the_distraction_off_set_states_render_the_observations_the_env_returned():
    recorder, seen = record_episode(TINY_DMC(seed=3))
    histories = frame_histories(np.arange(len(seen)), recorder.env.frame_stack)
    assert np.array_equal(render_observations(recorder.env, np.stack(recorder.states), histories), seen)


def test_paired_renders_are_what_the_distracted_env_shows_in_the_same_state():
    # Distractions change no dynamics: the same actions reach the same states in both envs.
    recorder, _ = record_episode(TINY_DMC(seed=3))
    shifted_recorder, shifted_seen = record_episode(distracted())
    assert np.array_equal(np.stack(recorder.states), np.stack(shifted_recorder.states))
    histories = frame_histories(np.arange(len(shifted_seen)), 3)
    assert np.array_equal(render_observations(shifted_recorder.env, np.stack(recorder.states), histories),
                          shifted_seen)


@pytest.mark.parametrize("kind", DISTRACTION_KINDS)
def test_each_distraction_kind_changes_the_pixels_of_the_same_state(kind):
    recorder, _ = record_episode(TINY_DMC(seed=3), steps=4)
    shifted = distracted("hard", kinds=[kind])
    shifted.reset()
    for state in recorder.states:
        clean_frame, shifted_frame = render_state(recorder.env, state), render_state(shifted, state)
        # Rendering leaves the physics where it was set, in both envs.
        assert np.array_equal(recorder.env.physics.get_state(), state)
        assert np.array_equal(shifted.physics.get_state(), state)
        assert not np.array_equal(clean_frame, shifted_frame)


def test_a_dynamic_distraction_is_rendered_at_its_episode_start():
    recorder, seen = record_episode(distracted("hard", dynamic=True), steps=10)
    # Ten steps on, the distraction has moved; a paired render shows it as it was when the episode started.
    assert np.array_equal(render_state(recorder.env, recorder.states[0]), seen[0, -3:])
    assert not np.array_equal(render_state(recorder.env, recorder.states[10]), seen[10, -3:])


def test_the_evaluator_pairs_the_states_the_agent_saw_with_each_test_env():
    test_envs = {**dmc_test_envs(modes=["hard"]), "off": {"distraction": {"mode": "hard", "kinds": []}}}
    evaluator = ZeroShotEvaluator(TINY_DMC, test_envs, num_episodes=2, seed=3, parallel_envs=2)
    pairing = evaluator.pairing(10, seed=0)
    returns, seen = evaluator.evaluate_with_observations(PixelMeanAgent(), observation_stride=1, pairing=pairing)
    assert returns == evaluator.evaluate(PixelMeanAgent())  # pairing changes nothing in the evaluation
    pairs = pairing.observations()
    assert pairs.clean.shape == (10, 9, 16, 16) and set(pairs.shifted) == {"hard", "off"} and not pairs.skipped
    # Both 126-frame episodes are stepped together: policy call t holds step t of episode 0, then of episode 1.
    expected = [seen["train"][2 * t + e] for e in range(2) for t in sampled_steps(126, 10, 2, e, seed=0)]
    assert np.array_equal(pairs.clean, np.stack(expected))
    assert np.array_equal(pairs.shifted["off"], pairs.clean)
    assert all(not np.array_equal(a, b) for a, b in zip(pairs.shifted["hard"], pairs.clean, strict=True))


class FlatAgent:
    """A stand-in agent whose trunk features are its first pixels."""

    device = torch.device("cpu")

    def latents(self, obs):
        return {"z_pi": obs.float().flatten(1)[:, :6]}


def test_identical_pairs_have_zero_divergence_and_distance():
    clean = np.random.default_rng(0).integers(0, 256, (64, 3, 4, 4), dtype=np.uint8)
    pairs = PairedObservations(clean, {"same": clean.copy(), "darker": clean // 2}, {"test_levels": "why"})
    paired = paired_divergence(FlatAgent(), pairs, bins=8, binning="quantile")
    assert paired["divergence"]["same"] == 0.0 and paired["latent_distance"]["same"] == 0.0
    assert paired["divergence"]["darker"] > 0.1 and paired["latent_distance"]["darker"] > 0
    assert paired["latent_distance_scale"] == pytest.approx(
        mean_pairwise_distance(clean.reshape(64, -1)[:, :6].astype(np.float32)))
    assert (paired["states"], paired["bins"], paired["skipped"]) == (64, 8, {"test_levels": "why"})


def test_mean_pairwise_distance_by_hand():
    points = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])  # distances 3, 4 and 5
    assert mean_pairwise_distance(points) == pytest.approx(4.0)
    assert mean_pairwise_distance(points, chunk=1) == pytest.approx(4.0)
    assert np.isnan(mean_pairwise_distance(points[:1]))


def test_a_procgen_state_carries_its_visual_options():
    # Why a plain set_state cannot pair: a clean state set in a monochrome env is drawn clean again.
    frames, states = replay_level("coinrun", 5, np.full(10, 5), np.array([9]))
    env = procgen_level_env("coinrun", 5, "monochrome")
    env.callmethod("set_state", states)
    assert np.array_equal(env.observe()[1]["rgb"][0].transpose(2, 0, 1), frames[0])
    env.close()


@pytest.mark.parametrize("variant", ["no_backgrounds", "monochrome", "uncentered", "restricted_themes"])
def test_a_variant_drawing_of_a_clean_state_is_what_the_variant_env_shows(variant):
    # On climber no variant changes the level or dynamics, so the variant env reaches the same state itself.
    actions, steps = np.random.default_rng(0).integers(0, 15, 40), np.array([0, 17, 39])
    frames, states = replay_level("climber", 5, actions, steps)
    env = procgen_level_env("climber", 5, variant)
    expected = []
    for t in range(40):
        if t in steps:
            expected.append(env.observe()[1]["rgb"][0].transpose(2, 0, 1))
        env.act(actions[t:t + 1].astype(np.int32))
    env.close()
    shifted = render_with_variant("climber", states, variant)
    assert np.array_equal(shifted, np.stack(expected)) and not np.array_equal(shifted, frames)


def test_procgen_pairs_draw_the_agents_states_and_skip_what_has_no_clean_counterpart():
    factory = functools.partial(ProcgenPixelEnv, game="bigfish")
    test_envs = procgen_test_envs(variants=["no_backgrounds", "generated_assets"])
    evaluator = ZeroShotEvaluator(factory, test_envs, num_episodes=2, seed=1)
    pairing = evaluator.pairing(12, seed=0)
    _, seen = evaluator.evaluate_with_observations(PixelMeanAgent(discrete=True), observation_stride=1,
                                                   pairing=pairing)
    pairs = pairing.observations()
    assert set(pairs.skipped) == {"test_levels", "test_levels_generated_assets"}  # unseen levels: no pair
    assert list(pairs.shifted) == ["test_levels_no_backgrounds"]
    assert pairs.clean.shape == pairs.shifted["test_levels_no_backgrounds"].shape == (12, 3, 64, 64)
    seen_frames = {frame.tobytes() for frame in seen["train"]}
    assert all(frame.tobytes() in seen_frames for frame in pairs.clean)  # replayed frames the agent saw
    assert not np.array_equal(pairs.shifted["test_levels_no_backgrounds"], pairs.clean)


@pytest.mark.parametrize("value", [-1, 10_001])
def test_paired_states_is_range_checked(value, tmp_path):
    with pytest.raises(ConfigError, match="analysis.paired_states"):
        validate_config(compose_config([f"analysis.paired_states={value}"], tmp_path))
    validate_config(compose_config(["analysis.paired_states=0"], tmp_path))  # 0 turns the paired measure off


@pytest.mark.slow
def test_eval_stage_writes_the_paired_section_for_every_test_env(tmp_path):
    result = run_train(tmp_path, "stages=[data,agent,eval]", "agent_steps=5", "analysis.paired_states=16",
                       "eval.test_envs.modes=[fixed_easy,hard]", "eval.test_envs.kinds=[color,camera,background]")
    assert result.returncode == 0, result.stderr[-4000:]
    js = json.loads((tmp_path / "run" / "js.json").read_text())
    assert set(js["divergence"]["real"]) == {"train", "fixed_easy", "hard"}  # the rollout measure stays
    paired = js["paired"]
    assert paired["states"] == 16 and paired["skipped"] == {}
    assert set(paired["divergence"]) == set(paired["latent_distance"]) == {"fixed_easy", "hard"}
    assert all(0 <= value <= 1 for value in paired["divergence"].values())
    assert paired["latent_distance_scale"] > 0
    tags = scalar_tags(tmp_path / "run" / "tensorboard" / "eval")
    assert {"js_paired/hard", "latent_distance/fixed_easy", "latent_distance_scale"} <= tags
    output = result.stderr + result.stdout
    assert "rollout JS(real)" in output and "paired JS" in output
