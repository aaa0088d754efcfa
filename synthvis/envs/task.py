"""The name of the task an env config describes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def task_name(env: Mapping[str, Any]) -> str | None:
    """The Procgen game, or dm_control's <domain>_<task>, of an env config; None when it names neither."""
    if env.get("game"):
        return str(env["game"])
    if env.get("domain") and env.get("task"):
        return f"{env['domain']}_{env['task']}"
    return None
