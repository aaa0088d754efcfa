"""The step record every synthvis pixel environment returns."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class PixelStep:
    """One agent step: the newest frame, the frame-stacked observation, and the reward that led to it.

    Rows follow V-D4RL's convention: `action` and `reward` are what produced `frame`; at reset the action is
    zero and the reward 0.
    """

    frame: np.ndarray  # (3, H, W) uint8, newest frame
    observation: np.ndarray  # (3 * frame_stack, H, W) uint8, oldest frame first
    action: np.ndarray  # action that produced this step (zeros at reset)
    reward: float
    discount: float
    first: bool
    last: bool
