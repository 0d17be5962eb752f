"""Depthwise convolution on small maps (7x7 and below), channels innermost.

``depthwise.py`` runs one channel's planes at a time, each tap a loop over the plane: right for
56x56 planes, but a 1x1 or 2x2 plane gives each loop one to four iterations, so the per-plane
bookkeeping is all the cost (measured: 1.8M multiply-adds of a 5x5 depthwise on 128x576x1x1 maps
took 5 ms forward and 11 ms backward, 0.7 GFLOP/s).  Here the loops are turned inside out: the
input is taken channels-last, ``(N, H, W, C)``, and for every output pixel and every kernel tap
that lands inside the image, one loop over the C channels does

    y[n, oh, ow, :] += w[i, j, :] * x[n, oh*sh + i - ph, ow*sw + j - pw, :]          (1)

a contiguous loop over channels that LLVM vectorises; taps that read only padding are skipped.
For a 1x1 map channels-last is NCHW (no transpose at all); for larger maps the transposes cost
one pass each way.  Which path is faster depends on the map and the batch (measured, 2 threads,
forward / backward ms, this path against the plane path, after the plane path's copies were made
to vectorise): 128x576x1x1 5x5 0.24 / 0.41 against 8.8 / 26; 16x576x4x4 5x5 0.68 / 1.6 against
1.3 / 3.6; 16x512x7x7 5x5 3.3 / 5.2 against 1.9 / 5.9; 16x576x8x8 5x5 4.6 / 7.2 against
2.2 / 5.5; 2x960x7x7 5x5 0.55 / 1.5 against 0.88 / 1.4; 1x256x8x8 3x3 0.06 / 0.09 against
0.08 / 0.15.  Hence (``applies``): maps of at most ``MAX_PIXELS`` = 64 pixels (8x8) at batch
< 4, where the plane path has few images to stack; at larger batches maps of at most 16 pixels
(4x4) forward and 49 (7x7) backward.  The backward pass
is (1) read the other way round:

    dx[n, ih, iw, :] += w[i, j, :] * dy[n, oh, ow, :]
    dw[i, j, :]      += dy[n, oh, ow, :] * x[n, ih, iw, :]       (summed over n, oh, ow)

Work is split by images; each part writes its own images of y / dx and its own row of the
weight-gradient partials (one per fixed block of images, summed in order afterwards), so the
result does not depend on the thread count.  Channel multiplier 1 only (every MobileNet).
"""
import numpy as np
from numba import njit

from . import buffers
from .threads import run_parts

MAX_PIXELS = 64        # maps of at most this many pixels (8x8) at batch < 4 take this path, and
MAX_PIXELS_FORWARD = 16   # at batch >= 4 maps of at most 4x4 forward
MAX_PIXELS_BACKWARD = 49  # and 7x7 backward
_IMAGES_PER_PART = 8


@njit(cache=True, nogil=True, fastmath={"contract"})
def forward(x, w, y, sh, sw, ph, pw, n0, n1):
    """(1) for images n0 <= n < n1.  x: (N, H, W, C); w: (kh, kw, C); y: (N, Ho, Wo, C)."""
    H, W, C = x.shape[1], x.shape[2], x.shape[3]
    kh, kw = w.shape[0], w.shape[1]
    Ho, Wo = y.shape[1], y.shape[2]
    for n in range(n0, n1):
        for oh in range(Ho):
            for ow in range(Wo):
                acc = y[n, oh, ow]
                acc[:] = 0
                for i in range(kh):
                    ih = oh * sh + i - ph
                    if ih < 0 or ih >= H:
                        continue
                    for j in range(kw):
                        iw = ow * sw + j - pw
                        if iw < 0 or iw >= W:
                            continue
                        src, wt = x[n, ih, iw], w[i, j]
                        for c in range(C):
                            acc[c] += wt[c] * src[c]


@njit(cache=True, nogil=True, fastmath={"contract"})
def backward(x, w, dy, dx, dw_part, sh, sw, ph, pw, n0, n1):
    """dx for images n0 <= n < n1 and their weight gradient, added into dw_part (kh, kw, C)."""
    H, W, C = x.shape[1], x.shape[2], x.shape[3]
    kh, kw = w.shape[0], w.shape[1]
    Ho, Wo = dy.shape[1], dy.shape[2]
    for n in range(n0, n1):
        dx[n] = 0
        for oh in range(Ho):
            for ow in range(Wo):
                g = dy[n, oh, ow]
                for i in range(kh):
                    ih = oh * sh + i - ph
                    if ih < 0 or ih >= H:
                        continue
                    for j in range(kw):
                        iw = ow * sw + j - pw
                        if iw < 0 or iw >= W:
                            continue
                        src, dst, wt, dwt = x[n, ih, iw], dx[n, ih, iw], w[i, j], dw_part[i, j]
                        for c in range(C):
                            dst[c] += wt[c] * g[c]
                            dwt[c] += g[c] * src[c]


def applies(x_shape, w_shape, backward=False):
    """True if this path is the faster for a multiplier-1 depthwise conv (module docstring)."""
    N, pixels = x_shape[0], x_shape[2] * x_shape[3]
    if w_shape[0] != x_shape[1] or pixels > MAX_PIXELS:
        return False
    return N < 4 or pixels <= (MAX_PIXELS_BACKWARD if backward else MAX_PIXELS_FORWARD)


def _nhwc(a):
    return a.reshape(a.shape[0], 1, 1, a.shape[1]) if a.shape[2] * a.shape[3] == 1 else a.transpose(0, 2, 3, 1)


def _parts(N):
    bounds = list(range(0, N, _IMAGES_PER_PART)) + [N]
    return bounds, len(bounds) - 1


def forward_fast(x, w, stride, padding, out_hw):
    """x (N, C, H, W), w (C, 1, kh, kw) -> y (N, C, Ho, Wo)."""
    N, C = x.shape[:2]
    xt = np.ascontiguousarray(_nhwc(x))
    wt = np.ascontiguousarray(w[:, 0].transpose(1, 2, 0))
    yt = buffers.empty((N,) + tuple(out_hw) + (C,), x.dtype)
    bounds, parts = _parts(N)
    run_parts(lambda t: forward(xt, wt, yt, *stride, *padding, bounds[t], bounds[t + 1]), parts,
              threads=None if x.size >= 1 << 16 else 1)
    return np.ascontiguousarray(yt.transpose(0, 3, 1, 2))


def backward_fast(dy, x, w, stride, padding):
    """Returns (dx, dw) with the shapes of x and w."""
    N, C = x.shape[:2]
    xt = np.ascontiguousarray(_nhwc(x))
    dyt = np.ascontiguousarray(_nhwc(dy))
    wt = np.ascontiguousarray(w[:, 0].transpose(1, 2, 0))
    dxt = buffers.empty((N,) + x.shape[2:] + (C,), x.dtype)
    bounds, parts = _parts(N)
    dw_parts = np.zeros((parts,) + wt.shape, x.dtype)
    run_parts(lambda t: backward(xt, wt, dyt, dxt, dw_parts[t], *stride, *padding, bounds[t], bounds[t + 1]),
              parts, threads=None if x.size >= 1 << 16 else 1)
    dw = dw_parts.sum(axis=0).transpose(2, 0, 1).reshape(w.shape)
    return np.ascontiguousarray(dxt.transpose(0, 3, 1, 2)), np.ascontiguousarray(dw)
