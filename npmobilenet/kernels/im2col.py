"""im2col / col2im as Numba loops: the data movement around the one big matmul of a convolution.

``im2col`` lays out, for every output pixel, the ``C * kh * kw`` input values its kernel window
sees, so that the convolution becomes one matrix product (Chellapilla et al., 2006, "High
Performance Convolutional Neural Networks for Document Processing").  ``col2im`` is its adjoint:
it adds every column entry back onto the input pixel it was read from.

Layout (the same as the plain-NumPy path in ``ops/conv.py``): ``cols[n, (c*kh + i)*kw + j,
oh*Wo + ow] = x_padded[n, c, oh*sh + i, ow*sw + j]``.  The rows of one group of channels are
contiguous, so a grouped convolution reshapes ``cols`` to ``(N, G, Cg*kh*kw, Ho*Wo)`` for free.

Padding is never materialised: each kernel works out, per kernel column ``j``, the range of output
columns whose input column lies inside the image (``_valid_range``) and writes zeros elsewhere.
Each kernel runs in parallel over the ``N * C`` image planes; no two iterations touch the same
output plane, so there are no races.
"""
import numpy as np
from numba import njit, prange


@njit(cache=True, inline="always")
def _valid_range(j, s, p, size, n_out):
    """Output indices o in [lo, hi) with 0 <= o*s - p + j < size (the input index is in range)."""
    lo = 0 if p - j <= 0 else (p - j + s - 1) // s
    hi = min(n_out, (size - 1 + p - j) // s + 1)
    return lo, max(lo, hi)


@njit(cache=True, parallel=True)
def im2col(x, cols, kh, kw, sh, sw, ph, pw, Ho, Wo):
    """Fill ``cols`` (N, C*kh*kw, Ho*Wo) from ``x`` (N, C, H, W); zero where the window is padding."""
    N, C, H, W = x.shape
    for nc in prange(N * C):
        n, c = nc // C, nc % C
        for i in range(kh):
            for j in range(kw):
                r = (c * kh + i) * kw + j
                lo, hi = _valid_range(j, sw, pw, W, Wo)
                for oh in range(Ho):
                    ih = oh * sh - ph + i
                    base = oh * Wo
                    if ih < 0 or ih >= H:
                        for ow in range(Wo):
                            cols[n, r, base + ow] = 0
                        continue
                    for ow in range(lo):
                        cols[n, r, base + ow] = 0
                    for ow in range(lo, hi):
                        cols[n, r, base + ow] = x[n, c, ih, ow * sw - pw + j]
                    for ow in range(hi, Wo):
                        cols[n, r, base + ow] = 0


@njit(cache=True, parallel=True)
def col2im(dcols, dx, kh, kw, sh, sw, ph, pw, Ho, Wo):
    """Add ``dcols`` (N, C*kh*kw, Ho*Wo) back onto ``dx`` (N, C, H, W), which must start at zero.

    Entries that were read from the padding have no input pixel and are dropped.
    """
    N, C, H, W = dx.shape
    for nc in prange(N * C):
        n, c = nc // C, nc % C
        for i in range(kh):
            for j in range(kw):
                r = (c * kh + i) * kw + j
                lo, hi = _valid_range(j, sw, pw, W, Wo)
                for oh in range(Ho):
                    ih = oh * sh - ph + i
                    if ih < 0 or ih >= H:
                        continue
                    base = oh * Wo
                    for ow in range(lo, hi):
                        dx[n, c, ih, ow * sw - pw + j] += dcols[n, r, base + ow]


def im2col_fast(x, kh, kw, stride, padding, out_hw):
    """Wrapper: allocate ``cols`` with x's dtype and fill it.  Returns (N, C*kh*kw, Ho*Wo)."""
    (sh, sw), (ph, pw), (Ho, Wo) = stride, padding, out_hw
    N, C = x.shape[:2]
    cols = np.empty((N, C * kh * kw, Ho * Wo), dtype=x.dtype)
    im2col(np.ascontiguousarray(x), cols, kh, kw, sh, sw, ph, pw, Ho, Wo)
    return cols


def col2im_fast(dcols, x_shape, kh, kw, stride, padding, out_hw):
    """Wrapper: the adjoint of ``im2col_fast``.  Returns dx of shape ``x_shape``."""
    (sh, sw), (ph, pw), (Ho, Wo) = stride, padding, out_hw
    dx = np.zeros(x_shape, dtype=dcols.dtype)
    col2im(np.ascontiguousarray(dcols), dx, kh, kw, sh, sw, ph, pw, Ho, Wo)
    return dx
