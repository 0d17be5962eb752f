"""Stride-1 depthwise convolution, one pass over each plane at the input's own row pitch.

``depthwise.py`` copies each plane into zero-padded phase planes (row pitch ``W + 2 pw``), runs
the taps, then copies the result back out to pitch W.  At stride 1 with "same" padding
(``p = k // 2``, every stride-1 depthwise layer of a MobileNet) the output has the input's shape,
so the output plane can keep the input's pitch W and the copy out goes.  Were the plane copied
once, as it is, into a scratch buffer that has ``ph`` zero rows above and below it (and ``pw``
zeros at either end), tap (i, j) of output pixel ``q = oh*W + ow`` would read (the dw pass makes
that copy; the forward copies only the plane's two ends, below)

    pad[q + i*W + j]                                                                   (1)

a fixed offset from q, for every q, the top and bottom rows included.  One thing makes (1) wrong:
at ``ow + j - pw < 0`` or ``>= W`` it reads the far end of the neighbouring row instead of
padding.  Those reads are multiplied by a 0/1 column mask ``m_j[q]`` (one table per geometry):

    y[q] = sum_j m_j[q] * sum_i w[i, j] * pad[q + i*W + j]                             (2)

so all kh*kw taps of the whole plane are one loop of H*W iterations, which LLVM vectorises, and
it writes y directly.

Only the first and last ``o = ph*W + pw`` output pixels have windows that reach past the plane's
first or last row.  So only the plane's first and last ``2*o`` values are copied, into two small
buffers with the zeros of (1) before and after them (``_edges``); (2) runs on those for the
first and last o pixels, and on x itself, in place, for all the others (``_plane``).  Copying
the whole plane instead took 10-16 % longer forward (16x72x56x56 3x3: 1.29 against 1.10 ms;
16x120x28x28 5x5: 1.81 against 1.52 ms; medians, 2 threads, calls alternated; the results are
bit for bit the same).  (The mask multiplies a column's sum of products, so an inf or NaN in x
also reaches the output pixels at the far edge of the neighbouring rows: non-finite in,
non-finite out, one pixel further.)  Writing the taps in one loop matters: a loop per tap row,
which reads and writes y again for each, was 2.5x slower for 5x5 (loads and stores, not
multiply-adds, are what these loops wait on), and loops over single rows run mostly in their
unvectorised remainder.

Backward.  With "same" padding the adjoint of (2) is (2) again with the kernel turned by 180
degrees, ``dx = conv(dy, w[::-1, ::-1])`` (the masks are the same, as dy has x's shape), and

    dw[i, j] = sum_q dy[q] * m_j[q] * pad_x[q + i*W + j]                               (3)

all nine sums in one pass for 3x3, one pass per tap row with its five sums for 5x5 (25 running
sums at once would not fit the vector registers).

Measured (float32, 2 threads, calls alternated in one process, two runs; ms forward / backward,
this path, when it still copied whole planes, against the phase planes):

    16x72x56x56 3x3      1.2-1.7 / 2.5-3.6    against 2.0-3.0 / 4.5-6.5
    16x32x112x112 3x3    2.0-2.5 / 5.0-6.2    against 4.0-5.2 / 10.1-12.6
    16x240x28x28 3x3     1.5-1.9 / 2.8-3.7    against 2.1-2.6 / 4.0-5.7
    16x48x56x56 5x5      2.0-2.1 / 5.0-5.1    against 2.2-2.3 / 5.4-5.7
    16x120x28x28 5x5     1.8-2.3 / 3.7-4.7    against 1.8-2.3 / 4.2-6.0
    16x240x20x20 5x5     2.5-3.1 / 4.9-6.1    against 2.1-2.4 / 4.7-6.1
    16x240x14x14 3x3     0.9-1.0 / 1.6-1.8    against 0.7-0.8 / 1.3-1.4

On maps below ``MIN_PIXELS`` (24x24) the phase planes, which stack several images into one
loop, are as fast or faster.

Channel multiplier 1 (every MobileNet) and square 3x3 and 5x5 kernels (the loops are written out
per kernel size); anything else takes the phase-plane path.  Tasks are whole planes; every task
writes its own plane of y / dx and its own row of per-image weight partials (summed over the
images in order afterwards), so results do not depend on the thread count.
"""
import functools

import numpy as np
from numba import njit

