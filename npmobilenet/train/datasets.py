"""The data of a training run: the packaged digits, or an image folder, as two loaders.

``make_loaders(config)`` returns the training loader (shuffled, augmented) and the test loader
(stored order, no augmentation), both normalised with the training split's per-channel mean and
standard deviation.  Everything is a function of the config, so a resumed run and ``npmobilenet
evaluate`` rebuild exactly the same split.

An image folder is either ``root/<class>/<image>`` (split 80/20 per class with the run's seed,
``npmobilenet.data.stratified_split``) or ``root/train/<class>/...`` plus ``root/val/<class>/...``
(or ``test/``), used as given.
"""
from __future__ import annotations

from pathlib import Path

from ..data import (ImageFolder, Loader, RandomShiftScale, channel_stats, digits_loaders,
                    stratified_split)

TEST_FRACTION = 0.2


def _folder_splits(root, size):
    """``(x_train, y_train), (x_test, y_test), classes`` of an image folder."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"--dataset {root}: not 'digits' and not a folder of images")
    held_out = next((root / n for n in ("val", "test") if (root / n).is_dir()), None)
    if (root / "train").is_dir() and held_out is not None:
        train, test = ImageFolder(root / "train", size), ImageFolder(held_out, size)
        if train.classes != test.classes:
            raise ValueError(f"--dataset {root}: {root / 'train'} has classes {train.classes} but "
                             f"{held_out} has {test.classes}; they must be the same folders")
        return (train.images, train.labels), (test.images, test.labels), train.classes
    data = ImageFolder(root, size)
    n_test = max(1, round(TEST_FRACTION * len(data)))
    if len(data) < 2 * len(data.classes) or n_test >= len(data):
        raise ValueError(f"--dataset {root}: {len(data)} images in {len(data.classes)} classes is too few "
                         "to split into training and test images")
    return data, n_test


def make_loaders(config, in_chans=3):
    """``(train_loader, test_loader)`` for ``config`` (a ``TrainConfig``).

    Both loaders carry ``.classes`` (names), ``.mean`` and ``.std`` (the normalisation).
    """
    if config.dataset == "digits":
        return digits_loaders(size=config.size, in_chans=in_chans, batch_size=config.batch_size,
                              augment=config.augment, seed=config.seed)
    split = _folder_splits(config.dataset, config.size)
    if len(split) == 3:
        (x_tr, y_tr), (x_te, y_te), classes = split
    else:
        data, n_test = split
        train_idx, test_idx = stratified_split(data.labels, n_test, config.seed)
        x_tr, y_tr = data.images[train_idx], data.labels[train_idx]
        x_te, y_te = data.images[test_idx], data.labels[test_idx]
        classes = data.classes
    if x_tr.shape[1] != in_chans:
        raise ValueError(f"--dataset {config.dataset}: images have {x_tr.shape[1]} channels, "
                         f"the model takes {in_chans}")
    mean, std = channel_stats(x_tr)
    std = std.clip(min=1e-3)   # a constant channel (blank images) must not divide by zero
    aug = RandomShiftScale(config.size / 16, (0.9, 1.1)) if config.augment else None
    common = dict(mean=mean, std=std, seed=config.seed)
    train = Loader(x_tr, y_tr, config.batch_size, shuffle=True, augment=aug, **common)
    test = Loader(x_te, y_te, max(config.batch_size, 256), shuffle=False, **common)
    train.classes = test.classes = tuple(classes)
    return train, test
