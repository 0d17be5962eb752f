"""ImageNet inference: timm's eval preprocessing, the 1000 class names, top-k.

The eval transform is timm's ``transforms_imagenet_eval`` (timm/data/transforms_factory.py) for
``crop_mode="center"``, the mode of every MobileNet weight:

1. resize so the *shorter* side is ``floor(size / crop_pct)`` (torchvision's ``Resize(int)``: the
   longer side becomes ``int(scale * long / short)``), with the weight's interpolation;
2. centre-crop ``size x size`` (torchvision's ``CenterCrop``: offset ``int(round((H - size) / 2))``);
3. scale to [0, 1] (``ToTensor``) and normalise per channel with the weight's mean and std.

The resize is Pillow's ``Image.resize`` -- the very call torchvision makes on the PIL images
timm reads -- so the pixels agree with timm's bit for bit (Pillow comes with matplotlib).
Each weight's numbers (size, crop_pct, interpolation, mean, std) are in ``pretrained_cfgs.py``,
generated from timm's ``pretrained_cfg``.

The class names are ``npmobilenet/data/imagenet_classes.txt`` (torchvision's names, with the
WordNet synset ids; see that file's header for its source and licence).
"""
from __future__ import annotations

import functools
import math
import os

import numpy as np

from . import pretrained_cfgs as P

CLASSES_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "data", "imagenet_classes.txt")
_FIELDS = ("size", "crop_pct", "interpolation", "mean", "std", "crop_mode", "num_classes",
           "test_size", "test_crop_pct")


