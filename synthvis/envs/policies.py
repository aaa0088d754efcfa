"""Behaviour policies that collect offline datasets: random, scripted experts, noisy mixtures, saved agents.

Every continuous policy acts in the environment's normalized action space [-1, 1]^A (`DMCPixelEnv.step`
scales it to the action spec). Scripted experts read the MuJoCo state from `env.physics`; a learned agent
acts on `step.observation` pixels. Each policy owns its numpy Generator, so a seed fixes its actions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import mujoco
import numpy as np

from synthvis.envs.pixel_step import PixelStep

QUALITIES = ("random", "medium", "expert", "mixed")


class PolicyEnv(Protocol):
    """What a policy may read from the environment (`DMCPixelEnv` provides it)."""

    action_dim: int
    action_repeat: int

    @property
    def physics(self) -> Any:
        """The dm_control physics; only scripted experts read it."""


class BehaviourPolicy(Protocol):
    """A data-collection policy: `reset` at every episode start, then `act` on each step."""

    def reset(self, seed: int | None = None) -> None:
        """Start an episode; a seed re-seeds the policy's generator (None continues its stream)."""

    def act(self, env: PolicyEnv, step: PixelStep) -> np.ndarray:
        """The next action, float32 of shape (env.action_dim,) in [-1, 1]."""


class RandomPolicy:
    """Uniform actions in [-1, 1]^A."""

    def __init__(self, seed: int | None = 0) -> None:
        self._rng = np.random.default_rng(seed)

    def reset(self, seed: int | None = None) -> None:
        """Start an episode; a seed re-seeds the generator."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)

    def act(self, env: PolicyEnv, step: PixelStep) -> np.ndarray:
        """A uniform random action."""
        return self._rng.uniform(-1.0, 1.0, env.action_dim).astype(np.float32)


class NoisyPolicy:
    """With probability `epsilon` a uniform random action, else the base action plus N(0, noise_std²), clipped."""

    def __init__(self, base: BehaviourPolicy, epsilon: float, noise_std: float, seed: int | None = 0) -> None:
        if not 0.0 <= epsilon <= 1.0 or noise_std < 0.0:
            raise ValueError(
                f"need 0 <= epsilon <= 1 and noise_std >= 0, got epsilon={epsilon}, noise_std={noise_std}"
            )
        self.base = base
        self.epsilon = epsilon
        self.noise_std = noise_std
        self._rng = np.random.default_rng(seed)

    def reset(self, seed: int | None = None) -> None:
        """Start an episode for this policy and its base; a seed re-seeds both."""
        if seed is None:
            self.base.reset(None)
            return
        # Independent child streams: a random base must not draw the same numbers as the noise.
        own, base = np.random.SeedSequence(seed).spawn(2)
        self._rng = np.random.default_rng(own)
        self.base.reset(int(base.generate_state(1)[0]))

    def act(self, env: PolicyEnv, step: PixelStep) -> np.ndarray:
        """The base action, perturbed."""
        # The base acts on every step, even when its action is discarded, so a stateful base stays in sync.
        action = np.asarray(self.base.act(env, step), dtype=np.float32)
        if self._rng.random() < self.epsilon:
            return self._rng.uniform(-1.0, 1.0, env.action_dim).astype(np.float32)
        if self.noise_std > 0.0:
            action = action + self._rng.normal(0.0, self.noise_std, action.shape)
        return np.clip(action, -1.0, 1.0).astype(np.float32)


class MixedPolicy(NoisyPolicy):
    """A `NoisyPolicy` whose skill changes per episode, so one dataset spans expert to near-random behaviour.

    At every `reset` it draws a level u ~ U(0, 1) and acts with epsilon = u * max_epsilon and
    noise_std = u * max_noise_std for the whole episode.
    """

    def __init__(
        self,
        base: BehaviourPolicy,
        max_epsilon: float = 1.0,
        max_noise_std: float = 1.0,
        seed: int | None = 0,
    ) -> None:
        super().__init__(base, max_epsilon, max_noise_std, seed)
        self.max_epsilon = max_epsilon
        self.max_noise_std = max_noise_std

    def reset(self, seed: int | None = None) -> None:
        """Start an episode and draw its noise level."""
        super().reset(seed)
        level = self._rng.random()
        self.epsilon = level * self.max_epsilon
        self.noise_std = level * self.max_noise_std


class CheckpointPolicy:
    """A trained agent as a behaviour policy: wraps `act_fn(observation) -> action`.

    `act_fn` receives `step.observation` (uint8, (3 * frame_stack, H, W)) and returns an action in [-1, 1];
    the agent stage builds it from a saved checkpoint (encoder + actor in eval mode, no gradients). This
    class only adapts it to the `BehaviourPolicy` interface: it adds no exploration noise (wrap it in
    `NoisyPolicy` for that) and clips what the agent returns.
    """

    def __init__(self, act_fn: Callable[[np.ndarray], np.ndarray]) -> None:
        self.act_fn = act_fn

    def reset(self, seed: int | None = None) -> None:
        """Nothing to reset: the wrapped agent acts deterministically from pixels."""

    def act(self, env: PolicyEnv, step: PixelStep) -> np.ndarray:
        """The agent's action for this step's pixels."""
        action = np.asarray(self.act_fn(step.observation), dtype=np.float32).reshape(env.action_dim)
        return np.clip(action, -1.0, 1.0)


class RandomDiscretePolicy:
    """Uniform discrete actions for a batch of environments (Procgen)."""

    def __init__(self, num_actions: int, seed: int | None = 0) -> None:
        if num_actions <= 0:
            raise ValueError(f"num_actions must be positive, got {num_actions}")
        self.num_actions = num_actions
        self._rng = np.random.default_rng(seed)

    def reset(self, seed: int | None = None) -> None:
        """A seed re-seeds the generator."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)

    def act_batch(self, n: int) -> np.ndarray:
        """One uniform action per environment, int64 of shape (n,)."""
        return self._rng.integers(0, self.num_actions, size=n, dtype=np.int64)


