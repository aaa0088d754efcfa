"""The exploration / target-smoothing standard deviation of DrQ-v2's policy as a function of the update step."""

from __future__ import annotations

import re

_LINEAR = re.compile(r"^\s*linear\(\s*([^,]+),\s*([^,]+),\s*([^,)]+)\)\s*$")


class StdSchedule:
    """sigma(step) from a V-D4RL schedule spec: a constant (0.2 or "0.2") or "linear(init,final,duration)".

    V-D4RL drqbc/utils.py schedule: mix = clip(step / duration, 0, 1); sigma = (1 - mix) * init + mix * final.
    """

    def __init__(self, spec: str | float) -> None:
        self.spec = spec
        match = _LINEAR.match(str(spec))
        if match:
            self.init, self.final, self.duration = (float(g) for g in match.groups())
            if self.duration <= 0:
                raise ValueError(f"std schedule {spec!r}: duration must be > 0")
        else:
            try:
                self.init = self.final = float(spec)
            except ValueError:
                raise ValueError(f"std schedule {spec!r}: expected a number or 'linear(init,final,duration)'") from None
            self.duration = 1.0

    def __call__(self, step: int) -> float:
        """sigma at `step`."""
        mix = min(max(step / self.duration, 0.0), 1.0)
        return (1.0 - mix) * self.init + mix * self.final

    def __repr__(self) -> str:
        return f"StdSchedule({self.spec!r})"
