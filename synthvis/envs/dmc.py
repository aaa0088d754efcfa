"""dm_control tasks rendered to pixels with V-D4RL's conventions (action repeat, [-1, 1] actions, frame stack)."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from synthvis.envs.pixel_step import PixelStep
from synthvis.envs.rendering import apply_render_profile, import_suite


class Distraction(Protocol):
    """A visual change applied to the MuJoCo model/data before rendering (see envs/distractions/)."""

    def on_reset(self, physics, episode: int) -> None:
        """Draw (or keep) this episode's distraction and apply it."""

    def on_step(self, physics) -> None:
        """Re-apply anything the physics step overwrote (camera pose) or advance a dynamic distraction."""


def default_camera(domain: str) -> int:
    """V-D4RL's camera choice: 2 for quadruped, else 0."""
    return 2 if domain == "quadruped" else 0


class DMCPixelEnv:
    """A dm_control task seen through pixels: reset/step return `PixelStep`s.

    Matches V-D4RL's `drqbc/dmc.py` stack: suite.load(task_kwargs={'random': seed}), action repeat (rewards
    summed, discounts multiplied, stops at the episode end), actions scaled from [-1, 1] to the spec, a single
    camera, frames CHW uint8, frame stack with the reset frame repeated.
    """

    def __init__(
        self,
        domain: str,
        task: str,
        seed: int = 0,
        image_size: int = 84,
        frame_stack: int = 3,
        action_repeat: int = 2,
        camera_id: int | None = None,
        render_profile: str = "fast",
        distractions: Sequence[Distraction] = (),
    ) -> None:
        if image_size <= 0 or frame_stack <= 0 or action_repeat <= 0:
            raise ValueError(
                f"image_size, frame_stack and action_repeat must be positive, got {image_size}, "
                f"{frame_stack}, {action_repeat}"
            )
        suite = import_suite()
        if (domain, task) not in suite.ALL_TASKS:
            raise ValueError(
                f"unknown dm_control task {domain}_{task}; known tasks include "
                f"{', '.join(f'{d}_{t}' for d, t in suite.BENCHMARKING[:8])}, ..."
            )
        self.domain, self.task = domain, task
        self.image_size = image_size
        self.frame_stack = frame_stack
        self.action_repeat = action_repeat
        self.camera_id = default_camera(domain) if camera_id is None else camera_id
        self.render_profile = render_profile
        self.distractions = list(distractions)
        self._env = suite.load(domain, task, task_kwargs={"random": seed}, visualize_reward=False)
        apply_render_profile(self._env.physics, render_profile)
        spec = self._env.action_spec()
        self._low = spec.minimum.astype(np.float64)
        self._high = spec.maximum.astype(np.float64)
        self.action_dim = int(spec.shape[0])
        self._frames: deque[np.ndarray] = deque(maxlen=frame_stack)
        self._episode = -1
        self._camera = None

    @property
    def physics(self):
        """The MuJoCo physics (scripted experts read state from it; distractions edit it)."""
        return self._env.physics

    @property
    def episode(self) -> int:
        """Index of the current episode, the one its distractions were drawn for (-1 before the first reset)."""
        return self._episode

    @property
    def name(self) -> str:
        """`domain_task`, as V-D4RL names its environments."""
        return f"{self.domain}_{self.task}"

    def render(self) -> np.ndarray:
        """The current camera image as a (3, H, W) uint8 frame."""
        if self._camera is None:
            # One camera for every frame: `physics.render` builds (and frees) a Camera with its MjvScene per
            # call, which costs as much as drawing a small frame. The pixels are the same.
            from dm_control.mujoco.engine import Camera

            self._camera = Camera(self.physics, height=self.image_size, width=self.image_size,
                                  camera_id=self.camera_id)
        return np.ascontiguousarray(self._camera.render().transpose(2, 0, 1))

    def reset(self) -> PixelStep:
        """Start a new episode (its distractions are drawn from the episode index)."""
        self._episode += 1
        time_step = self._env.reset()
        for distraction in self.distractions:
            distraction.on_reset(self.physics, self._episode)
        frame = self.render()
        for _ in range(self.frame_stack):
            self._frames.append(frame)
        return self._pixel_step(frame, np.zeros(self.action_dim, np.float32), 0.0, 1.0, first=True, last=time_step.last())

    def step(self, action: np.ndarray) -> PixelStep:
        """Apply `action` in [-1, 1] for `action_repeat` physics steps and render once."""
        action = np.asarray(action, dtype=np.float32).reshape(self.action_dim)
        if not np.all(np.isfinite(action)):
            raise ValueError(f"non-finite action {action} passed to {self.name}")
        clipped = np.clip(action, -1.0, 1.0)
        scaled = self._low + (clipped + 1.0) * 0.5 * (self._high - self._low)
        reward, discount = 0.0, 1.0
        for _ in range(self.action_repeat):
            time_step = self._env.step(scaled)
            reward += time_step.reward or 0.0
            discount *= time_step.discount if time_step.discount is not None else 1.0
            for distraction in self.distractions:
                distraction.on_step(self.physics)
            if time_step.last():
                break
        frame = self.render()
        self._frames.append(frame)
        return self._pixel_step(frame, clipped, reward, discount, first=False, last=time_step.last())

    def _pixel_step(self, frame, action, reward, discount, first, last) -> PixelStep:
        observation = np.concatenate(list(self._frames), axis=0)
        return PixelStep(frame, observation, action.astype(np.float32), float(reward), float(discount), first, last)

    def close(self) -> None:
        """Release the environment's rendering context."""
        self._camera = None
        self._env.close()