# --- scripted experts -------------------------------------------------------------------------------------


def actuator_moment(physics) -> np.ndarray:
    """Dense (nu, nv) map from actuator controls to generalized forces at the current state."""
    model, data = physics.model.ptr, physics.data.ptr
    # MuJoCo stores the moment arms sparsely; they include gears and tendon coefficients (point_mass-hard
    # randomizes those every episode), so the expert reads them instead of assuming them.
    dense = np.zeros((model.nu, model.nv))
    mujoco.mju_sparse2dense(
        dense, data.actuator_moment, data.moment_rownnz, data.moment_rowadr, data.moment_colind
    )
    return dense


def force_to_action(physics, generalized_force: np.ndarray) -> np.ndarray:
    """The normalized action in [-1, 1] whose actuator forces best match `generalized_force` (least squares)."""
    control = np.linalg.lstsq(actuator_moment(physics).T, generalized_force, rcond=None)[0]
    low, high = physics.model.actuator_ctrlrange.T
    return np.clip(2.0 * (control - low) / (high - low) - 1.0, -1.0, 1.0).astype(np.float32)


class PointMassExpert:
    """PD control of the point mass toward the target (easy and hard: it inverts the actuator directions)."""

    def __init__(self, kp: float = 10.0, kd: float = 1.0) -> None:
        self.kp, self.kd = kp, kd

    def reset(self, seed: int | None = None) -> None:
        """Deterministic: nothing to reset."""

    def act(self, env: PolicyEnv, step: PixelStep) -> np.ndarray:
        """Push along the vector to the target, damped by the velocity."""
        physics = env.physics
        to_target = physics.named.data.geom_xpos["target", :2] - physics.named.data.geom_xpos["pointmass", :2]
        return force_to_action(physics, self.kp * to_target - self.kd * physics.data.qvel)


