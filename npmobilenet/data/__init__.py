"""Data for training: the packaged UCI digits, your own image folders, transforms and a loader.

* ``digits``: ``load_digits()``, ``stratified_split()``, ``digits_split()``, ``digits_loaders()``.
* ``image_folder``: ``ImageFolder(root, size)`` for a class-per-sub-folder tree of PNG/JPEG files.
* ``transforms``: ``resize_bilinear``, ``random_shift_scale`` / ``RandomShiftScale`` (no flips),
  ``channel_stats``, ``normalize``, ``replicate_channels``.
* ``loader``: ``Loader``, mini-batches reproducible from (seed, epoch, batch).
"""
from .digits import CLASSES, load_digits, stratified_split, digits_split, digits_loaders  # noqa: F401
from .image_folder import ImageFolder, read_image  # noqa: F401
from .loader import Loader  # noqa: F401
from .transforms import (resize_bilinear, random_shift_scale, RandomShiftScale,  # noqa: F401
                         channel_stats, normalize, replicate_channels)
