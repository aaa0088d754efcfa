"""DCS camera distraction: the render camera moved on a sphere around the point it looks at.

The start pose is the model's camera pose (computed at the model's reference configuration, so the
distraction does not depend on the env's random initial state). The look-at point lies on the camera's
optical axis, as far away as the agent's root subtree centre of mass. Vertical and horizontal deltas
rotate the camera about that point, zoom scales its distance, roll turns it about its optical axis. In
the upper quadrant (every domain but reacher) the camera stays between the look-at point's horizon and
zenith. Poses are kept in the frame the camera moves with (the world, its body, or the tracked body's
subtree com), so a `trackcom` camera still follows the agent.

DCS supports reacher, cartpole, finger, cheetah, ball_in_cup and walker; point_mass and humanoid work the
same way here but lie outside the published protocol (humanoid's distraction is ours, not DCS's).
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from synthvis.envs.distractions.difficulty import DistractionMode

# DCS camera ranges, as fractions of the difficulty scale.
ANGLE_DELTA = np.pi / 2  # vertical, horizontal and roll
ZOOM_IN = 0.5  # the camera may come up to 50%·scale closer ...
ZOOM_OUT = 1.5  # ... or move up to 150%·scale further away
# Dynamic mode (DCS values): camera velocity in metres per physics step, roll velocity in radians per step.
VELOCITY_STD = 0.1
MAX_VELOCITY = 0.4
ROLL_VELOCITY_STD = np.pi / 300
MAX_ROLL_VELOCITY = np.pi / 50
# DCS keeps every domain's camera in the upper quadrant except reacher's, which looks straight down.
UNLIMITED_DOMAINS = frozenset({"reacher"})

_SUPPORTED_CAMERA_MODES = {
    int(mujoco.mjtCamLight.mjCAMLIGHT_FIXED): "fixed",
    int(mujoco.mjtCamLight.mjCAMLIGHT_TRACK): "track",
    int(mujoco.mjtCamLight.mjCAMLIGHT_TRACKCOM): "trackcom",
}


def rotation_about(axis: np.ndarray, angle: float) -> np.ndarray:
    """3x3 rotation by `angle` radians about the unit vector `axis` (right-handed, Rodrigues)."""
    x, y, z = axis
    cross = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.eye(3) + np.sin(angle) * cross + (1.0 - np.cos(angle)) * cross @ cross


@dataclass
class _StartPose:
    """The unperturbed camera, expressed in the frame it moves with."""

    look_at: np.ndarray  # (3,)
    offset: np.ndarray  # camera position minus look_at, (3,)
    rotation: np.ndarray  # camera axes as columns, (3, 3)
    elevation: float  # angle of `offset` above the frame's horizontal plane


class CameraDistraction:
    """Perturb the pose of camera `camera_id` (DCS semantics; see the module docstring)."""

    def __init__(self, mode: DistractionMode, domain: str, camera_id: int = 0, dynamic: bool = False) -> None:
        self.mode = mode
        self.domain = domain
        self.camera_id = camera_id
        self.dynamic = dynamic
        self.limit_to_upper_quadrant = domain not in UNLIMITED_DOMAINS
        self._start: _StartPose | None = None
        self._rng: np.random.Generator | None = None
        # Perturbation state: vertical and horizontal angle, relative zoom, roll; and their velocities.
        self._vertical = self._horizontal = self._zoom = self._roll = 0.0
        self._velocity = np.zeros(3)
        self._roll_velocity = 0.0

    def on_reset(self, physics, episode: int) -> None:
        """Draw this episode's camera perturbation and apply it."""
        if self._start is None:
            self._start = self._start_pose(physics)
        self._rng = self.mode.episode_rng(episode, "camera")
        scale = self.mode.scale
        # Uniform over the allowed range (not clipped), so a camera on the horizon is not stuck there half
        # of the time.
        self._vertical = self._rng.uniform(*self._vertical_limits())
        self._horizontal = self._rng.uniform(-1, 1) * ANGLE_DELTA * scale
        self._zoom = self._rng.uniform(-ZOOM_IN * scale, ZOOM_OUT * scale)
        self._roll = self._rng.uniform(-1, 1) * ANGLE_DELTA * scale
        self._velocity = np.zeros(3)
        self._roll_velocity = 0.0
        self._apply(physics)

    def on_step(self, physics) -> None:
        """Re-apply the pose the physics step just recomputed, after a random-walk step in dynamic mode."""
        if self._start is None:
            return
        if self.dynamic:
            self._walk()
        self._apply(physics)

    def _vertical_limits(self) -> tuple[float, float]:
        """Allowed vertical delta: DCS's range, cut so a limited camera stays between horizon and zenith."""
        delta = ANGLE_DELTA * self.mode.scale
        if not self.limit_to_upper_quadrant:
            return -delta, delta
        elevation = self._start.elevation
        low = max(-delta, -elevation)
        return low, max(low, min(delta, np.pi / 2 - elevation))

    def _walk(self) -> None:
        """One random-walk step; velocities are in metres at the camera's distance, as in DCS."""
        scale = self.mode.scale
        distance = np.linalg.norm(self._start.offset) * (1.0 + self._zoom)
        self._velocity += self._rng.normal(0.0, VELOCITY_STD * scale, 3)
        speed = np.linalg.norm(self._velocity)
        if speed > MAX_VELOCITY * scale:
            self._velocity *= MAX_VELOCITY * scale / speed
        state = np.array([self._vertical, self._horizontal, self._zoom])
        state += self._velocity / np.array([distance, distance, np.linalg.norm(self._start.offset)])
        delta = ANGLE_DELTA * scale
        vertical_low, vertical_high = self._vertical_limits()
        low = np.array([vertical_low, -delta, -ZOOM_IN * scale])
        high = np.array([vertical_high, delta, ZOOM_OUT * scale])
        clipped = np.clip(state, low, high)
        # Stop the motion into a wall instead of pressing against it for many steps.
        self._velocity[clipped != state] = 0.0
        self._vertical, self._horizontal, self._zoom = clipped
        self._roll_velocity = float(
            np.clip(
                self._roll_velocity + self._rng.normal(0.0, ROLL_VELOCITY_STD * scale),
                -MAX_ROLL_VELOCITY * scale,
                MAX_ROLL_VELOCITY * scale,
            )
        )
        self._roll = float(np.clip(self._roll + self._roll_velocity, -delta, delta))

    def _start_pose(self, physics) -> _StartPose:
        """The camera's pose at the model's reference configuration, in the frame it moves with."""
        model = physics.model.ptr
        if not 0 <= self.camera_id < model.ncam:
            raise ValueError(f"{self.domain} has cameras 0..{model.ncam - 1}, not {self.camera_id}")
        reference = mujoco.MjData(model)
        mujoco.mj_forward(model, reference)
        frame_position, frame_rotation = self._frame(model, reference)
        position = reference.cam_xpos[self.camera_id]
        rotation = reference.cam_xmat[self.camera_id].reshape(3, 3)
        # The root body's subtree com stands for "the agent": the camera looks at the point of its optical
        # axis (-z) that is as far away as the agent.
        distance = np.linalg.norm(reference.subtree_com[min(1, model.nbody - 1)] - position)
        if distance < 1e-6:
            raise ValueError(f"camera {self.camera_id} of {self.domain} sits at the agent's centre of mass")
        look_at = position - distance * rotation[:, 2]
        to_local = frame_rotation.T
        offset = to_local @ (position - look_at)
        return _StartPose(
            look_at=to_local @ (look_at - frame_position),
            offset=offset,
            rotation=to_local @ rotation,
            elevation=float(np.arcsin(np.clip(offset[2] / np.linalg.norm(offset), -1.0, 1.0))),
        )

    def _frame(self, model, data) -> tuple[np.ndarray, np.ndarray]:
        """Origin and axes of the frame the camera moves with, for the current `data`."""
        camera_mode = _SUPPORTED_CAMERA_MODES.get(int(model.cam_mode[self.camera_id]))
        body = model.cam_bodyid[self.camera_id]
        if camera_mode == "fixed":
            return data.xpos[body].copy(), data.xmat[body].reshape(3, 3).copy()
        if camera_mode == "track":
            return data.xpos[body].copy(), np.eye(3)
        if camera_mode == "trackcom":
            return data.subtree_com[body].copy(), np.eye(3)
        raise ValueError(
            f"camera {self.camera_id} of {self.domain} uses a target-body mode; the camera distraction "
            "supports fixed, track and trackcom cameras"
        )

    def _apply(self, physics) -> None:
        """Overwrite the camera's world pose in `physics.data` with the perturbed one."""
        start = self._start
        # Vertical: about the camera's own horizontal axis (positive lifts it), then horizontal: about "up".
        tilt = rotation_about(start.rotation[:, 0], -self._vertical)
        turn = rotation_about(np.array([0.0, 0.0, 1.0]), self._horizontal)
        orbit = turn @ tilt
        position = start.look_at + (1.0 + self._zoom) * orbit @ start.offset
        rotation = orbit @ start.rotation @ rotation_about(np.array([0.0, 0.0, 1.0]), self._roll)
        frame_position, frame_rotation = self._frame(physics.model.ptr, physics.data.ptr)
        physics.data.cam_xpos[self.camera_id] = frame_position + frame_rotation @ position
        physics.data.cam_xmat[self.camera_id] = (frame_rotation @ rotation).reshape(9)
