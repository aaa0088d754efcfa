"""Pixel augmentations: the paper's four (rotation, colour jitter, colour cutout, background overlay), grayscale,
the composite that applies one per transition, DrQ's random shift, and a TensorBoard preview grid.

Every op draws its parameters on the batch's device from a seeded generator, once per transition, and applies
them to all stacked frames of obs and next_obs alike.
"""

from synthvis.datamodules.augmentations.background_overlay import BackgroundOverlay
from synthvis.datamodules.augmentations.color_cutout import ColorCutout
from synthvis.datamodules.augmentations.color_jitter import ColorJitter
from synthvis.datamodules.augmentations.composite import PixelAugmentation, make_augmentation
from synthvis.datamodules.augmentations.frame_op import FrameOp
from synthvis.datamodules.augmentations.generators import SeededGenerators
from synthvis.datamodules.augmentations.grayscale import Grayscale
from synthvis.datamodules.augmentations.grid import augmentation_grid
from synthvis.datamodules.augmentations.random_shift import RandomShift
from synthvis.datamodules.augmentations.rotation import Rotation

__all__ = [
    "BackgroundOverlay",
    "ColorCutout",
    "ColorJitter",
    "FrameOp",
    "Grayscale",
    "PixelAugmentation",
    "RandomShift",
    "Rotation",
    "SeededGenerators",
    "augmentation_grid",
    "make_augmentation",
]