class ReacherExpert:
    """Resolved-rate control of the fingertip toward the target: a damped Jacobian inverse, scaled by inertia.

    A plain Jacobian transpose with gains large enough to reach the target chatters between the torque
    limits (the wrist is light and the action is held for `action_repeat` steps); asking for a joint
    acceleration and multiplying by the mass matrix keeps the loop well damped.
    """

    def __init__(self, kp: float = 100.0, kd: float = 20.0, damping: float = 0.02) -> None:
        self.kp, self.kd, self.damping = kp, kd, damping

    def reset(self, seed: int | None = None) -> None:
        """Deterministic: nothing to reset."""

    def act(self, env: PolicyEnv, step: PixelStep) -> np.ndarray:
        """Torque M (J⁺ kp * finger→target - kd * joint velocity)."""
        physics = env.physics
        model, data = physics.model.ptr, physics.data.ptr
        to_target = (physics.named.data.geom_xpos["target"] - physics.named.data.geom_xpos["finger"])[:2]
        jacobian = np.zeros((3, model.nv))
        mujoco.mj_jacBody(model, data, jacobian, None, model.body("finger").id)
        jacobian = jacobian[:2]
        # Damped least squares: a bounded inverse when the arm is stretched out or folded (singular).
        inverse = jacobian.T @ np.linalg.inv(jacobian @ jacobian.T + self.damping**2 * np.eye(2))
        acceleration = inverse @ (self.kp * to_target) - self.kd * physics.data.qvel
        torque = np.zeros(model.nv)
        mujoco.mj_mulM(model, data, torque, acceleration)
        return force_to_action(physics, torque)


class CartpoleExpert:
    """Energy-based swing-up, then an LQR that balances the pole upright over the cart's centre.

    The LQR gain comes from MuJoCo's own finite-difference linearization at the upright rest state (held
    over `env.action_repeat` physics steps), so it matches the simulated cart and pole exactly. Swing-up
    pumps the pole's energy toward that of the upright rest state (Åström and Furuta, 2000).
    """

    def __init__(
        self,
        catch_cosine: float = 0.85,
        swing_gain: float = 10.0,
        centre_gain: tuple[float, float] = (1.5, 1.5),
        state_cost: tuple[float, float, float, float] = (1.0, 10.0, 0.1, 0.1),
        control_cost: float = 1.0,
    ) -> None:
        self.catch_cosine = catch_cosine
        self.swing_gain = swing_gain
        self.centre_gain = centre_gain
        self.state_cost = np.diag(state_cost)
        self.control_cost = control_cost
        self._gain: np.ndarray | None = None
        self._gain_key: tuple[int, int] | None = None

    def reset(self, seed: int | None = None) -> None:
        """Deterministic: nothing to reset."""

    def act(self, env: PolicyEnv, step: PixelStep) -> np.ndarray:
        """LQR near upright, energy pumping elsewhere."""
        physics = env.physics
        if physics.model.nv != 2:
            raise ValueError(
                "the cartpole expert controls one pole (balance, swingup); this model has "
                f"{physics.model.nv - 1} poles"
            )
        x, angle = physics.data.qpos
        x_vel, angle_vel = physics.data.qvel
        angle = (angle + np.pi) % (2 * np.pi) - np.pi  # 0 is upright
        if np.cos(angle) > self.catch_cosine:
            gain = self._lqr_gain(physics, env.action_repeat)
            control = -gain @ np.array([x, angle, x_vel, angle_vel])
        else:
            control = (
                self._swing_up(physics, angle, angle_vel)
                - self.centre_gain[0] * x
                - self.centre_gain[1] * x_vel
            )
        return np.clip(np.atleast_1d(control), -1.0, 1.0).astype(np.float32)

    def _swing_up(self, physics, angle: float, angle_vel: float) -> float:
        model = physics.model.ptr
        pole = model.body("pole_1").id
        mass = model.body_mass[pole]
        com = model.body_ipos[pole, 2]
        inertia = model.body_inertia[pole, 1] + mass * com**2  # about the hinge
        gravity = -model.opt.gravity[2]
        # Energy relative to the upright rest state. dE/dt = -m l ẍ θ̇ cos θ, so pushing the cart against
        # sign(θ̇ cos θ) while E < 0 pumps energy in, and with E > 0 the same law takes it out.
        energy = 0.5 * inertia * angle_vel**2 + mass * gravity * com * (np.cos(angle) - 1.0)
        return self.swing_gain * energy * np.sign(angle_vel * np.cos(angle))

    def _lqr_gain(self, physics, action_repeat: int) -> np.ndarray:
        key = (id(physics.model.ptr), action_repeat)
        if self._gain is None or self._gain_key != key:
            a, b = _linearize(physics.model.ptr, action_repeat)
            self._gain = _discrete_lqr(a, b, self.state_cost, self.control_cost * np.eye(b.shape[1]))
            self._gain_key = key
        return self._gain