@functools.lru_cache(maxsize=1)
def read_classes(path=CLASSES_PATH):
    """``[(synset, name)] * 1000`` in class-index order."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                synset, name = line.rstrip("\n").split("\t")
                rows.append((synset, name))
    synsets = [s for s, _ in rows]
    if len(rows) != 1000 or synsets != sorted(synsets):
        raise ValueError(f"{path}: expected the 1000 ImageNet classes in synset order, "
                         f"found {len(rows)} rows")
    return tuple(rows)


def class_names():
    """The 1000 ImageNet-1k class names, index ``i`` is class ``i`` (``'tench'``, ``'goldfish'``...)."""
    return [name for _, name in read_classes()]


def split_tag(name):
    """``'mobilenetv3_large_100.ra_in1k'`` -> ``('mobilenetv3_large_100', 'ra_in1k')``."""
    base, _, tag = str(name).partition(".")
    return base, (tag or None)


def data_config(name, tag=None):
    """timm's eval preprocessing for weight ``name`` (optionally ``name.tag``).

    Returns a dict: ``input_size`` (3, S, S), ``crop_pct``, ``interpolation``, ``mean``, ``std``,
    ``crop_mode``, ``num_classes``, ``architecture``, ``tag`` (None for a name timm does not have,
    which gets timm's MobileNet defaults).
    """
    base, given = split_tag(name)
    tag = tag or given or P.DEFAULT_TAGS.get(base)
    key = f"{base}.{tag}"
    if given and key not in P.CFGS:
        tags = sorted(k.split(".", 1)[1] for k in P.CFGS if k.split(".", 1)[0] == base)
        raise ValueError(f"timm has no weight {key!r}; the tags of {base} are: "
                         + (", ".join(tags) or "none"))
    row = dict(zip(_FIELDS, P.CFGS.get(key, P.FALLBACK)))
    s = row["size"]
    return {"architecture": base, "tag": tag if key in P.CFGS else None, "input_size": (3, s, s),
            "crop_pct": row["crop_pct"], "interpolation": row["interpolation"],
            "mean": tuple(row["mean"]), "std": tuple(row["std"]), "crop_mode": row["crop_mode"],
            "num_classes": row["num_classes"],
            "test_input_size": (3, row["test_size"], row["test_size"]) if row["test_size"] else None,
            "test_crop_pct": row["test_crop_pct"]}


def read_image(path):
    """An image file as ``uint8`` RGB, shape (H, W, 3), read with ``matplotlib.image.imread``.

    Greyscale is repeated to 3 channels; an alpha channel is dropped (as PIL's ``convert('RGB')``).
    """
    import matplotlib.image

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such image: {path}")
    try:
        img = matplotlib.image.imread(path)
    except Exception as e:  # Pillow's UnidentifiedImageError, SyntaxError for bad PNGs...
        raise ValueError(f"cannot read image {path}: {e}") from e
    if img.dtype != np.uint8:  # PNGs come back as floats in [0, 1]: i / 255 exactly, so round back
        img = np.clip(np.round(np.asarray(img, dtype=np.float64) * 255), 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ValueError(f"{path}: expected an RGB or greyscale image, got shape {img.shape}")
    return np.ascontiguousarray(img[:, :, :3])


def _pil_filter(interpolation):
    from PIL import Image

    modes = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC,
             "lanczos": Image.LANCZOS, "box": Image.BOX, "hamming": Image.HAMMING}
    if interpolation not in modes:
        raise ValueError(f"interpolation must be one of {sorted(modes)}, got {interpolation!r}")
    return modes[interpolation]


def resize_shorter(img, scale, interpolation):
    """Resize ``uint8`` (H, W, 3) so its shorter side is ``scale`` (torchvision ``Resize(int)``)."""
    from PIL import Image

    h, w = img.shape[:2]
    if h <= w:
        new_h, new_w = scale, int(scale * w / h)
    else:
        new_h, new_w = int(scale * h / w), scale
    if (new_h, new_w) == (h, w):
        return img
    out = Image.fromarray(img).resize((new_w, new_h), _pil_filter(interpolation))
    return np.asarray(out)


def center_crop(img, size):
    """The central ``size x size`` of (H, W, C) (torchvision ``CenterCrop``'s offsets)."""
    h, w = img.shape[:2]
    if h < size or w < size:
        raise ValueError(f"center_crop: image {h}x{w} is smaller than the crop {size}x{size}")
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return img[top:top + size, left:left + size]


def preprocess(img, cfg):
    """timm's eval transform of one ``uint8`` (H, W, 3) image -> float32 (3, S, S).

    Inputs:
    - img: uint8 array (H, W, 3), e.g. from ``read_image``.
    - cfg: a dict from ``data_config`` (``input_size``, ``crop_pct``, ``interpolation``, ``mean``,
      ``std``, ``crop_mode``; optionally ``resize_size``, which then replaces
      ``floor(size / crop_pct)``).
    """
    size = int(cfg["input_size"][-1])
    mode = cfg.get("crop_mode") or "center"
    # torchvision's weights name the resize size itself (e.g. 232), which no crop_pct floors to.
    scale = int(cfg.get("resize_size") or math.floor(size / cfg["crop_pct"]))
    if mode == "center":
        img = center_crop(resize_shorter(img, scale, cfg["interpolation"]), size)
    elif mode == "squash":
        from PIL import Image
        img = center_crop(np.asarray(Image.fromarray(img).resize(
            (scale, scale), _pil_filter(cfg["interpolation"]))), size)
    else:
        raise ValueError(f"crop_mode {mode!r} is not supported (use 'center' or 'squash')")
    # ToTensor then Normalize, in float32 as torchvision computes them.
    x = img.astype(np.float32) / np.float32(255)
    mean = np.asarray(cfg["mean"], dtype=np.float32)
    std = np.asarray(cfg["std"], dtype=np.float32)
    return np.ascontiguousarray(((x - mean) / std).transpose(2, 0, 1))


def softmax(logits):
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def topk(logits, k=5):
    """Indices and softmax probabilities of the ``k`` largest logits of each row, best first.

    Ties go to the lower index (a stable sort), as ``torch.topk`` on CPU does in practice.
    """
    logits = np.atleast_2d(np.asarray(logits))
    k = min(int(k), logits.shape[-1])
    idx = np.argsort(-logits, axis=-1, kind="stable")[:, :k]
    probs = np.take_along_axis(softmax(logits), idx, axis=-1)
    return idx, probs
