"""Checkpoints that cannot be half-trusted: written atomically in their own folder, checked before resuming."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from synthvis.utils.files import atomic_write

log = logging.getLogger(__name__)

LAST = "last.ckpt"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's torch checkpoint IO, saving through a temp file in the checkpoint's folder, fsynced, renamed.

    Lightning's own writer stages the file elsewhere and moves it, which across filesystems is a copy that a full
    disk or a kill can cut short under the final name.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        """Write `checkpoint` to `path` atomically."""
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        atomic_write(path, lambda handle: torch.save(checkpoint, handle))


def resumable_checkpoint(folder: Path) -> str | None:
    """The newest checkpoint in `folder` that loads (last.ckpt first, then step_*.ckpt newest first), or None.

    A checkpoint that fails to load is renamed `<name>.corrupt-<time>` with a warning, so a rerun resumes from
    the previous good one, or restarts the stage, instead of failing on it forever.
    """
    candidates = [folder / LAST, *sorted(folder.glob("step_*.ckpt"), reverse=True)]
    for path in candidates:
        if not path.is_file():
            continue
        try:
            torch.load(path, map_location="cpu", weights_only=False)
        except Exception as error:  # noqa: BLE001 - any unreadable file is set aside the same way
            aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
            path.rename(aside)
            log.warning("checkpoint %s does not load (%s: %s); moved it to %s", path, type(error).__name__,
                        error, aside.name)
            continue
        log.info("resuming from %s", path)
        return str(path)
    return None


def drop_resume_state(folder: Path) -> None:
    """Delete a finished stage's last.ckpt: only an unfinished stage resumes from it (the weights file it exported
    is what later stages and runs read; step checkpoints kept on request stay)."""
    (folder / LAST).unlink(missing_ok=True)


def checkpoint_bytes(module: torch.nn.Module, optimizers: list[torch.optim.Optimizer]) -> int:
    """Estimated size of one checkpoint: the module's state plus two Adam moments per optimized parameter."""
    state = sum(t.numel() * t.element_size() for t in module.state_dict().values())
    moments = sum(2 * p.numel() * p.element_size() for opt in optimizers for g in opt.param_groups for p in g["params"])
    return state + moments