def _discrete_lqr(a: np.ndarray, b: np.ndarray, q: np.ndarray, r: np.ndarray) -> np.ndarray:
    """The gain K of u = -K x minimizing sum x'Qx + u'Ru for x' = Ax + Bu (Riccati value iteration)."""
    p = q.copy()
    for _ in range(10_000):
        gain = np.linalg.solve(r + b.T @ p @ b, b.T @ p @ a)
        p_next = q + a.T @ p @ (a - b @ gain)
        if np.allclose(p_next, p, rtol=1e-10, atol=1e-12):
            return np.linalg.solve(r + b.T @ p_next @ b, b.T @ p_next @ a)
        p = p_next
    raise RuntimeError("the Riccati iteration did not converge: is (A, B) stabilizable?")


def _linearize(model, action_repeat: int, eps: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """A, B of x' = A x + B u around the rest state x = 0, u = 0, with u held for `action_repeat` steps.

    Central finite differences through `mj_step` itself (MuJoCo's `mjd_transitionFD` refuses RK4, which
    cartpole uses); the state is (qpos, qvel), valid for models whose joints are all hinges or slides.
    """
    data = mujoco.MjData(model)  # a scratch copy: linearizing must not touch the episode's state
    n, m = model.nq + model.nv, model.nu

    def transition(state: np.ndarray, control: np.ndarray) -> np.ndarray:
        mujoco.mj_resetData(model, data)
        data.qpos[:], data.qvel[:], data.ctrl[:] = state[: model.nq], state[model.nq :], control
        for _ in range(action_repeat):
            mujoco.mj_step(model, data)
        return np.concatenate([data.qpos, data.qvel])

    def jacobian(perturb: Callable[[np.ndarray], np.ndarray], size: int) -> np.ndarray:
        columns = [(perturb(eps * e) - perturb(-eps * e)) / (2 * eps) for e in np.eye(size)]
        return np.stack(columns, axis=1)

    a = jacobian(lambda dx: transition(dx, np.zeros(m)), n)
    b = jacobian(lambda du: transition(np.zeros(n), du), m)
    return a, b


EXPERTS: dict[str, Callable[[], BehaviourPolicy]] = {
    "point_mass": PointMassExpert,
    "reacher": ReacherExpert,
    "cartpole": CartpoleExpert,
}


def make_expert(domain: str) -> BehaviourPolicy:
    """The scripted expert for a dm_control domain."""
    if domain not in EXPERTS:
        raise ValueError(
            f"no scripted expert for domain {domain!r}; supported domains: {', '.join(sorted(EXPERTS))}"
        )
    return EXPERTS[domain]()


def make_policy(
    quality: str,
    domain: str,
    seed: int = 0,
    medium_epsilon: float = 0.3,
    medium_noise_std: float = 0.3,
    mixed_max_epsilon: float = 1.0,
    mixed_max_noise_std: float = 1.0,
) -> BehaviourPolicy:
    """The behaviour policy for a dataset quality.

    random: uniform actions. expert: the domain's scripted expert. medium: the expert with probability
    `medium_epsilon` of a random action and N(0, medium_noise_std²) noise otherwise. mixed: per episode a
    level u ~ U(0, 1) scales both to u * mixed_max_epsilon and u * mixed_max_noise_std (see `MixedPolicy`).
    """
    if quality == "random":
        return RandomPolicy(seed)
    if quality not in QUALITIES:
        raise ValueError(f"unknown dataset quality {quality!r}; choose one of {', '.join(QUALITIES)}")
    expert = make_expert(domain)
    if quality == "expert":
        return expert
    if quality == "medium":
        return NoisyPolicy(expert, medium_epsilon, medium_noise_std, seed)
    return MixedPolicy(expert, mixed_max_epsilon, mixed_max_noise_std, seed)
