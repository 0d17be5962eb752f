"""The UCI handwritten digits: 1,797 grey 8x8 images of the digits 0-9, shipped with the package.

Source: E. Alpaydin and C. Kaynak (1998), "Optical Recognition of Handwritten Digits", UCI Machine
Learning Repository, https://doi.org/10.24432/C50P49, licensed CC BY 4.0.  The file
``digits.csv.gz`` is the copy distributed with scikit-learn (its ``load_digits``), which is the
UCI test set ``optdigits.tes``; see ``README.md`` in this folder for the provenance and checksum.

Each row of the file is 64 pixel counts (0-16: the number of "on" pixels in a 4x4 block of a
32x32 binary scan), row-major, then the label.  The dataset is small enough that a whole
MobileNet trains on it in minutes on a laptop CPU once the images are enlarged to 32x32.

Typical use::

    train, test = digits_loaders(size=32, in_chans=3, batch_size=64)
    for epoch in range(10):
        for xb, yb in train.epoch(epoch):
            ...
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .loader import Loader
from .transforms import RandomShiftScale, channel_stats, resize_bilinear

DIGITS_PATH = Path(__file__).with_name("digits.csv.gz")
NUM_SAMPLES = 1797
CLASSES = tuple(str(d) for d in range(10))
TEST_SIZE = 360          # 20 % of 1,797, rounded up to a round number: 1,437 train / 360 test


def load_digits(path=DIGITS_PATH):
    """Read the digits from the packaged CSV.

    Returns:
    - images: float32 array (1797, 1, 8, 8) with values in [0, 1] (the counts divided by 16).
    - labels: int64 array (1797,) with values 0-9.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_digits: data file {path} is missing; the package install is "
                                f"incomplete (it should ship npmobilenet/data/digits.csv.gz)")
    raw = np.loadtxt(path, delimiter=",", dtype=np.int64)
    if raw.shape != (NUM_SAMPLES, 65) or raw[:, :64].min() < 0 or raw[:, :64].max() > 16:
        raise ValueError(f"load_digits: {path} holds an array of shape {raw.shape} with pixel range "
                         f"[{raw[:, :64].min()}, {raw[:, :64].max()}]; expected (1797, 65) and [0, 16]")
    images = (raw[:, :64] / 16.0).astype(np.float32).reshape(NUM_SAMPLES, 1, 8, 8)
    return images, raw[:, 64].copy()


def stratified_split(labels, test_size=TEST_SIZE, seed=0):
    """Split indices into train and test so that every class keeps its share.

    Class ``c`` with ``n_c`` samples gives ``n_c * test_size / N`` test samples, rounded by the
    largest-remainder rule so the test set has exactly ``test_size`` samples; which ones is drawn
    with ``numpy.random.default_rng(seed)``, class by class in label order.

    Inputs:
    - labels: int array (N,).
    - test_size: number of test samples, 0 < test_size < N.
    - seed: int seed of the draw.

    Returns:
    - train_idx, test_idx: sorted int64 index arrays, disjoint, together covering range(N).
    """
    labels = np.asarray(labels)
    n = labels.shape[0]
    if not 0 < test_size < n:
        raise ValueError(f"stratified_split: test_size must be in (0, {n}), got {test_size}")
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * (test_size / n)
    take = np.floor(quota).astype(np.int64)
    # hand the leftover samples to the classes with the largest fractional parts (ties: lower label)
    extra = np.argsort(-(quota - take), kind="stable")[:test_size - take.sum()]
    take[extra] += 1
    rng = np.random.default_rng(seed)
    test = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take)]
    test_idx = np.sort(np.concatenate(test)).astype(np.int64)
    train_idx = np.setdiff1d(np.arange(n), test_idx).astype(np.int64)
    return train_idx, test_idx


def digits_split(size=8, test_size=TEST_SIZE, seed=0):
    """The digits, split and resized: ``(x_train, y_train), (x_test, y_test)``.

    Inputs:
    - size: image side after bilinear resizing (8 keeps the originals).
    - test_size, seed: as in ``stratified_split`` (defaults: 1,437 / 360, seed 0).

    Returns:
    - (x_train, y_train), (x_test, y_test): float32 images (n, 1, size, size) in [0, 1] and
      int64 labels.
    """
    images, labels = load_digits()
    train_idx, test_idx = stratified_split(labels, test_size, seed)
    if size != 8:
        images = resize_bilinear(images, size)
    return (images[train_idx], labels[train_idx]), (images[test_idx], labels[test_idx])


def digits_loaders(size=32, in_chans=3, batch_size=64, *, augment=True, max_shift=None,
                   scale=(0.9, 1.1), seed=0, test_size=TEST_SIZE, dtype=np.float32):
    """Ready-to-train loaders for the digits: ``(train_loader, test_loader)``.

    The images are enlarged to ``size`` x ``size`` (bilinear), normalised with the mean and std of
    the training split, and replicated to ``in_chans`` channels.  Training batches are shuffled and,
    with ``augment``, randomly shifted by up to ``max_shift`` pixels (default ``size / 16``, half a
    pixel of the 8x8 original) and zoomed by a factor in ``scale``.  The test loader keeps the
    stored order and never augments.

    Inputs:
    - size, in_chans, batch_size: image side, channels the model expects, training batch size.
    - augment, max_shift, scale: the training augmentation (see ``random_shift_scale``).
    - seed: fixes the split (with test_size), the shuffling and the augmentation.
    - dtype: float32, or float64 for checking.

    Returns:
    - train_loader, test_loader: ``Loader`` objects; both carry ``.mean``, ``.std`` and
      ``.classes`` (the names "0" ... "9").
    """
    (x_tr, y_tr), (x_te, y_te) = digits_split(size, test_size, seed)
    mean, std = channel_stats(x_tr)
    shift = size / 16 if max_shift is None else max_shift
    aug = RandomShiftScale(shift, scale) if augment else None
    common = dict(mean=mean, std=std, in_chans=in_chans, dtype=dtype, seed=seed)
    train = Loader(x_tr, y_tr, batch_size, shuffle=True, augment=aug, **common)
    test = Loader(x_te, y_te, max(batch_size, 256), shuffle=False, **common)
    train.classes = test.classes = CLASSES
    return train, test
