"""Stride-2 depthwise convolution forward on even-width maps: each row split into its even and odd
columns, with no other copy.

``depthwise.py`` copies each plane into four zero-padded phase planes, one per (row, column)
parity.  At 14x14 a phase row has 7 values, so that copy is a scatter of single values through a
table, and it was half the time of a 16x672x14x14 5x5 stride-2 forward (1.2 of 2.4 ms on one
thread).  Splitting only the *columns* is one loop over the whole plane: with W even, the
flattened plane's even and odd values are the even and odd columns of its rows,

    E[r*Wh + c] = x[r, 2c],    O[r*Wh + c] = x[r, 2c + 1]        (Wh = W / 2, r < H)        (1)

a de-interleave that LLVM vectorises.  Tap (i, j) of output pixel (oh, ow), with "same" padding
``p = k // 2``, reads ``x[2 oh + i - p, 2 ow + j - p]``: column ``2 ow + d`` (``d = j - p``) is
column ``ow + floor(d / 2)`` of E (d even) or O (d odd).  Counted from the position
``t = 2 oh * Wh + ow`` of the output pixel at row ``2 oh`` of (1), the read is at

    t + (i - p) * Wh + floor((j - p) / 2),        floor((j - p) / 2) in {-1, 0, 1}      (2)

a fixed offset for every t.  So every tap is one loop over t, as in ``depthwise_s1.py``.  The loop
cannot skip rows, so it also computes the pixels of the odd rows ``2 oh + 1``, which are dropped:
twice the multiply-adds of the output, still cheaper than the scatter.  The column offsets -1 and
+1 reach the neighbouring row at ``ow = 0`` and ``ow = Wh - 1``; those taps are multiplied by the
0/1 mask ``m[t] = (t % Wh != 0)`` and by ``m[t + 1]`` (``edge_mask``).  An inf or NaN in x
therefore also reaches the output pixel at the far edge of the neighbouring row, as in
``depthwise_s1.py``.  ``p`` zero rows above each image's rows give the padding at the top and
bottom, so a block of images of one channel stacks ``(H + p) * Wh`` apart and one loop covers
the block (``BLOCK`` values at most: E, O and the block's output stay in L1).

Measured (float32, 2 threads, calls alternated in one process; medians of 11, two runs; ms,
this path against the phase planes):

    16x672x14x14 5x5     1.22, 1.59    against 1.90, 2.55
    16x240x28x28 3x3     0.97, 1.19    against 2.23, 2.93
    16x240x28x28 5x5     1.55, 1.96    against 2.77, 3.71
    16x144x56x56 3x3     1.92, 2.27    against 3.31, 4.47
    16x72x56x56 5x5      1.33, 1.59    against 1.59, 2.16
    16x32x112x112 3x3    1.84, 1.77    against 1.82, 1.77
    16x960x8x8 5x5       0.66, 0.64    against 1.05, 1.04
    1x672x14x14 5x5      0.22, 0.23    against 0.21, 0.21

Hence ``applies``: even widths up to ``MAX_WIDTH`` = 56 (at 112 the two are level, as they are
at batch 1).  The backward pass keeps the phase planes (on the
14x14 5x5 layer it took 0.14-0.31x PyTorch's time in ``npmobilenet bench layers``).

Channel multiplier 1 (every MobileNet), square 3x3 and 5x5 kernels.  Tasks are (channel, block of
images); every task writes its own planes of y, so the result does not depend on the threads.
"""
import functools

import numpy as np
from numba import njit

from . import buffers
from .threads import run_chunks

MAX_WIDTH = 56     # wider maps keep the phase planes (module docstring)
BLOCK = 2048       # values per stacked buffer: E, O and the output stay in L1


