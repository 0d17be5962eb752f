"""Image transforms on NCHW batches, NumPy only: resize, normalise, augment, replicate channels.

Everything here is a matrix product.  Resizing an image with linear interpolation is linear in the
pixels and separable, so a resize along the rows is ``A @ x`` with an ``(out, in)`` matrix ``A``
whose row ``u`` holds the interpolation weights of output pixel ``u``, and along the columns it is
``x @ B.T``.  The same two matrices, drawn per image, give the random shift-and-scale augmentation.

Conventions (PyTorch's, so results can be compared with ``torch.nn.functional.interpolate``):

* pixel ``j`` has its centre at coordinate ``j``; output pixel ``u`` of a resize from ``n_in`` to
  ``n_out`` samples the input at ``c = (u + 0.5) * n_in / n_out - 0.5`` (``align_corners=False``);
* the interpolation kernel is the triangle ``max(0, 1 - |j - c| / r)``.  With ``r = 1`` this is
  bilinear interpolation.  When shrinking by a factor ``f > 1`` with ``antialias=True`` the
  triangle is widened to ``r = f`` so every input pixel contributes (PIL's and
  ``interpolate(..., antialias=True)``'s rule); without it, a 500-pixel photo shrunk to 32 pixels
  would be built from 64 of its 250,000 pixels and alias badly;
* resize weights are renormalised to sum to 1, which at the borders equals PyTorch's clamping of
  ``c`` to the image; the augmentation does not renormalise, so content moved in from outside the
  image is zero (``grid_sample``'s ``padding_mode="zeros"``), which is the background of a digit.
"""
from __future__ import annotations

import numpy as np


def _pair(size, what="size"):
    if isinstance(size, (int, np.integer)):
        size = (int(size), int(size))
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(s, (int, np.integer)) and s >= 1 for s in size)):
        raise ValueError(f"{what} must be a positive int or an (height, width) pair, got {size!r}")
    return int(size[0]), int(size[1])


def _check_images(fn, x):
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{fn}: images must be a numpy.ndarray, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{fn}: images have shape {x.shape}; expected (N, C, H, W)")
    return x


def interp_matrix(n_in, n_out, antialias=True):
    """The ``(n_out, n_in)`` matrix of a 1-D linear-interpolation resize.

    Inputs:
    - n_in, n_out: lengths before and after the resize.
    - antialias: widen the triangle kernel when shrinking (see the module docstring).

    Returns:
    - A: float64 array of shape (n_out, n_in); each row sums to 1.
    """
    scale = n_in / n_out
    radius = max(1.0, scale) if antialias else 1.0
    c = (np.arange(n_out) + 0.5) * scale - 0.5
    w = np.maximum(0.0, 1.0 - np.abs(np.arange(n_in)[None, :] - c[:, None]) / radius)
    return w / w.sum(axis=1, keepdims=True)


def resize_bilinear(x, size, antialias=True):
    """Resize a batch with (antialiased) bilinear interpolation.

    Inputs:
    - x: images of shape (N, C, H, W); float (ints are converted to float32).
    - size: output size, an int (square) or a (height, width) pair.
    - antialias: smooth when shrinking, as PIL does; no effect when enlarging.

    Returns:
    - y: images of shape (N, C, size_h, size_w), the dtype of x (float32 for integer input).
      Upsampling equals ``torch.nn.functional.interpolate(x, size, mode="bilinear",
      align_corners=False)``; downsampling with antialias equals the same call with
      ``antialias=True``.
    """
    _check_images("resize_bilinear", x)
    out_h, out_w = _pair(size)
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float32
    rows = interp_matrix(x.shape[2], out_h, antialias).astype(dtype)
    cols = interp_matrix(x.shape[3], out_w, antialias).astype(dtype)
    return np.ascontiguousarray(rows @ (x.astype(dtype, copy=False) @ cols.T))


def _shift_scale_matrices(n, scale, shift):
    """Per-image ``(N, n, n)`` sampling matrices for a zoom by ``scale`` about the centre and a move
    by ``shift`` pixels.  Output pixel ``u`` reads the input at ``(u - m) / scale + m - shift``
    where ``m = (n - 1) / 2``; weights outside the image are dropped (zero fill)."""
    m = (n - 1) / 2.0
    c = (np.arange(n)[None, :] - m) / scale[:, None] + m - shift[:, None]      # (N, n)
    return np.maximum(0.0, 1.0 - np.abs(np.arange(n)[None, None, :] - c[:, :, None]))


