"""Depthwise convolution as direct Numba loops (no im2col, no matmul).

A depthwise convolution (``groups == C``; Howard et al., 2017, "MobileNets", Sec. 3.1) gives each
output channel ``co`` one ``kh x kw`` filter over one input channel ``ci = co // m`` (``m`` is the
channel multiplier, ``m = C_out / C_in``, usually 1).  With only ``kh*kw`` multiply-adds per output
pixel there is nothing for a matmul to reuse, so im2col would mostly copy memory; a direct loop
reads each input row once per kernel tap instead.

Loop order: parallel over image planes (``n, c``), then output row, kernel row, kernel column,
and innermost the output column.  The innermost loop walks a row of ``y``/``dy`` and a row of
``x`` with a fixed weight, so LLVM vectorises it (contiguous for stride 1).  Padding is handled by
clipping the column range (``_valid_range``), never by copying a padded input.

The backward pass runs over input planes ``(n, ci)`` so that all output channels that read one
input plane (the multiplier) are handled by one iteration: every iteration writes its own ``dx``
plane and its own slice of the per-image weight partials ``dw_n``, so nothing races.  ``dw`` is
reduced over the batch outside (``dw_n.sum(0)``).  The weight gradient is accumulated per output
column first (``acc[i, j, ow]``) and summed at the end: an element-wise update that vectorises
without reassociating floating-point sums.
"""
import numpy as np
from numba import njit, prange

from .im2col import _valid_range


@njit(cache=True, parallel=True)
def depthwise_forward(x, w, y, sh, sw, ph, pw):
    """y[n, co] = sum_ij w[co, i, j] * x_pad[n, co // m, oh*sh + i, ow*sw + j].

    x: (N, C, H, W); w: (C*m, kh, kw); y: (N, C*m, Ho, Wo), zero on entry.
    """
    N, C, H, W = x.shape
    Co, kh, kw = w.shape
    Ho, Wo = y.shape[2], y.shape[3]
    m = Co // C
    for nco in prange(N * Co):
        n, co = nco // Co, nco % Co
        ci = co // m
        for oh in range(Ho):
            for i in range(kh):
                ih = oh * sh - ph + i
                if ih < 0 or ih >= H:
                    continue
                for j in range(kw):
                    wv = w[co, i, j]
                    lo, hi = _valid_range(j, sw, pw, W, Wo)
                    for ow in range(lo, hi):
                        y[n, co, oh, ow] += wv * x[n, ci, ih, ow * sw - pw + j]


@njit(cache=True, parallel=True)
def depthwise_backward(x, w, dy, dx, dw_n, sh, sw, ph, pw):
    """dx and the per-image weight gradients of ``depthwise_forward``, in one pass over dy.

    dx[n, ci, ih, iw] = sum_{co of ci} sum_{oh*sh+i-ph = ih, ow*sw+j-pw = iw} w[co, i, j] dy[n, co, oh, ow]
    dw_n[n, co, i, j] = sum_{oh, ow} dy[n, co, oh, ow] * x_pad[n, ci, oh*sh + i, ow*sw + j]

    x, dx: (N, C, H, W) (dx zero on entry); w: (C*m, kh, kw); dy: (N, C*m, Ho, Wo);
    dw_n: (N, C*m, kh, kw), overwritten.
    """
    N, C, H, W = x.shape
    Co, kh, kw = w.shape
    Ho, Wo = dy.shape[2], dy.shape[3]
    m = Co // C
    for nci in prange(N * C):
        n, ci = nci // C, nci % C
        acc = np.empty((kh, kw, Wo), dtype=x.dtype)
        for k in range(m):
            co = ci * m + k
            acc[:] = 0
            for oh in range(Ho):
                for i in range(kh):
                    ih = oh * sh - ph + i
                    if ih < 0 or ih >= H:
                        continue
                    for j in range(kw):
                        wv = w[co, i, j]
                        lo, hi = _valid_range(j, sw, pw, W, Wo)
                        for ow in range(lo, hi):
                            g = dy[n, co, oh, ow]
                            iw = ow * sw - pw + j
                            dx[n, ci, ih, iw] += wv * g
                            acc[i, j, ow] += g * x[n, ci, ih, iw]
            for i in range(kh):
                for j in range(kw):
                    dw_n[n, co, i, j] = acc[i, j].sum()


def depthwise_forward_fast(x, w, stride, padding, out_hw):
    """Wrapper: x (N, C, H, W), w (C*m, 1, kh, kw) -> y (N, C*m, Ho, Wo)."""
    (sh, sw), (ph, pw), (Ho, Wo) = stride, padding, out_hw
    y = np.zeros((x.shape[0], w.shape[0], Ho, Wo), dtype=x.dtype)
    depthwise_forward(np.ascontiguousarray(x), np.ascontiguousarray(w[:, 0]), y, sh, sw, ph, pw)
    return y


def depthwise_backward_fast(dy, x, w, stride, padding):
    """Wrapper: returns (dx, dw) with the shapes of x and w."""
    (sh, sw), (ph, pw) = stride, padding
    dx = np.zeros_like(x)
    dw_n = np.empty((x.shape[0],) + w.shape[:1] + w.shape[2:], dtype=x.dtype)
    depthwise_backward(np.ascontiguousarray(x), np.ascontiguousarray(w[:, 0]),
                       np.ascontiguousarray(dy), dx, dw_n, sh, sw, ph, pw)
    return dx, dw_n.sum(axis=0).reshape(w.shape)
