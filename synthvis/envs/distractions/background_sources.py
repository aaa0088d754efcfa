"""Where background "videos" come from: procedural numpy textures, a folder of images, or a DAVIS-2017 copy.

Every source is an ordered list of short videos, (T, size, size, 3) uint8; the background distraction uses
the first N of them (N from the difficulty), as DCS does with its DAVIS list.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
# Each split seeds its generators with its own leading entropy word, so the two seed sets are disjoint:
# backgrounds used to augment training data never reappear as test distractions.
PROCEDURAL_SPLITS = {"augment": 0, "test": 1}
PROCEDURAL_FAMILIES = ("plasma", "shapes", "noise")
DAVIS_SPLITS = ("train", "val")


class BackgroundSourceError(FileNotFoundError):
    """A background folder is missing, empty or not laid out as expected."""


class BackgroundSource(ABC):
    """An ordered collection of short RGB videos to show behind the agent."""

    @abstractmethod
    def __len__(self) -> int:
        """Number of videos."""

    @abstractmethod
    def num_frames(self, index: int) -> int:
        """Number of frames T of video `index`."""

    @abstractmethod
    def video(self, index: int, size: int) -> np.ndarray:
        """Video `index` as (T, size, size, 3) uint8 frames."""

    def frame(self, index: int, frame: int, size: int) -> np.ndarray:
        """Frame `frame` of video `index` as (size, size, 3) uint8; sources override it to skip the others."""
        return self.video(index, size)[frame]


def _plasma(rng: np.random.Generator, size: int, times: np.ndarray) -> np.ndarray:
    """Moving sinusoid interference ("plasma") mapped through a random cosine colour palette."""
    num_waves = 4
    direction = rng.normal(size=(num_waves, 2))
    frequency = (
        rng.uniform(2.0, 9.0, num_waves)[:, None] * direction / np.linalg.norm(direction, axis=1)[:, None]
    )
    speed = rng.uniform(-2.0, 2.0, num_waves) * np.pi
    phase = rng.uniform(0.0, 2 * np.pi, num_waves)
    centre_start = rng.uniform(0.0, 1.0, 2)
    centre_velocity = rng.uniform(-0.5, 0.5, 2)
    ring_frequency = rng.uniform(6.0, 20.0)
    # Cosine palette colour(v) = a + b*cos(2*pi*(c*v + d)) per channel: smooth, varied hues from 12 numbers.
    a, b = rng.uniform(0.3, 0.7, 3), rng.uniform(0.2, 0.5, 3)
    c, d = rng.uniform(0.5, 2.0, 3), rng.uniform(0.0, 1.0, 3)
    y, x = np.mgrid[0:size, 0:size] / size
    field = np.zeros((len(times), size, size))
    for k in range(num_waves):
        argument = 2 * np.pi * (frequency[k, 0] * x + frequency[k, 1] * y)
        field += np.sin(argument[None] + speed[k] * times[:, None, None] + phase[k])
    centre = centre_start + centre_velocity * times[:, None]
    radius = np.hypot(x[None] - centre[:, 0, None, None], y[None] - centre[:, 1, None, None])
    field += np.sin(2 * np.pi * ring_frequency * radius)
    value = (field / (num_waves + 1) + 1.0) / 2.0  # in [0, 1]
    return a + b * np.cos(2 * np.pi * (c * value[..., None] + d))


def _shapes(rng: np.random.Generator, size: int, times: np.ndarray) -> np.ndarray:
    """Coloured discs and boxes drifting (and wrapping around) over a random two-colour gradient."""
    num_shapes = 10
    colours = rng.uniform(0.0, 1.0, (2 + num_shapes, 3))
    angle = rng.uniform(0.0, 2 * np.pi)
    centres = rng.uniform(0.0, 1.0, (num_shapes, 2))
    velocities = rng.uniform(-0.5, 0.5, (num_shapes, 2))
    radii = rng.uniform(0.05, 0.2, num_shapes)
    is_disc = rng.uniform(size=num_shapes) < 0.5
    y, x = np.mgrid[0:size, 0:size] / size
    ramp = np.clip((np.cos(angle) * (x - 0.5) + np.sin(angle) * (y - 0.5)) + 0.5, 0.0, 1.0)
    background = colours[0] * (1 - ramp[..., None]) + colours[1] * ramp[..., None]
    frames = np.repeat(background[None], len(times), axis=0)
    for k in range(num_shapes):
        centre = (centres[k] + velocities[k] * times[:, None]) % 1.0
        # Distances on the unit torus, so shapes leaving one edge come back at the other.
        dx = (x[None] - centre[:, 0, None, None] + 0.5) % 1.0 - 0.5
        dy = (y[None] - centre[:, 1, None, None] + 0.5) % 1.0 - 0.5
        inside = np.hypot(dx, dy) < radii[k] if is_disc[k] else np.maximum(abs(dx), abs(dy)) < radii[k]
        frames[inside] = colours[2 + k]
    return frames


def _periodic_interpolation(size: int, cells: int) -> np.ndarray:
    """(size, cells) weights that smoothly interpolate a periodic lattice of `cells` onto `size` pixels."""
    position = np.arange(size) * cells / size
    left = np.floor(position).astype(int)
    fraction = position - left
    fraction = fraction * fraction * (3 - 2 * fraction)  # smoothstep: no visible lattice grid
    weights = np.zeros((size, cells))
    weights[np.arange(size), left] = 1 - fraction
    weights[np.arange(size), (left + 1) % cells] += fraction
    return weights


def _noise(rng: np.random.Generator, size: int, times: np.ndarray) -> np.ndarray:
    """Drifting multi-octave periodic value noise, one field per colour channel, contrast-stretched."""
    total = np.zeros((len(times), size, size, 3))
    for octave in range(4):
        cells = 4 * 2**octave
        lattice = rng.uniform(0.0, 1.0, (cells, cells, 3))
        velocity = rng.uniform(-0.3, 0.3, 2)
        weights = _periodic_interpolation(size, cells)
        field = np.einsum("ic,cdk,jd->ijk", weights, lattice, weights, optimize=True) / 2**octave
        # The field is periodic over the image, so drifting it is a whole-pixel roll per frame.
        for frame, time in enumerate(times):
            shift = np.round(velocity * time * size).astype(int)
            total[frame] += np.roll(field, (shift[1], shift[0]), axis=(0, 1))
    low = total.min(axis=(1, 2), keepdims=True)
    high = total.max(axis=(1, 2), keepdims=True)
    return (total - low) / np.maximum(high - low, 1e-6)


_GENERATORS = {"plasma": _plasma, "shapes": _shapes, "noise": _noise}


def _procedural_frames(split: str, seed: int, index: int, size: int, times: np.ndarray) -> np.ndarray:
    """Frames of procedural video `index` at `times` (in video durations), as uint8."""
    if split not in PROCEDURAL_SPLITS:
        raise ValueError(f"unknown procedural split {split!r}; choose one of {sorted(PROCEDURAL_SPLITS)}")
    if seed < 0 or index < 0:
        raise ValueError(f"procedural seed and index must be >= 0, got seed={seed}, index={index}")
    # Cycling the families keeps even the 4-video easy pool diverse.
    family = PROCEDURAL_FAMILIES[index % len(PROCEDURAL_FAMILIES)]
    rng = np.random.default_rng([PROCEDURAL_SPLITS[split], seed, index])
    frames = _GENERATORS[family](rng, size, times)
    return np.round(np.clip(frames, 0.0, 1.0) * 255).astype(np.uint8)


def procedural_textures(split: str, count: int, size: int, seed: int = 0) -> np.ndarray:
    """`count` still procedural textures, (count, size, size, 3) uint8: the first frames of the split's videos."""
    start = np.zeros(1)
    return np.concatenate([_procedural_frames(split, seed, index, size, start) for index in range(count)])


