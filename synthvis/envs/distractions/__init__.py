"""DCS-style visual distractions (colour, camera, background) for `DMCPixelEnv`, written from the DCS spec.

    env = DMCPixelEnv("walker", "walk", distractions=make_distractions("walker", "hard"))

Results on the procedural background source are "DCS-style (procedural)", not the published DAVIS benchmark.
"""

from __future__ import annotations

from collections.abc import Sequence

from synthvis.envs.distractions.background import DEFAULT_TEXTURE_SIZE, BackgroundDistraction
from synthvis.envs.distractions.background_sources import (
    BACKGROUND_SOURCES,
    BackgroundSource,
    BackgroundSourceError,
    DavisSource,
    ImageFolderSource,
    ProceduralSource,
    make_background_source,
    procedural_textures,
)
from synthvis.envs.distractions.camera import CameraDistraction
from synthvis.envs.distractions.color import ColorDistraction
from synthvis.envs.distractions.difficulty import (
    DIFFICULTY_NUM_VIDEOS,
    DIFFICULTY_SCALE,
    DISTRACTION_MODES,
    DistractionMode,
    parse_mode,
    vd4rl_seed,
)
from synthvis.envs.dmc import Distraction, default_camera

DISTRACTION_KINDS = ("color", "camera", "background")

__all__ = [
    "BACKGROUND_SOURCES",
    "DIFFICULTY_NUM_VIDEOS",
    "DIFFICULTY_SCALE",
    "DISTRACTION_KINDS",
    "DISTRACTION_MODES",
    "BackgroundDistraction",
    "BackgroundSource",
    "BackgroundSourceError",
    "CameraDistraction",
    "ColorDistraction",
    "DavisSource",
    "DistractionMode",
    "ImageFolderSource",
    "ProceduralSource",
    "make_background_source",
    "make_distractions",
    "parse_mode",
    "procedural_textures",
    "vd4rl_seed",
]


def make_distractions(
    domain: str,
    mode: str,
    kinds: Sequence[str] = DISTRACTION_KINDS,
    background_source: BackgroundSource | str | None = None,
    background_path: str | None = None,
    seed: int | None = None,
    dynamic: bool = False,
    camera_id: int | None = None,
    texture_size: int = DEFAULT_TEXTURE_SIZE,
) -> list[Distraction]:
    """The distractions of `kinds` for `mode` (see DISTRACTION_MODES), in DCS's order: background, camera, colour.

    `seed=None` uses V-D4RL's seed for the difficulty; the background defaults to the procedural test split
    (a string names a source for `make_background_source`, with `background_path` for folder sources);
    `camera_id` must be the camera the env renders (default: the env's default). Build one list per env:
    each distraction remembers the model it edits.
    """
    unknown = set(kinds) - set(DISTRACTION_KINDS)
    if unknown:
        raise ValueError(f"unknown distraction kinds {sorted(unknown)}; choose from {DISTRACTION_KINDS}")
    parsed = parse_mode(mode, seed)
    distractions: list[Distraction] = []
    if "background" in kinds:
        source = background_source
        if source is None or isinstance(source, str):
            source = make_background_source(source or "procedural", background_path, split=None)
        distractions.append(
            BackgroundDistraction(parsed, domain, source, dynamic=dynamic, texture_size=texture_size)
        )
    if "camera" in kinds:
        camera = default_camera(domain) if camera_id is None else camera_id
        distractions.append(CameraDistraction(parsed, domain, camera_id=camera, dynamic=dynamic))
    if "color" in kinds:
        distractions.append(ColorDistraction(parsed, dynamic=dynamic))
    return distractions