from . import buffers
from .threads import run_chunks

MIN_PIXELS = 24 * 24    # smaller maps take the phase-plane path (module docstring)


def applies(x_shape, w_shape, stride, padding):
    """True for a multiplier-1, stride-1, same-padded 3x3 or 5x5 depthwise conv on a map of at
    least ``MIN_PIXELS`` pixels: where it was measured as fast or faster."""
    kh, kw = w_shape[2], w_shape[3]
    return (w_shape[0] == x_shape[1] and tuple(stride) == (1, 1) and kh == kw and kh in (3, 5)
            and tuple(padding) == (kh // 2, kw // 2) and x_shape[2] >= kh and x_shape[3] >= kw
            and x_shape[2] * x_shape[3] >= MIN_PIXELS)


@functools.lru_cache(maxsize=64)
def column_masks(H, W, kw, dtype):
    """(kw, H*W): m_j[oh*W + ow] = 1 where input column ow + j - kw//2 exists, else 0."""
    ow = np.arange(W)[None, :] + np.arange(kw)[:, None] - kw // 2
    return np.tile(((ow >= 0) & (ow < W)).astype(dtype), (1, H))


@njit(cache=True, nogil=True, inline="always")
def _edges(src, top, bot, o):
    """Copy the first and last ``2*o`` values of the plane src into ``top[o:]`` and ``bot[:2*o]``.

    ``o = ph*W + pw`` is the offset of the centre tap in (1).  Only the first and last o output
    pixels have windows that reach past the plane's first or last row; these two strips, with
    ``top[:o]`` and ``bot[2*o:]`` left at zero, are padded copies of the plane's ends on which (1)
    holds for them."""
    n = src.shape[0]
    for q in range(2 * o):
        top[o + q] = src[q]
        bot[q] = src[n - 2 * o + q]


# The tap loops are calls, not inlined: Numba inlines at the level of its own IR, so the loop would
# take the caller's fastmath flags (none: no fused multiply-adds); measured 1.4-2x slower.
@njit(cache=True, nogil=True, fastmath={"contract"})
def _taps3(s, wc, dst, m0, m2, W):
    """(2) for a 3x3 kernel: dst[q] = sum_j m_j[q] * sum_i w[i, j] * s[q + i*W + j], q < len(dst)."""
    n = dst.shape[0]
    a0, a1, a2 = _three(s, 0, n)                         # tap row 0, columns 0 .. 2
    b0, b1, b2 = _three(s, W, n)
    c0, c1, c2 = _three(s, 2 * W, n)
    w00, w01, w02, w10, w11, w12, w20, w21, w22 = (wc[0], wc[1], wc[2], wc[3], wc[4], wc[5],
                                                   wc[6], wc[7], wc[8])
    for q in range(n):
        dst[q] = (m0[q] * (w00 * a0[q] + w10 * b0[q] + w20 * c0[q])
                  + (w01 * a1[q] + w11 * b1[q] + w21 * c1[q])
                  + m2[q] * (w02 * a2[q] + w12 * b2[q] + w22 * c2[q]))


@njit(cache=True, nogil=True, fastmath={"contract"})
def _taps5(s, wc, dst, m0, m1, m3, m4, W):
    """(2) for a 5x5 kernel, as ``_taps3``."""
    n = dst.shape[0]
    a0, a1, a2, a3, a4 = _five(s, 0, n)                  # tap row 0, columns 0 .. 4
    b0, b1, b2, b3, b4 = _five(s, W, n)
    c0, c1, c2, c3, c4 = _five(s, 2 * W, n)
    d0, d1, d2, d3, d4 = _five(s, 3 * W, n)
    e0, e1, e2, e3, e4 = _five(s, 4 * W, n)
    for q in range(n):
        dst[q] = (m0[q] * (wc[0] * a0[q] + wc[5] * b0[q] + wc[10] * c0[q] + wc[15] * d0[q] + wc[20] * e0[q])
                  + m1[q] * (wc[1] * a1[q] + wc[6] * b1[q] + wc[11] * c1[q] + wc[16] * d1[q] + wc[21] * e1[q])
                  + (wc[2] * a2[q] + wc[7] * b2[q] + wc[12] * c2[q] + wc[17] * d2[q] + wc[22] * e2[q])
                  + m3[q] * (wc[3] * a3[q] + wc[8] * b3[q] + wc[13] * c3[q] + wc[18] * d3[q] + wc[23] * e3[q])
                  + m4[q] * (wc[4] * a4[q] + wc[9] * b4[q] + wc[14] * c4[q] + wc[19] * d4[q] + wc[24] * e4[q]))


@njit(cache=True, nogil=True, inline="always")
def _taps(s, wc, dst, masks, q0, kw, W):
    """(2) on the output pixels ``q0 .. q0 + len(dst)``, s the padded stretch of plane they read."""
    q1 = q0 + dst.shape[0]
    if kw == 3:
        _taps3(s, wc, dst, masks[0][q0:q1], masks[2][q0:q1], W)
    else:
        _taps5(s, wc, dst, masks[0][q0:q1], masks[1][q0:q1], masks[3][q0:q1], masks[4][q0:q1], W)


@njit(cache=True, nogil=True, inline="always")
def _plane(src, wc, dst, masks, kh, kw, H, W, top, bot):
    """dst = (src conv wc), one (H*W) plane; wc: (kh*kw,) taps, row-major.

    The first and last ``o = ph*W + pw`` output pixels run on the padded copies ``top`` and
    ``bot`` of the plane's ends (``_edges``; each ``3*o`` values); all the others read src in
    place: tap (i, j) of pixel q is ``src[q - o + i*W + j]``, inside the plane."""
    HW = H * W
    o = (kh // 2) * W + kw // 2
    _edges(src, top, bot, o)
    _taps(top, wc, dst[:o], masks, 0, kw, W)
    _taps(src, wc, dst[o:HW - o], masks, o, kw, W)
    _taps(bot, wc, dst[HW - o:], masks, HW - o, kw, W)


# Inlined into the caller (``inline="always"``, at Numba's level): returned from a call, each
# window would cost a reference-count increment and decrement, which took longer than the
# taps themselves on the short stretches of ``_plane``.
@njit(cache=True, nogil=True, inline="always")
def _three(a, o, n):
    """The windows a[o + j : o + j + n] of tap columns j = 0, 1, 2."""
    return a[o:o + n], a[o + 1:o + 1 + n], a[o + 2:o + 2 + n]


@njit(cache=True, nogil=True, inline="always")
def _five(a, o, n):
    """The windows a[o + j : o + j + n] of tap columns j = 0 .. 4."""
    return a[o:o + n], a[o + 1:o + 1 + n], a[o + 2:o + 2 + n], a[o + 3:o + 3 + n], a[o + 4:o + 4 + n]


@njit(cache=True, nogil=True)
def forward(x, w, y, masks, kh, kw, H, W, start, stop):
    """y[p] = x[p] conv w[p % C] for planes start <= p < stop.  x, y: (N*C, H*W); w: (C, kh*kw)."""
    C = w.shape[0]
    o = (kh // 2) * W + kw // 2
    top, bot = np.zeros(3 * o, dtype=x.dtype), np.zeros(3 * o, dtype=x.dtype)
    for p in range(start, stop):
        _plane(x[p], w[p % C], y[p], masks, kh, kw, H, W, top, bot)


@njit(cache=True, nogil=True)
def _copy_in(src, pad, kh, kw, W):
    """Copy the (H*W) plane src into pad, after its kh//2 zero rows and kw//2 zeros, so that
    ``pad[q + i*W + j]`` is (1) for every q."""
    inner = pad[kw // 2 + (kh // 2) * W:]
    for q in range(src.shape[0]):
        inner[q] = src[q]


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _weight_grad(src, g, dwp, masks, kh, kw, H, W, pad):
    """dwp[i*kw + j] = sum_q g[q] * m_j[q] * pad[q + i*W + j]: one image plane's dw.

    ``pad``: scratch of ``(H + 2*ph)*W + 2*pw`` values, zero outside ``[pw + ph*W, pw + ph*W + H*W)``,
    src copied in (``_copy_in``).  Reassociation lets each sum vectorise (lane-wise
    partial sums); it changes only the order within one plane's sum, which depends on the shapes
    alone, never on the threads."""
    HW = H * W
    _copy_in(src, pad, kh, kw, W)
    zero = src.dtype.type(0)     # sums in x's dtype (a float64 sum of float32 products is 2.5x slower)
    if kw == 3:                  # all nine sums in one pass: g and the masks read once
        m0, m2 = masks[0], masks[2]
        a0, a1, a2 = _three(pad, 0, HW)
        b0, b1, b2 = _three(pad, W, HW)
        c0, c1, c2 = _three(pad, 2 * W, HW)
        t00 = t01 = t02 = t10 = t11 = t12 = t20 = t21 = t22 = zero
        for q in range(HW):
            gq = g[q]
            g0, g2 = gq * m0[q], gq * m2[q]
            t00 += g0 * a0[q]
            t01 += gq * a1[q]
            t02 += g2 * a2[q]
            t10 += g0 * b0[q]
            t11 += gq * b1[q]
            t12 += g2 * b2[q]
            t20 += g0 * c0[q]
            t21 += gq * c1[q]
            t22 += g2 * c2[q]
        dwp[0], dwp[1], dwp[2], dwp[3], dwp[4] = t00, t01, t02, t10, t11
        dwp[5], dwp[6], dwp[7], dwp[8] = t12, t20, t21, t22
        return
    m0, m1, m3, m4 = masks[0], masks[1], masks[3], masks[4]
    for i in range(5):           # 5x5: one pass per tap row, its five sums side by side
        s0, s1, s2, s3, s4 = _five(pad, i * W, HW)
        t0 = t1 = t2 = t3 = t4 = zero
        for q in range(HW):
            gq = g[q]
            t0 += (gq * m0[q]) * s0[q]
            t1 += (gq * m1[q]) * s1[q]
            t2 += gq * s2[q]
            t3 += (gq * m3[q]) * s3[q]
            t4 += (gq * m4[q]) * s4[q]
        dwp[5 * i], dwp[5 * i + 1], dwp[5 * i + 2], dwp[5 * i + 3], dwp[5 * i + 4] = t0, t1, t2, t3, t4


@njit(cache=True, nogil=True)
def backward(x, w_flipped, dy, dx, dw_n, masks, kh, kw, H, W, start, stop):
    """dx and per-plane weight gradients for planes start <= p < stop.

    x, dy, dx: (N*C, H*W); w_flipped: (C, kh*kw), each kernel turned by 180 degrees;
    dw_n: (N*C, kh*kw), plane p's share of dw[p % C]."""
    C = w_flipped.shape[0]
    pad = np.zeros((H + kh - 1) * W + kw - 1, dtype=x.dtype)
    o = (kh // 2) * W + kw // 2
    top, bot = np.zeros(3 * o, dtype=x.dtype), np.zeros(3 * o, dtype=x.dtype)
    for p in range(start, stop):
        _plane(dy[p], w_flipped[p % C], dx[p], masks, kh, kw, H, W, top, bot)
        _weight_grad(x[p], dy[p], dw_n[p], masks, kh, kw, H, W, pad)


def forward_fast(x, w):
    """x (N, C, H, W), w (C, 1, k, k) -> y (N, C, H, W); ``applies`` must hold."""
    N, C, H, W = x.shape
    kh, kw = w.shape[2:]
    y = buffers.empty(x.shape, x.dtype)
    run_chunks(forward, N * C, np.ascontiguousarray(x).reshape(N * C, H * W),
               np.ascontiguousarray(w, dtype=x.dtype).reshape(C, kh * kw), y.reshape(N * C, H * W),
               column_masks(H, W, kw, x.dtype), kh, kw, H, W, work=2 * x.size)
    return y


def backward_fast(dy, x, w):
    """Returns (dx, dw) with the shapes of x and w; ``applies`` must hold."""
    N, C, H, W = x.shape
    kh, kw = w.shape[2:]
    dx = buffers.empty(x.shape, x.dtype)
    dw_n = np.empty((N, C, kh * kw), dtype=x.dtype)
    w_flipped = np.ascontiguousarray(w[:, 0, ::-1, ::-1], dtype=x.dtype).reshape(C, kh * kw)
    run_chunks(backward, N * C, np.ascontiguousarray(x).reshape(N * C, H * W), w_flipped,
               np.ascontiguousarray(dy).reshape(N * C, H * W), dx.reshape(N * C, H * W),
               dw_n.reshape(N * C, kh * kw), column_masks(H, W, kw, x.dtype), kh, kw, H, W,
               work=3 * x.size)
    return dx, dw_n.sum(axis=0).reshape(w.shape)