class ProceduralSource(BackgroundSource):
    """Numpy-generated videos (plasma, drifting shapes, drifting noise), a pure function of (split, seed, index).

    `split="test"` is for distracted evaluation and `split="augment"` for training-time augmentation; their
    seeds never overlap. 60 videos by default, the size of DCS's DAVIS training list.
    """

    def __init__(
        self, split: str = "test", count: int = 60, frames_per_video: int = 32, seed: int = 0
    ) -> None:
        if split not in PROCEDURAL_SPLITS:
            raise ValueError(f"unknown procedural split {split!r}; choose one of {sorted(PROCEDURAL_SPLITS)}")
        if count <= 0 or frames_per_video <= 0:
            raise ValueError(f"count and frames_per_video must be positive, got {count}, {frames_per_video}")
        self.split, self.count, self.frames_per_video, self.seed = split, count, frames_per_video, seed

    def __len__(self) -> int:
        return self.count

    def num_frames(self, index: int) -> int:
        return self.frames_per_video

    def video(self, index: int, size: int) -> np.ndarray:
        return self._frames(index, size, np.arange(self.frames_per_video))

    def frame(self, index: int, frame: int, size: int) -> np.ndarray:
        return self._frames(index, size, np.array([frame]))[0]

    def _frames(self, index: int, size: int, frames: np.ndarray) -> np.ndarray:
        if not 0 <= index < self.count:
            raise IndexError(f"procedural video {index} out of range 0..{self.count - 1}")
        return _procedural_frames(self.split, self.seed, index, size, frames / self.frames_per_video)


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def load_square_frame(path: Path, size: int) -> np.ndarray:
    """An image file as (size, size, 3) uint8: centre-cropped to a square, then resized."""
    with Image.open(path) as image:
        rgb = image.convert("RGB")
    side = min(rgb.size)
    left, top = (rgb.width - side) // 2, (rgb.height - side) // 2
    square = rgb.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(square, dtype=np.uint8)


