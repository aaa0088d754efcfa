"""Atomic writes and content keys: artifacts are either complete or absent."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO


def _default_file_mode() -> int:
    """The mode a plain open() would give a new file under the current umask (mkstemp's files are 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> None:
    """Write `path` through `write(handle)` into a temp file in the same folder, fsync it, then rename.

    Readers see the old file or the complete new one, never a part: the temp file shares the folder (so the
    rename is atomic on every filesystem) and reaches the disk before the rename does.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _default_file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a power cut
    finally:
        os.close(directory)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` atomically (see `atomic_write`)."""
    atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` atomically (UTF-8)."""
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | Path, data: Any) -> None:
    """Write `data` as indented JSON, atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def content_key(spec: Any, length: int = 12) -> str:
    """A short stable hash of a JSON-serialisable spec (dict key order does not matter)."""
    canonical = json.dumps(spec, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:length]


def folder_fingerprint(folder: str | Path) -> list[tuple[str, int]]:
    """Names and sizes of the files in `folder` (recursively), sorted: identifies a dataset's content cheaply."""
    folder = Path(folder)
    if folder.is_file():
        return [(folder.name, folder.stat().st_size)]
    return sorted((str(p.relative_to(folder)), p.stat().st_size) for p in folder.rglob("*")
                  if p.is_file() and p.name != "metadata.json" and not p.name.startswith("."))
