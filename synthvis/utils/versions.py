"""Versions of the packages a run depends on, recorded next to its artifacts."""

from __future__ import annotations

import platform
from importlib import metadata

TRACKED_PACKAGES = ("synthvis", "torch", "lightning", "hydra-core", "numpy", "kornia", "dm-control", "mujoco",
                    "procgen-mirror", "h5py", "torchmetrics")


def package_versions() -> dict[str, str]:
    """Python and the tracked packages' installed versions ('missing' when absent)."""
    versions = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions
