"""Portable weights: a module's state dict with the resolved config that rebuilds it, loadable on any device."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from synthvis.utils.files import atomic_write
from synthvis.utils.finite import NonFiniteError, non_finite_entries


def save_weights(path: Path, module: torch.nn.Module, config: DictConfig, **extra: Any) -> None:
    """Portable weights: the state dict plus the resolved config that rebuilds the module (loads on CPU).

    Written atomically, and refused if any weight is not finite.
    """
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    bad = non_finite_entries(state)
    if bad:
        raise NonFiniteError(f"refusing to write {path}: non-finite values in {', '.join(bad[:5])}"
                             f"{' ...' if len(bad) > 5 else ''}; the training that produced them diverged")
    payload = {"state_dict": state, "config": OmegaConf.to_container(config, resolve=True), **extra}
    atomic_write(path, lambda handle: torch.save(payload, handle))


def load_weights(path: Path, **overrides: Any) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild a module saved by `save_weights` and load its state dict (on CPU).

    Also returns the rest of the file: its `config` (as a DictConfig) and the extras saved with it.
    """
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run the stage that writes it first (see `stages=[...]`)")
    payload = torch.load(path, map_location="cpu", weights_only=False)
    bad = non_finite_entries(payload["state_dict"])
    if bad:
        raise NonFiniteError(f"{path} holds non-finite weights ({', '.join(bad[:5])}): the stage that wrote it "
                             f"diverged; delete {path.parent} and rerun that stage (e.g. with a lower learning rate)")
    payload["config"] = OmegaConf.create(payload["config"])
    module = instantiate(payload["config"], **overrides)
    module.load_state_dict(payload.pop("state_dict"))
    return module, payload


def saved_updates(path: Path) -> int:
    """The update count saved with the weights in `path`, without reading the weights (memory-mapped)."""
    return int(torch.load(path, map_location="cpu", mmap=True, weights_only=False)["updates"])
