"""DCS background distraction: the skybox texture replaced by frames of a background video."""

from __future__ import annotations

import mujoco
import numpy as np

from synthvis.envs.distractions.background_sources import BackgroundSource
from synthvis.envs.distractions.difficulty import DistractionMode

# DCS's floor opacity per domain: walker and cheetah keep their opaque floor (the video shows only in the
# sky), reacher's top-down view sees the video through an invisible floor, every other domain through a
# 30%-opaque one. Humanoid, which DCS does not cover, takes the "other" value.
GROUND_PLANE_ALPHA = {"walker": 1.0, "cheetah": 1.0, "reacher": 0.0}
DEFAULT_GROUND_PLANE_ALPHA = 0.3
GROUND_MATERIAL = "grid"
# Re-uploading costs ~2 ms at 128 px and ~4 ms at 256 px on llvmpipe, and 128 px is already sharper than an
# 84 px observation needs (DCS's 800 px costs ~26 ms).
DEFAULT_TEXTURE_SIZE = 128


def skybox_texture_id(model) -> int:
    """Index of the model's skybox texture, found by its type."""
    skyboxes = np.flatnonzero(np.asarray(model.tex_type) == int(mujoco.mjtTexture.mjTEXTURE_SKYBOX))
    if len(skyboxes) == 0:
        raise ValueError(
            "the model has no skybox texture, so the background distraction has nothing to replace"
        )
    return int(skyboxes[0])


class BackgroundDistraction:
    """Show video frames on the skybox: one frame per episode, or (dynamic) frames advancing each step.

    The skybox is shrunk to a square `texture_size` texture, which MuJoCo repeats on all six cube faces, as
    DCS does with its square 800 px texture. Episode k draws a video from the first N of `source` (N from the
    difficulty) and a start frame; dynamic mode then plays it forward and backward (ping-pong).
    """

    def __init__(
        self,
        mode: DistractionMode,
        domain: str,
        source: BackgroundSource,
        dynamic: bool = False,
        texture_size: int = DEFAULT_TEXTURE_SIZE,
        ground_plane_alpha: float | None = None,
    ) -> None:
        if texture_size <= 0:
            raise ValueError(f"texture_size must be positive, got {texture_size}")
        if len(source) == 0:
            raise ValueError("the background source holds no videos")
        self.mode = mode
        self.domain = domain
        self.source = source
        self.dynamic = dynamic
        self.texture_size = texture_size
        self.ground_plane_alpha = (
            GROUND_PLANE_ALPHA.get(domain, DEFAULT_GROUND_PLANE_ALPHA)
            if ground_plane_alpha is None
            else ground_plane_alpha
        )
        num_videos = mode.num_videos
        self.pool_size = len(source) if num_videos is None else min(num_videos, len(source))
        self._texture_id: int | None = None
        # What `_video` holds: (video index, None) for a whole video, (video index, frame) for one frame.
        self._loaded: tuple[int, int | None] | None = None
        self._video = np.zeros((0, texture_size, texture_size, 3), np.uint8)
        self._frame = 0
        self._direction = 1
        # What the GPU texture shows: (`_loaded`, frame), so re-applying an unchanged draw skips the upload.
        self._uploaded: tuple[tuple[int, int | None], int] | None = None

    def on_reset(self, physics, episode: int) -> None:
        """Draw this episode's video and start frame and show that frame."""
        if self._texture_id is None:
            self._prepare_model(physics)
        rng = self.mode.episode_rng(episode, "background")
        index = int(rng.integers(self.pool_size))
        start = int(rng.integers(self.source.num_frames(index)))
        # A static background needs only its frame. Nothing is re-read while the draw stays the same, so
        # fixed modes load theirs once.
        wanted = (index, None) if self.dynamic else (index, start)
        if wanted != self._loaded:
            if self.dynamic:
                self._video = self.source.video(index, self.texture_size)
            else:
                self._video = self.source.frame(index, start, self.texture_size)[None]
            self._loaded = wanted
        self._frame = start if self.dynamic else 0
        self._direction = 1
        self._upload(physics)

    def on_step(self, physics) -> None:
        """In dynamic mode, move one frame along the video, turning around at either end."""
        if not self.dynamic or len(self._video) < 2:
            return
        if not 0 <= self._frame + self._direction < len(self._video):
            self._direction = -self._direction
        self._frame += self._direction
        self._upload(physics)

    def _prepare_model(self, physics) -> None:
        """Shrink the skybox to the square texture size and set the floor's opacity."""
        model = physics.model
        texture_id = skybox_texture_id(model)
        capacity = int(
            model.tex_width[texture_id] * model.tex_height[texture_id] * model.tex_nchannel[texture_id]
        )
        needed = self.texture_size**2 * 3
        if needed > capacity:
            raise ValueError(
                f"a {self.texture_size} px background needs {needed} bytes but {self.domain}'s skybox "
                f"holds {capacity}; use a smaller texture_size"
            )
        if model.tex_nchannel[texture_id] != 3:
            raise ValueError(
                f"{self.domain}'s skybox has {model.tex_nchannel[texture_id]} channels, expected 3"
            )
        # A square cube texture is one image shown on all six faces; the data buffer keeps its old size.
        model.tex_width[texture_id] = self.texture_size
        model.tex_height[texture_id] = self.texture_size
        ground = mujoco.mj_name2id(model.ptr, mujoco.mjtObj.mjOBJ_MATERIAL, GROUND_MATERIAL)
        if ground >= 0:
            model.mat_rgba[ground, 3] = self.ground_plane_alpha
        self._texture_id = texture_id

    def _upload(self, physics) -> None:
        """Write the current frame into the skybox texture and send it to the GPU, unless it shows it already."""
        # Paired rendering (envs/paired_render.py) re-applies the draw before every frame; an upload costs ~3 ms.
        if self._uploaded == (self._loaded, self._frame):
            return
        self._uploaded = (self._loaded, self._frame)
        model = physics.model
        start = int(model.tex_adr[self._texture_id])
        # Seen from inside the cube, MuJoCo mirrors the faces left-right; flipping keeps images readable on
        # the face the walker, cheetah and cartpole cameras look at.
        frame = self._video[self._frame, :, ::-1]
        model.tex_data[start : start + frame.size] = frame.reshape(-1)
        # dm_control creates the rendering contexts on first access, so this also works before any render;
        # a context made after this point would upload the edited texture by itself.
        contexts = physics.contexts
        with contexts.gl.make_current() as ctx:
            ctx.call(mujoco.mjr_uploadTexture, model.ptr, contexts.mujoco.ptr, self._texture_id)
