"""OmegaConf resolvers the config tree uses (registered when synthvis is imported)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from omegaconf import OmegaConf

MAX_DIRNAME = 120  # well under the 255-byte file-name limit, with room for the job number


def bounded_dirname(overrides: str) -> str:
    """A sweep job's override string as a folder name: kept whole when short, else every override shortened.

    Long overrides give up characters first (dotted keys to initials, `data.source.path.root` -> `d.s.p.root`,
    then values elided in the middle with `~`), so the override that tells two jobs apart stays visible; a hash
    of the full string keeps names unique.
    """
    name = overrides.replace("/", "_")
    if len(name) <= MAX_DIRNAME:
        return name
    digest = hashlib.sha256(overrides.encode()).hexdigest()[:8]
    items = _split_overrides(name)
    width = _fair_width([len(item) for item in items], MAX_DIRNAME - len(digest) - 1 - (len(items) - 1))
    shortened = ",".join(_shorten_override(item, width) for item in items)
    # More overrides than there is room for even a character each: the hash alone tells the jobs apart.
    return f"{shortened[:MAX_DIRNAME - len(digest) - 1]}-{digest}"


def _split_overrides(overrides: str) -> list[str]:
    """`a=1,b=[x,y],c='p,q'` -> ['a=1', 'b=[x,y]', "c='p,q'"]: commas inside brackets or quotes are part of a value."""
    items, depth, start, quote = [], 0, 0, ""
    for index, char in enumerate(overrides):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{(":
            depth += 1
        elif char in "]})":
            depth = max(depth - 1, 0)
        elif char == "," and depth == 0:
            items.append(overrides[start:index])
            start = index + 1
    items.append(overrides[start:])
    return items


def _fair_width(lengths: list[int], budget: int) -> int:
    """The largest width w with sum(min(length, w)) <= budget: only overrides longer than w are shortened."""
    width = 0
    for candidate in sorted(set(lengths)):
        if sum(min(length, candidate) for length in lengths) > budget:
            break
        width = candidate
    # Between the last length that fit and the next, share what is left equally among the longer overrides.
    longer = [length for length in lengths if length > width]
    if longer:
        width += (budget - sum(min(length, width) for length in lengths)) // len(longer)
    return max(width, 0)


def _shorten_override(item: str, width: int) -> str:
    """`key=value` in at most `width` characters: the key's leading parts to initials, then the value's middle."""
    if len(item) <= width:
        return item
    key, equals, value = item.partition("=")
    bare = key.lstrip("+~")  # Hydra's add/delete prefixes stay as they are
    parts = bare.split(".")
    key = key[:len(key) - len(bare)] + ".".join([part[:1] for part in parts[:-1]] + parts[-1:])
    if len(key) + len(equals) + len(value) <= width:
        return key + equals + value
    room = width - len(key) - len(equals)
    if equals and room >= 3:
        return key + equals + _elide_middle(value, room)
    return _elide_middle(key + equals + value, width)


def _elide_middle(text: str, width: int) -> str:
    """`text` in at most `width` characters, its start and end kept around a `~`."""
    if len(text) <= width:
        return text
    if width < 3:
        return text[:width]
    head = width // 2
    tail = width - 1 - head
    return text[:head] + "~" + text[len(text) - tail:]


def newest_run(runs_root: str | Path) -> Path:
    """The run under `runs_root` worked on last: the one whose config.yaml (rewritten at every start) is newest."""
    runs = sorted(Path(runs_root).glob("*/config.yaml"), key=lambda config: config.stat().st_mtime)
    if not runs:
        raise FileNotFoundError(f"resume=true: no run to resume under {Path(runs_root).resolve()} (no <run>/config.yaml); "
                                "start one with `python train.py`, or name a run directory with run_dir=<dir>")
    return runs[-1].parent


def run_directory(run_dir: str | None, resume: bool, runs_root: str, fresh_name: str) -> str:
    """Where a single run writes: `run_dir` if given, the newest run if `resume`, else a fresh `runs_root/fresh_name`."""
    if run_dir:
        return str(run_dir)
    if resume:
        return str(newest_run(runs_root))
    return f"{runs_root}/{fresh_name}"


def register_resolvers() -> None:
    """Register `${synthvis.dirname:...}` and `${synthvis.run_dir:...}` (idempotent)."""
    if not OmegaConf.has_resolver("synthvis.dirname"):
        OmegaConf.register_new_resolver("synthvis.dirname", bounded_dirname)
    if not OmegaConf.has_resolver("synthvis.run_dir"):
        # Cached: Hydra resolves hydra.run.dir more than once, and every read must name the same directory.
        OmegaConf.register_new_resolver("synthvis.run_dir", run_directory, use_cache=True)
