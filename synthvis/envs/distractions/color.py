"""DCS colour distraction: every material's RGB redrawn near its original value."""

from __future__ import annotations

import numpy as np

from synthvis.envs.distractions.difficulty import DistractionMode

# DCS's dynamic colours drift by a Gaussian step of this fraction of the scale per physics step.
DYNAMIC_STEP_STD = 0.03


class ColorDistraction:
    """Resample all `model.mat_rgba[:, :3]` uniformly within +-scale of the original, clipped to [0, 1].

    Every geom of the DMC domains has a material, so this recolours the agent and the floor. Alpha is left
    alone (the background distraction owns the floor's alpha).
    """

    def __init__(self, mode: DistractionMode, dynamic: bool = False) -> None:
        self.mode = mode
        self.dynamic = dynamic
        self._original: np.ndarray | None = None
        self._rng: np.random.Generator | None = None

    def on_reset(self, physics, episode: int) -> None:
        """Draw this episode's colours from the original ones (never from last episode's)."""
        rgb = physics.model.mat_rgba[:, :3]
        if self._original is None:
            # The model persists across episodes, so the originals must be saved before the first edit.
            self._original = rgb.copy()
        self._rng = self.mode.episode_rng(episode, "color")
        scale = self.mode.scale
        rgb[:] = np.clip(self._original + self._rng.uniform(-scale, scale, self._original.shape), 0.0, 1.0)

    def on_step(self, physics) -> None:
        """In dynamic mode, random-walk the colours inside the same box around the originals."""
        if not self.dynamic or self._rng is None or self._original is None:
            return
        scale = self.mode.scale
        rgb = physics.model.mat_rgba[:, :3]
        walked = rgb + self._rng.normal(0.0, DYNAMIC_STEP_STD * scale, rgb.shape)
        lower = np.clip(self._original - scale, 0.0, 1.0)
        upper = np.clip(self._original + scale, 0.0, 1.0)
        rgb[:] = np.clip(walked, lower, upper)
