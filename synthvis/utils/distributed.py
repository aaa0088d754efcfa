"""Multi-process (DDP) runs before any Trainer exists: whether this process is a rank other than 0, and whether a
Trainer config starts its other processes by running the command line again."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lightning.pytorch.strategies import DDPStrategy, FSDPStrategy, StrategyRegistry

# Where the launchers Lightning works with put a process's rank: its subprocess launcher sets LOCAL_RANK in the
# processes it starts (and the user sets NODE_RANK on the other machines of a multi-node run), torchrun sets RANK,
# SLURM sets SLURM_PROCID.
RANK_VARIABLES = ("RANK", "SLURM_PROCID", "NODE_RANK", "LOCAL_RANK")


def nonzero_rank(environ: Mapping[str, str]) -> str | None:
    """The variable that makes this process a rank other than 0, as `NAME=value`; None for rank 0 or one process."""
    for name in RANK_VARIABLES:
        if environ.get(name, "").isdigit() and int(environ[name]) > 0:
            return f"{name}={environ[name]}"
    return None


def relaunches_command_line(trainer: Mapping[str, Any]) -> bool:
    """Whether Lightning starts the other processes of this Trainer config by running the command line again.

    Its subprocess launcher does, for more than one process, with the strategies it does not spawn or fork: ddp
    and its variants, fsdp, deepspeed, and `auto` (which picks ddp for several devices).
    """
    devices, nodes = trainer.get("devices", "auto"), trainer.get("num_nodes", 1)
    one_device = devices in (1, "1") or (not isinstance(devices, (str, int)) and len(devices) == 1)
    if nodes == 1 and one_device:
        return False
    strategy = trainer.get("strategy", "auto")
    if strategy == "auto":
        return True
    if strategy not in StrategyRegistry:
        return False  # Lightning refuses an unknown name itself, naming the valid ones
    entry = StrategyRegistry[strategy]
    if issubclass(entry["strategy"], DDPStrategy):  # deepspeed's too
        return entry["init_params"].get("start_method", "popen") == "popen"
    return issubclass(entry["strategy"], FSDPStrategy)
