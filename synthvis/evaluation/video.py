"""Rollout videos for TensorBoard as animated GIFs encoded with Pillow (no moviepy)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image
from tensorboard.compat.proto.summary_pb2 import Summary


def encode_gif(frames: Sequence[np.ndarray], fps: int = 25) -> bytes:
    """Frames (3, H, W) or (H, W, 3) uint8 -> GIF bytes."""
    images = [Image.fromarray(f.transpose(1, 2, 0) if f.shape[0] == 3 else f) for f in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return buffer.getvalue()


def log_gif(writer, tag: str, frames: Sequence[np.ndarray], step: int, fps: int = 25) -> None:
    """Write an animated GIF image summary (TensorBoard's Images tab plays it)."""
    first = frames[0]
    height, width = (first.shape[1:] if first.shape[0] == 3 else first.shape[:2])
    image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=encode_gif(frames, fps))
    writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)
