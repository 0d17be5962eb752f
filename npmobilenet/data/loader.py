"""Mini-batches with seeded shuffling and augmentation, reproducible from (seed, epoch, batch).

A ``Loader`` keeps no random state between calls.  The order of epoch ``e`` is drawn from a
generator seeded with ``(seed, e)``, and the augmentation of batch ``b`` from one seeded with
``(seed, e, b)``.  So the batches of any epoch can be rebuilt exactly, and a run resumed from a
checkpoint in the middle of an epoch (``loader.epoch(e, start=b)``) sees the very batches the
uninterrupted run would have seen.
"""
from __future__ import annotations

import numpy as np

from .transforms import normalize, replicate_channels

_ORDER, _AUGMENT = 0, 1     # stream tags, so the order and augmentation generators never coincide


class Loader:
    """Iterate over ``(images, labels)`` in mini-batches.

    Each batch is gathered, augmented (training only), normalised and given ``in_chans`` channels,
    in that order: augmentation works on the raw images (background 0) and the model sees
    normalised ones.

    Inputs:
    - images: array (N, C, H, W), values as stored (e.g. [0, 1]).
    - labels: int array (N,).
    - batch_size: images per batch; the last batch is smaller unless ``drop_last``.
    - shuffle: draw a new order every epoch (training) or keep the stored order (evaluation).
    - seed: non-negative int; with the epoch number it fixes the order and the augmentation.
    - augment: None or a callable ``augment(x, rng) -> x`` such as ``RandomShiftScale()``.
    - mean, std: per-channel normalisation (from the training split), or None for none.
    - in_chans: replicate single-channel images to this many channels, or None to keep them.
    - dtype: dtype of the image batches (float32; float64 for checking).

    Usage::

        for epoch in range(epochs):
            for xb, yb in train_loader.epoch(epoch):
                ...
        for xb, yb in test_loader:          # same as test_loader.epoch(0)
            ...
    """

    def __init__(self, images, labels, batch_size, *, shuffle=True, seed=0, drop_last=False,
                 augment=None, mean=None, std=None, in_chans=None, dtype=np.float32):
        images = np.asarray(images)
        labels = np.asarray(labels)
        if images.ndim != 4:
            raise ValueError(f"Loader: images have shape {images.shape}; expected (N, C, H, W)")
        if labels.shape != (images.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"Loader: labels must be integers of shape ({images.shape[0]},), got "
                             f"{labels.dtype} of shape {labels.shape}")
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"Loader: batch_size must be a positive int, got {batch_size!r}")
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"Loader: seed must be a non-negative int, got {seed!r}")
        if drop_last and batch_size > images.shape[0]:
            raise ValueError(f"Loader: batch_size {batch_size} > {images.shape[0]} images with "
                             f"drop_last=True leaves no batch at all")
        if (mean is None) != (std is None):
            raise ValueError("Loader: give both mean and std, or neither")
        self.images, self.labels = images, labels.astype(np.int64)
        self.batch_size, self.shuffle, self.seed = int(batch_size), bool(shuffle), int(seed)
        self.drop_last, self.augment = bool(drop_last), augment
        self.mean, self.std, self.in_chans, self.dtype = mean, std, in_chans, np.dtype(dtype)

    @property
    def num_samples(self):
        return self.images.shape[0]

    def __len__(self):
        """Batches per epoch."""
        n, b = self.num_samples, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def order(self, epoch):
        """The sample indices of ``epoch`` in the order they are served."""
        if not self.shuffle:
            return np.arange(self.num_samples)
        return np.random.default_rng([self.seed, int(epoch), _ORDER]).permutation(self.num_samples)

    def epoch(self, epoch, start=0):
        """Yield the batches ``(x, y)`` of ``epoch``, beginning with batch number ``start``.

        Returns (each step):
        - x: array (B, in_chans or C, H, W) of ``dtype``; y: int64 array (B,).
        """
        if not 0 <= start <= len(self):
            raise ValueError(f"Loader.epoch: start must be in [0, {len(self)}], got {start}")
        idx = self.order(epoch)
        for b in range(start, len(self)):
            take = idx[b * self.batch_size:(b + 1) * self.batch_size]
            x = self.images[take].astype(self.dtype)
            if self.augment is not None:
                x = self.augment(x, np.random.default_rng([self.seed, int(epoch), _AUGMENT, b]))
            if self.mean is not None:
                x = normalize(x, self.mean, self.std)
            if self.in_chans is not None:
                x = replicate_channels(x, self.in_chans)
            yield x, self.labels[take]

    def __iter__(self):
        return self.epoch(0)

    def __repr__(self):
        return (f"Loader({self.num_samples} images {self.images.shape[1:]}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, seed={self.seed}, augment={self.augment!r}, "
                f"in_chans={self.in_chans})")