def applies(x_shape, w_shape, stride, padding):
    """True for a multiplier-1, stride-2, same-padded 3x3 or 5x5 depthwise conv on a map of even
    width at most ``MAX_WIDTH``."""
    k, W = w_shape[2], x_shape[3]
    return (w_shape[0] == x_shape[1] and tuple(stride) == (2, 2) and w_shape[3] == k and k in (3, 5)
            and tuple(padding) == (k // 2, k // 2) and W % 2 == 0 and 2 <= W <= MAX_WIDTH)


def _geometry(N, H, W, k):
    """(Wh, plen, nb): half width, the stride between stacked images, images per block."""
    Wh = W // 2
    plen = (H + k // 2) * Wh
    return Wh, plen, max(1, min(N, BLOCK // plen))


@functools.lru_cache(maxsize=64)
def edge_mask(Wh, n, dtype):
    """(n + 1,): m[t] = 0 where t % Wh == 0 (the first column of a row), else 1."""
    return (np.arange(n + 1) % Wh != 0).astype(dtype)


@njit(cache=True, nogil=True, fastmath={"contract"})
def forward(x, w, y, m, k, H, W, nb, start, stop):
    """y[p] = x[p] conv w[p % C] at stride 2 for the tasks (channel, block of nb images) in
    [start, stop).  x: (N*C, H*W); w: (C, k*k); y: (N*C, Ho*Wh); m: ``edge_mask``."""
    C = w.shape[0]
    N = y.shape[0] // C
    Wh, p = W // 2, k // 2
    Ho = y.shape[1] // Wh
    plen = (H + p) * Wh
    blocks = (N + nb - 1) // nb
    # E, O: one leading value (so the offset -1 of (2) stays in the array), p zero rows, then the
    # images plen apart, each followed by p zero rows; slack for the +1 reads past the last one.
    size = 1 + p * Wh + nb * plen + 2
    E = np.zeros(size, dtype=x.dtype)
    O = np.zeros(size, dtype=x.dtype)
    acc = np.empty(nb * plen, dtype=x.dtype)
    for task in range(start, stop):
        co, n0 = task // blocks, (task % blocks) * nb
        n1 = min(N, n0 + nb)
        for n in range(n0, n1):                          # (1)
            src = x[n * C + co]
            o = 1 + p * Wh + (n - n0) * plen
            e, od = E[o:o + H * Wh], O[o:o + H * Wh]
            for q in range(H * Wh):
                e[q] = src[2 * q]
                od[q] = src[2 * q + 1]
        L = (n1 - n0 - 1) * plen + (2 * Ho - 1) * Wh     # up to the last output pixel
        wc = w[co]
        # Window i of E (and of O) is the array from i * Wh on: its element t lies (i - p) * Wh - 1
        # values from pixel t's own (its position in E is 1 + p * Wh + t), so by (2) its element
        # t + 1 + floor((j - p) / 2) is tap (i, j).
        if k == 3:    # j = 0, 1, 2: O at -1, E at 0, O at 0
            w00, w01, w02, w10, w11, w12, w20, w21, w22 = (wc[0], wc[1], wc[2], wc[3], wc[4], wc[5],
                                                           wc[6], wc[7], wc[8])
            e0, o0 = E[0:], O[0:]
            e1, o1 = E[Wh:], O[Wh:]
            e2, o2 = E[2 * Wh:], O[2 * Wh:]
            for t in range(L):
                acc[t] = (m[t] * (w00 * o0[t] + w10 * o1[t] + w20 * o2[t])
                          + (w01 * e0[t + 1] + w11 * e1[t + 1] + w21 * e2[t + 1])
                          + (w02 * o0[t + 1] + w12 * o1[t + 1] + w22 * o2[t + 1]))
        else:         # j = 0 .. 4: E at -1, O at -1, E at 0, O at 0, E at +1
            (w00, w01, w02, w03, w04, w10, w11, w12, w13, w14, w20, w21, w22, w23, w24,
             w30, w31, w32, w33, w34, w40, w41, w42, w43, w44) = (
                wc[0], wc[1], wc[2], wc[3], wc[4], wc[5], wc[6], wc[7], wc[8], wc[9], wc[10], wc[11],
                wc[12], wc[13], wc[14], wc[15], wc[16], wc[17], wc[18], wc[19], wc[20], wc[21],
                wc[22], wc[23], wc[24])
            e0, o0 = E[0:], O[0:]
            e1, o1 = E[Wh:], O[Wh:]
            e2, o2 = E[2 * Wh:], O[2 * Wh:]
            e3, o3 = E[3 * Wh:], O[3 * Wh:]
            e4, o4 = E[4 * Wh:], O[4 * Wh:]
            for t in range(L):
                left = (w00 * e0[t] + w01 * o0[t] + w10 * e1[t] + w11 * o1[t] + w20 * e2[t]
                        + w21 * o2[t] + w30 * e3[t] + w31 * o3[t] + w40 * e4[t] + w41 * o4[t])
                mid = (w02 * e0[t + 1] + w03 * o0[t + 1] + w12 * e1[t + 1] + w13 * o1[t + 1]
                       + w22 * e2[t + 1] + w23 * o2[t + 1] + w32 * e3[t + 1] + w33 * o3[t + 1]
                       + w42 * e4[t + 1] + w43 * o4[t + 1])
                right = (w04 * e0[t + 2] + w14 * e1[t + 2] + w24 * e2[t + 2] + w34 * e3[t + 2]
                         + w44 * e4[t + 2])
                acc[t] = m[t] * left + mid + m[t + 1] * right
        for n in range(n0, n1):                          # keep the even rows
            dst, a = y[n * C + co], acc[(n - n0) * plen:]
            for oh in range(Ho):
                d, s = dst[oh * Wh:oh * Wh + Wh], a[2 * oh * Wh:2 * oh * Wh + Wh]
                for q in range(Wh):
                    d[q] = s[q]


def forward_fast(x, w):
    """x (N, C, H, W), w (C, 1, k, k) -> y (N, C, ceil(H/2), W/2); ``applies`` must hold."""
    N, C, H, W = x.shape
    k = w.shape[2]
    Wh, plen, nb = _geometry(N, H, W, k)
    Ho = (H + 1) // 2
    y = buffers.empty((N, C, Ho, Wh), x.dtype)
    run_chunks(forward, C * -(-N // nb), np.ascontiguousarray(x).reshape(N * C, H * W),
               np.ascontiguousarray(w, dtype=x.dtype).reshape(C, k * k), y.reshape(N * C, Ho * Wh),
               edge_mask(Wh, nb * plen, x.dtype), k, H, W, nb, work=x.size + y.size)
    return y
