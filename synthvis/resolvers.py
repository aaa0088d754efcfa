"""OmegaConf resolvers the config tree uses (registered when synthvis is imported)."""

from __future__ import annotations

import hashlib

from omegaconf import OmegaConf

MAX_DIRNAME = 120  # well under the 255-byte file-name limit, with room for the job number


def bounded_dirname(overrides: str) -> str:
    """A sweep job's override string as a folder name: kept whole when short, else a prefix plus a hash."""
    name = overrides.replace("/", "_")
    if len(name) <= MAX_DIRNAME:
        return name
    return f"{name[:MAX_DIRNAME - 9]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def register_resolvers() -> None:
    """Register `${synthvis.dirname:...}` (idempotent)."""
    if not OmegaConf.has_resolver("synthvis.dirname"):
        OmegaConf.register_new_resolver("synthvis.dirname", bounded_dirname)
