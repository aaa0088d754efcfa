"""dm_control pixel environments: V-D4RL conventions, configured envs, render profiles and backend errors."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from hydra.utils import instantiate

from synthvis.envs import rendering
from synthvis.envs.dmc import DMCPixelEnv
from synthvis.envs.rendering import RenderingUnavailableError, select_gl_backend
from tests.helpers import CONF_DIR, compose_config

DMC_ENVS = sorted(p.stem for p in (CONF_DIR / "env").glob("dmc_*.yaml"))


@pytest.mark.parametrize("env_name", DMC_ENVS)
def test_every_configured_env_steps_and_renders_at_the_configured_size(env_name, tmp_path):
    cfg = compose_config([f"env={env_name}", "env.image_size=32"], tmp_path)
    env = instantiate(cfg.env)(seed=0)
    first = env.reset()
    assert first.first and first.observation.shape == (9, 32, 32) and first.observation.dtype == np.uint8
    assert first.reward == 0.0 and not first.action.any()
    # At reset the stack repeats the reset frame.
    np.testing.assert_array_equal(first.observation[:3], first.observation[6:])
    step = env.step(np.ones(env.action_dim))
    assert step.frame.shape == (3, 32, 32) and not step.first
    np.testing.assert_array_equal(step.observation[6:], step.frame)  # newest frame last
    np.testing.assert_array_equal(step.observation[3:6], first.frame)
    env.close()


def test_episode_length_action_repeat_and_seeding():
    env = DMCPixelEnv("cartpole", "swingup", seed=3, image_size=16, action_repeat=4)
    steps = [env.reset()]
    while not steps[-1].last:
        steps.append(env.step(np.zeros(env.action_dim)))
    assert len(steps) == 1 + 1000 // 4  # 1000 physics steps per episode
    assert all(0.0 <= s.reward <= 4.0 for s in steps)  # rewards summed over the repeat
    # point_mass starts at a random position: the task seed decides it.
    first = DMCPixelEnv("point_mass", "easy", seed=3, image_size=32).reset().frame
    again = DMCPixelEnv("point_mass", "easy", seed=3, image_size=32).reset().frame
    other = DMCPixelEnv("point_mass", "easy", seed=4, image_size=32).reset().frame
    np.testing.assert_array_equal(again, first)
    assert not np.array_equal(other, first)


def test_actions_are_scaled_from_unit_range_to_the_spec():
    env = DMCPixelEnv("point_mass", "easy", image_size=16)
    env.reset()
    env.step(np.array([1.0, -1.0]))
    np.testing.assert_allclose(env.physics.data.ctrl, env._high * [1, 0] + env._low * [0, 1])
    step = env.step(np.array([5.0, -5.0]))
    np.testing.assert_array_equal(step.action, [1.0, -1.0])  # stored clipped, as it was applied
    with pytest.raises(ValueError, match="non-finite"):
        env.step(np.array([np.nan, 0.0]))


def test_the_kept_camera_draws_what_a_fresh_camera_per_frame_draws():
    from synthvis.envs.distractions import make_distractions

    distractions = make_distractions("walker", "hard", seed=3, dynamic=True)
    env = DMCPixelEnv("walker", "walk", seed=1, image_size=32, distractions=distractions)
    rng = np.random.default_rng(0)
    for _ in range(2):  # a new episode redraws the distractions
        env.reset()
        for _ in range(15):
            env.step(rng.uniform(-1, 1, env.action_dim))
            fresh = env.physics.render(height=32, width=32, camera_id=env.camera_id).transpose(2, 0, 1)
            assert np.array_equal(env.render(), fresh)
    env.close()


def test_fast_profile_is_close_to_fidelity():
    fast = DMCPixelEnv("walker", "walk", image_size=64, render_profile="fast").reset().frame.astype(float)
    fidelity = DMCPixelEnv("walker", "walk", image_size=64, render_profile="fidelity").reset().frame.astype(float)
    assert 0 < np.abs(fast - fidelity).mean() < 3.0


def test_bad_env_arguments_are_refused():
    with pytest.raises(ValueError, match="unknown dm_control task"):
        DMCPixelEnv("cheetah", "fly")
    with pytest.raises(ValueError, match="render profile"):
        DMCPixelEnv("cheetah", "run", render_profile="ultra")
    with pytest.raises(ValueError, match="positive"):
        DMCPixelEnv("cheetah", "run", image_size=0)


def test_backend_selection_respects_the_user_and_names_missing_libraries(monkeypatch):
    # Pretend dm_control has not been imported yet, so the backend can still be chosen.
    for module in ("dm_control", "dm_control.suite"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.setattr(rendering, "backend_available", lambda backend: False)
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    with pytest.raises(RenderingUnavailableError, match=r"libegl1.*libosmesa6"):
        select_gl_backend()
    monkeypatch.setenv("MUJOCO_GL", "bogus")
    with pytest.raises(RenderingUnavailableError, match="bogus"):
        select_gl_backend()
    monkeypatch.setattr(rendering, "backend_available", lambda backend: backend == "osmesa")
    monkeypatch.setenv("MUJOCO_GL", "osmesa")
    assert select_gl_backend() == "osmesa"
    monkeypatch.delenv("MUJOCO_GL")
    assert select_gl_backend() == "osmesa"  # auto falls back from egl to osmesa
    assert os.environ["PYOPENGL_PLATFORM"] == "osmesa"