class ImageFolderSource(BackgroundSource):
    """Every jpg/png in a folder (sorted by name) as a one-frame video."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder).expanduser()
        if not self.folder.is_dir():
            raise BackgroundSourceError(
                f"background image folder {self.folder} does not exist; point the background source at a "
                "folder of .jpg/.png images, or use the 'procedural' source, which needs no files"
            )
        self.files = _image_files(self.folder)
        if not self.files:
            raise BackgroundSourceError(
                f"background image folder {self.folder} holds no .jpg/.jpeg/.png files; add images to it or "
                "use the 'procedural' source, which needs no files"
            )

    def __len__(self) -> int:
        return len(self.files)

    def num_frames(self, index: int) -> int:
        return 1

    def video(self, index: int, size: int) -> np.ndarray:
        return load_square_frame(self.files[index], size)[None]


class DavisSource(BackgroundSource):
    """A user's DAVIS-2017 copy: each `JPEGImages/480p/<video>/` folder is one video.

    The DCS train/val lists are the DAVIS-2017 splits (60/30 videos); they are read from the dataset's own
    `ImageSets/2017/<split>.txt`, in file order. A copy without `ImageSets` falls back to all video folders
    sorted by name (logged), which does not reproduce the DCS pool.
    """

    def __init__(self, root: str | Path, split: str = "train") -> None:
        if split not in DAVIS_SPLITS:
            raise ValueError(f"unknown DAVIS split {split!r}; choose one of {DAVIS_SPLITS}")
        root = Path(root).expanduser()
        # Accept either the DAVIS root or its JPEGImages/480p folder.
        self.frames_root = root / "JPEGImages" / "480p" if (root / "JPEGImages").is_dir() else root
        davis_root = self.frames_root.parent.parent
        if not self.frames_root.is_dir():
            raise BackgroundSourceError(
                f"DAVIS folder {self.frames_root} does not exist; download DAVIS-2017 TrainVal 480p and point "
                "the background source at its DAVIS/ folder (holding JPEGImages/480p/<video>/*.jpg)"
            )
        split_file = davis_root / "ImageSets" / "2017" / f"{split}.txt"
        if split_file.is_file():
            self.videos = split_file.read_text().split()
        else:
            self.videos = sorted(p.name for p in self.frames_root.iterdir() if p.is_dir())
            log.warning(
                "%s not found: using all %d video folders of %s sorted by name instead of the DAVIS %s split",
                split_file,
                len(self.videos),
                self.frames_root,
                split,
            )
        missing = [name for name in self.videos if not _has_images(self.frames_root / name)]
        if not self.videos or missing:
            raise BackgroundSourceError(
                f"DAVIS folder {self.frames_root} has no usable videos"
                + (f" (no .jpg frames for {', '.join(missing[:5])})" if missing else "")
                + "; it should hold JPEGImages/480p/<video>/*.jpg from DAVIS-2017 TrainVal 480p"
            )

    def __len__(self) -> int:
        return len(self.videos)

    def num_frames(self, index: int) -> int:
        return len(self._frame_files(index))

    def video(self, index: int, size: int) -> np.ndarray:
        return np.stack([load_square_frame(path, size) for path in self._frame_files(index)])

    def frame(self, index: int, frame: int, size: int) -> np.ndarray:
        return load_square_frame(self._frame_files(index)[frame], size)

    def _frame_files(self, index: int) -> list[Path]:
        return _image_files(self.frames_root / self.videos[index])


def _has_images(folder: Path) -> bool:
    return folder.is_dir() and bool(_image_files(folder))


BACKGROUND_SOURCES = ("procedural", "image_folder", "davis")


def make_background_source(
    kind: str, path: str | Path | None = None, split: str | None = None, seed: int = 0
) -> BackgroundSource:
    """Build a source by name (for configs): `procedural` (split augment|test), `image_folder`, `davis` (train|val)."""
    if kind == "procedural":
        return ProceduralSource(split=split or "test", seed=seed)
    if kind in ("image_folder", "davis") and path is None:
        raise ValueError(f"the {kind!r} background source needs a folder path")
    if kind == "image_folder":
        return ImageFolderSource(path)
    if kind == "davis":
        return DavisSource(path, split=split or "train")
    raise ValueError(f"unknown background source {kind!r}; choose one of {', '.join(BACKGROUND_SOURCES)}")
