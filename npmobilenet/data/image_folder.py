"""Your own images: one sub-folder per class, like ``torchvision.datasets.ImageFolder``.

::

    root/
        cat/  a.png  b.jpg ...
        dog/  c.png ...

Class names are the sub-folder names in sorted order, so label ``i`` is ``classes[i]``.  Files are
read with ``matplotlib.image.imread`` (PNG natively; JPEG through Pillow, which matplotlib depends
on), converted to RGB (or grey), resized with antialiased bilinear interpolation and kept in memory
as one float32 array: the small datasets one trains on a laptop fit easily.  Files with other
extensions and hidden files (``.DS_Store``) are skipped.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .transforms import resize_bilinear

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)   # ITU-R BT.601, as PIL's convert("L")


def read_image(path, in_chans=3):
    """Read one image file as a float32 (in_chans, H, W) array with values in [0, 1].

    Grey images are replicated to 3 channels, an alpha channel is dropped, and with in_chans=1
    colour images become grey (BT.601 luma).  Raises ValueError naming the file if it cannot be
    decoded.
    """
    import matplotlib.image as mpimg   # imported here so that the rest of the package never needs it

    try:
        img = np.asarray(mpimg.imread(str(path)))
    except Exception as e:   # decoders raise many types (OSError, SyntaxError, ValueError, ...)
        raise ValueError(f"ImageFolder: cannot read image file {path}: {type(e).__name__}: {e}") from None
    if img.dtype == np.uint8:              # JPEG through Pillow gives 0..255
        img = img.astype(np.float32) / 255.0
    elif img.dtype == np.uint16:
        img = img.astype(np.float32) / 65535.0
    img = img.astype(np.float32, copy=False)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"ImageFolder: image file {path} decoded to shape {img.shape}; expected "
                         f"(H, W), (H, W, 3) or (H, W, 4)")
    if img.shape[2] in (2, 4):             # grey+alpha or RGBA: drop the alpha channel
        img = img[:, :, :-1]
    if in_chans == 1:
        img = img if img.shape[2] == 1 else (img @ _LUMA)[:, :, None]
    elif in_chans == 3:
        img = np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img
    else:
        raise ValueError(f"ImageFolder: in_chans must be 1 or 3, got {in_chans}")
    return np.ascontiguousarray(img.transpose(2, 0, 1))


class ImageFolder:
    """Load a class-per-sub-folder image tree into memory.

    Inputs:
    - root: the folder holding one sub-folder per class.
    - size: output side (int) or (height, width); every image is resized to it.
    - in_chans: 3 (RGB) or 1 (grey).

    Attributes:
    - images: float32 array (N, in_chans, H, W), values in [0, 1].
    - labels: int64 array (N,).
    - classes: list of class names (sorted sub-folder names); ``labels`` index into it.
    - paths: list of the N file paths, in the order of ``images``.

    Raises FileNotFoundError if root is not a folder, and ValueError (naming the folder or file) if
    there are no class folders, a class folder holds no images, or a file cannot be decoded.
    """

    def __init__(self, root, size, in_chans=3):
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"ImageFolder: {root} is not a folder")
        if in_chans not in (1, 3):
            raise ValueError(f"ImageFolder: in_chans must be 1 or 3, got {in_chans!r}")
        self.root, self.size, self.in_chans = root, size, in_chans
        self.classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not self.classes:
            raise ValueError(f"ImageFolder: {root} has no class sub-folders; expected root/<class>/<image>.png")
        self.paths, labels = [], []
        for label, name in enumerate(self.classes):
            files = sorted(p for p in (root / name).iterdir()
                           if p.is_file() and not p.name.startswith(".")
                           and p.suffix.lower() in IMAGE_EXTENSIONS)
            if not files:
                raise ValueError(f"ImageFolder: class folder {root / name} holds no images "
                                 f"(looked for {', '.join(IMAGE_EXTENSIONS)})")
            self.paths += files
            labels += [label] * len(files)
        self.labels = np.array(labels, dtype=np.int64)
        self.images = np.stack([resize_bilinear(read_image(p, in_chans)[None], size)[0] for p in self.paths])

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        return self.images[i], self.labels[i]

    def __repr__(self):
        return (f"ImageFolder({str(self.root)!r}, {len(self)} images, {len(self.classes)} classes, "
                f"images {self.images.shape[1:]})")
