"""Trained agents shared across runs and sweep jobs, keyed by everything that shapes them.

`baseline` and `upsampled` train the same agent on the same pixels, as do `augmented` and `aug_upsampled`: a
four-variant comparison needs two agents per seed, not four. The first run to train an agent publishes its
weights under <paths.data_dir>/agents/<key>/; a later run whose key matches copies them instead of training.
The key hashes the resolved config of every group the agent stage reads, the seed, the installed packages and
the synthvis source, so changing any of them (or the code) trains anew. Set `reuse_agent=false` to always train.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from synthvis.utils.files import atomic_write, atomic_write_json, content_key
from synthvis.utils.versions import package_versions

log = logging.getLogger(__name__)

# Config keys that shape the agent stage's outputs (its weights and its end-of-training eval.json).
AGENT_KEYS = ("seed", "env", "image_size", "action_repeat", "latent_dim", "matmul_precision", "data", "augment",
              "agent", "agent_steps", "trainer", "callbacks", "eval")
FILES = ("agent.pt", "eval.json")  # what a cached agent holds (eval.json only with callbacks.evaluation.at_end)
SOURCE = "source.json"  # written last: marks a cached agent complete


@functools.cache
def source_fingerprint() -> str:
    """A hash of the synthvis package's Python source: an edited agent or datamodule never reuses stale weights."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def agent_spec(cfg: DictConfig) -> dict[str, Any]:
    """The resolved values the agent's key is made of."""
    spec: dict[str, Any] = {}
    for key in AGENT_KEYS:
        value = OmegaConf.select(cfg, key)
        spec[key] = OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) \
            else value
    return spec | {"packages": package_versions(), "source": source_fingerprint()}


def agent_cache_dir(cfg: DictConfig) -> Path:
    """Where the agent of `cfg` is (or will be) cached."""
    agent_name = str(cfg.agent._target_).rsplit(".", 1)[-1].lower()
    return Path(cfg.paths.data_dir) / "agents" / f"{agent_name}-seed{cfg.seed}-{content_key(agent_spec(cfg))}"


def cached_agent(cfg: DictConfig) -> Path | None:
    """The cache folder of a finished agent with the same key as `cfg`'s, if one exists."""
    folder = agent_cache_dir(cfg)
    return folder if (folder / SOURCE).is_file() and (folder / "agent.pt").is_file() else None


def _copy_files(source: Path, target: Path) -> None:
    """Copy the cached files present in `source` into `target`, each written atomically (utils.files)."""
    for name in FILES:
        if (source / name).is_file():
            with (source / name).open("rb") as original:
                atomic_write(target / name, lambda handle: shutil.copyfileobj(original, handle))


def publish_agent(cfg: DictConfig, stage_dir: Path, result: dict[str, Any]) -> Path:
    """Cache the agent just trained in `stage_dir` (a no-op when a concurrent job already published this key)."""
    folder = agent_cache_dir(cfg)
    if (folder / SOURCE).is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    _copy_files(stage_dir, staging)
    atomic_write_json(staging / SOURCE, {"trained_in": str(stage_dir.parent), "key": folder.name,
                                         "spec": agent_spec(cfg), "result": result})
    try:
        staging.replace(folder)
    except OSError:  # another job published the same key first: theirs is identical
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def restore_agent(folder: Path, stage_dir: Path) -> dict[str, Any]:
    """Copy a cached agent into `stage_dir`; the stage result it was trained with, plus where it came from."""
    source = json.loads((folder / SOURCE).read_text())
    _copy_files(folder, stage_dir)
    log.info("reusing the agent trained in %s (same agent config, seed, packages and code; key %s); "
             "reuse_agent=false trains anew", source["trained_in"], folder.name)
    return source["result"] | {"weights": str(stage_dir / "agent.pt"),
                               "reused": {"cache": str(folder), "trained_in": source["trained_in"]}}