def random_shift_scale(x, rng, max_shift=2.0, scale=(0.9, 1.1)):
    """Random translation and zoom per image, the augmentation that suits digits.

    Each image is moved by a shift drawn uniformly from [-max_shift, max_shift] pixels along each
    axis and zoomed about its centre by one factor drawn uniformly from ``scale`` (the same for
    both axes, so shapes keep their proportions).  There is deliberately no flip and no rotation
    by large angles: a mirrored 2 or 7 is not a digit, and a turned 6 is a 9.

    Inputs:
    - x: images of shape (N, C, H, W), float, background 0 (apply before normalising).
    - rng: a numpy.random.Generator; the draws are N scales, then N row shifts, then N column
      shifts, so the same generator state gives the same result.
    - max_shift: largest shift in pixels (0 disables shifting).
    - scale: (low, high) zoom range; (1, 1) disables zooming.

    Returns:
    - y: array like x.
    """
    _check_images("random_shift_scale", x)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"random_shift_scale: rng must be a numpy.random.Generator, got {type(rng).__name__}")
    lo, hi = scale
    if not 0 < lo <= hi:
        raise ValueError(f"random_shift_scale: scale must be (low, high) with 0 < low <= high, got {scale!r}")
    if max_shift < 0:
        raise ValueError(f"random_shift_scale: max_shift must be >= 0, got {max_shift!r}")
    n = x.shape[0]
    s = rng.uniform(lo, hi, size=n)
    ty = rng.uniform(-max_shift, max_shift, size=n)
    tx = rng.uniform(-max_shift, max_shift, size=n)
    rows = _shift_scale_matrices(x.shape[2], s, ty).astype(x.dtype)
    cols = _shift_scale_matrices(x.shape[3], s, tx).astype(x.dtype)
    # y[n] = rows[n] @ x[n, c] @ cols[n].T for every channel c
    return np.ascontiguousarray(rows[:, None] @ x @ np.swapaxes(cols, 1, 2)[:, None])


class RandomShiftScale:
    """``random_shift_scale`` with its settings bound: ``aug(x, rng) -> y`` (for ``Loader``)."""

    def __init__(self, max_shift=2.0, scale=(0.9, 1.1)):
        self.max_shift = float(max_shift)
        self.scale = (float(scale[0]), float(scale[1]))

    def __call__(self, x, rng):
        return random_shift_scale(x, rng, self.max_shift, self.scale)

    def __repr__(self):
        return f"RandomShiftScale(max_shift={self.max_shift}, scale={self.scale})"


def channel_stats(x):
    """Per-channel mean and standard deviation of a batch (compute them on the training split only).

    Inputs:
    - x: images of shape (N, C, H, W).

    Returns:
    - mean, std: float32 arrays of shape (C,), statistics over N, H and W (population std).
    """
    _check_images("channel_stats", x)
    x64 = x.astype(np.float64)
    return (x64.mean(axis=(0, 2, 3)).astype(np.float32),
            x64.std(axis=(0, 2, 3)).astype(np.float32))


def normalize(x, mean, std):
    """``(x - mean) / std`` per channel.

    Inputs:
    - x: images of shape (N, C, H, W).
    - mean, std: arrays of shape (C,) (or scalars); std must be positive.

    Returns:
    - y: array like x.
    """
    _check_images("normalize", x)
    mean = np.asarray(mean, dtype=x.dtype).reshape(-1, 1, 1)
    std = np.asarray(std, dtype=x.dtype).reshape(-1, 1, 1)
    if mean.shape[0] not in (1, x.shape[1]) or std.shape[0] not in (1, x.shape[1]):
        raise ValueError(f"normalize: mean/std have {mean.shape[0]}/{std.shape[0]} values; "
                         f"expected 1 or one per channel ({x.shape[1]})")
    if np.any(std <= 0):
        raise ValueError(f"normalize: std must be positive, got {std.ravel()}")
    return (x - mean) / std


def replicate_channels(x, in_chans):
    """Repeat a single-channel batch ``in_chans`` times (grey digits into a 3-channel model).

    Inputs:
    - x: images of shape (N, C, H, W) with C == 1 or C == in_chans.

    Returns:
    - y: images of shape (N, in_chans, H, W) (x itself when it already has in_chans channels).
    """
    _check_images("replicate_channels", x)
    if x.shape[1] == in_chans:
        return x
    if x.shape[1] != 1:
        raise ValueError(f"replicate_channels: images have {x.shape[1]} channels; can only turn 1 "
                         f"channel into {in_chans}")
    return np.ascontiguousarray(np.repeat(x, in_chans, axis=1))
