"""The stem: a full 3x3, stride-2 convolution of an image with few channels, as direct loops.

Every MobileNet starts with a standard (not depthwise) 3x3 convolution at stride 2 on the image:
C = 3 input channels, 16 to 32 output channels.  Through im2col (``im2col.py``) that is a copy
of the image nine times over and a matrix product whose inner dimension is only ``C*9 = 27``,
a shape BLAS runs far from its best.  Here it is computed straight from the input's phase planes,
as the stride-2 depthwise kernel reads them (``depthwise_s2.py``: each input plane split into its
(even, even), (even, odd), (odd, even), (odd, odd) planes by vector shuffles, kept at the
output's pitch Wo).  Tap (i, j) of output pixel ``t = oh*Wo + ow`` reads input row 2 oh + i - 1
and column 2 ow + j - 1, so with ``P_{c,i,j}`` the phase plane of channel c with that row's and
that column's parity,

    y[o, t] = sum_c sum_{i,j} m_j[t] * w[o, c, i, j] * P_{c,i,j}[t + dr_i*Wo + dc_j]         (1)

    dr = dc = (-1, 0, 0) for i, j = 0, 1, 2;   m_0 = the left-column mask, m_1 = m_2 = 1

``m_0`` (``depthwise_s2.column_masks``) zeroes the taps of column j = 0 at ow = 0, which would
read the end of the row above instead of padding.  Per output channel, (1) is C loops over the
output pixels, each adding the nine taps of one input channel onto the last (the first writes).
Each loop does two output channels, sharing its nine reads of x between them, and runs on a band
of ``BAND`` output pixels: the band's phase rows (about 30 KB for C = 3 at 224x224) and the two
output rows stay in L1 cache while all the output channels pass over them.

These loops are bound by their arithmetic: 9 multiply-adds per output value and input channel,
plus the mask and the sum, 33 floating-point operations per 8 values for C = 3.  On one thread,
16x3x224x224 took 3.4 ms with 16 output channels and 6.1 ms with 32: 0.8 ns an output value, and
0.65 ms for the split of the image into phase planes.  512-bit vectors were no faster.  The
loops' cost grows with the output channels, where the product's grows slowly, and with the
input channels, where the product's improves: so this path is taken for ``C <= MAX_CHANNELS`` and
an even number of output channels (every MobileNet stem); anything else stays on im2col.

Measured (float32, 2 threads, the two calls alternated in one process, medians of 21; three runs
on a shared machine; ms, this kernel against im2col + BLAS):

    16x3x224x224 -> 16     2.29, 3.63, 2.57    against 3.07, 4.58, 3.74
    16x3x224x224 -> 32     4.13, 8.28, 4.59    against 4.48, 8.44, 5.47
    16x1x224x224 -> 16     0.83, 1.38, 1.14    against 1.25, 1.97, 1.81
    16x4x224x224 -> 16     2.62, 3.96, 4.28    against 3.37, 5.34, 5.81
    16x8x112x112 -> 32     2.45, 3.74, 3.58    against 2.23, 4.36, 4.30   (C = 8: no clear gain)
    1x3x224x224 -> 16      0.22, 0.35, 0.34    against 0.42, 0.43, 0.44
    1x3x224x224 -> 32      0.35, 0.54, 0.56    against 0.60, 0.61, 0.61

The backward pass stays on im2col: there dW is a product over the columns, and the stem needs no
dx.  Tasks are (image, group of output channels); there are several groups only when there are
fewer images than threads.  Every output value is computed by the same operations whatever the
tasks, so the result does not depend on the threads.
"""
import numpy as np
from numba import njit

from . import buffers
from .depthwise_s2 import column_masks, split_phases, split_reach
from .simd import LANES
from .threads import num_threads, run_chunks, run_parts

MAX_CHANNELS = 4     # input channels (module docstring: at 8 no clear gain over the product)
BAND = 512           # output pixels per band, rounded down to whole rows (at least one)


def applies(x_shape, w_shape, stride, padding, groups):
    """True for a standard 3x3, stride-2, padding-1 conv with at most ``MAX_CHANNELS`` input
    channels and an even number of output channels: where it was measured faster."""
    return (groups == 1 and x_shape[1] <= MAX_CHANNELS and w_shape[0] % 2 == 0
            and tuple(w_shape[2:]) == (3, 3) and tuple(stride) == (2, 2) and tuple(padding) == (1, 1))


# Inlined (Numba IR): one call site, so its array arguments cost no reference counting per call,
# and the loops take the caller's fastmath flags (fused multiply-adds).
@njit(cache=True, nogil=True, inline="always")
def _two_channels(y0, y1, a, b, ee, eo, oe, oo, base, Wo, ml, n, first):
    """The nine taps of one input channel (phase planes from ``base``) for two output channels
    (weights a, b: (9,)), on the n output pixels of y0 and y1: written if ``first``, else added."""
    ee1, eo1 = ee[base + Wo:], eo[base + Wo:]          # window d: the plane from d*Wo on, as (2)
    oe0, oo0 = oe[base:], oo[base:]                     # of depthwise_s2: element t + 1 + dc is
    oe1, oo1 = oe[base + Wo:], oo[base + Wo:]           # (row oh + d - 1, column ow + dc)
    a00, a01, a02, a10, a11, a12, a20, a21, a22 = a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8]
    b00, b01, b02, b10, b11, b12, b20, b21, b22 = b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8]
    if first:
        for t in range(n):
            y0[t] = (ml[t] * (a00 * oo0[t] + a10 * eo1[t] + a20 * oo1[t])
                     + (a01 * oe0[t + 1] + a11 * ee1[t + 1] + a21 * oe1[t + 1]
                        + a02 * oo0[t + 1] + a12 * eo1[t + 1] + a22 * oo1[t + 1]))
            y1[t] = (ml[t] * (b00 * oo0[t] + b10 * eo1[t] + b20 * oo1[t])
                     + (b01 * oe0[t + 1] + b11 * ee1[t + 1] + b21 * oe1[t + 1]
                        + b02 * oo0[t + 1] + b12 * eo1[t + 1] + b22 * oo1[t + 1]))
    else:
        for t in range(n):
            y0[t] += (ml[t] * (a00 * oo0[t] + a10 * eo1[t] + a20 * oo1[t])
                      + (a01 * oe0[t + 1] + a11 * ee1[t + 1] + a21 * oe1[t + 1]
                         + a02 * oo0[t + 1] + a12 * eo1[t + 1] + a22 * oo1[t + 1]))
            y1[t] += (ml[t] * (b00 * oo0[t] + b10 * eo1[t] + b20 * oo1[t])
                      + (b01 * oe0[t + 1] + b11 * ee1[t + 1] + b21 * oe1[t + 1]
                         + b02 * oo0[t + 1] + b12 * eo1[t + 1] + b22 * oo1[t + 1]))


@njit(cache=True, nogil=True, fastmath={"contract"})
def forward(xf, w, y, ml, H, W, groups, start, stop):
    """y[n, o] for the tasks (image n, group g of output channels), ``task = n*groups + g``, in
    [start, stop).  xf: x flattened (N*C*H*W,); w: (O, C, 9); y: (N, O, Ho*Wo); ml: the left
    column mask of ``depthwise_s2.column_masks`` (at least Ho*Wo long)."""
    O, C = w.shape[0], w.shape[1]
    Ho, Wo = (H + 1) // 2, (W + 1) // 2
    HW, L = H * W, Ho * Wo
    plen = (Ho + 1) * Wo + 1             # the input channels' phase planes, stacked as
    b0 = Wo + 1                          # depthwise_s2 stacks images: zero rows between them
    size = b0 + C * plen + 2 * LANES
    ee, eo = np.zeros(size, dtype=xf.dtype), np.zeros(size, dtype=xf.dtype)
    oe, oo = np.zeros(size, dtype=xf.dtype), np.zeros(size, dtype=xf.dtype)
    reach = split_reach(H, W)
    band = max(1, BAND // Wo) * Wo
    per = 2 * -(-O // (2 * groups))      # output channels per group, even
    for task in range(start, stop):
        n, g = task // groups, task % groups
        s0 = n * C * HW
        if s0 + (C - 1) * HW + reach <= xf.shape[0]:
            split_phases(xf, s0, HW, C, H, W, ee, eo, oe, oo, b0, plen)
        else:                            # the reads would pass the end of x: split a copy
            tail = np.zeros(C * HW + reach, dtype=xf.dtype)
            for q in range(C * HW):
                tail[q] = xf[s0 + q]
            split_phases(tail, 0, HW, C, H, W, ee, eo, oe, oo, b0, plen)
        for t0 in range(0, L, band):
            t1 = min(L, t0 + band)
            mlb = ml[t0:]
            for o in range(g * per, min(O, (g + 1) * per), 2):
                y0, y1 = y[n, o, t0:t1], y[n, o + 1, t0:t1]
                for c in range(C):
                    _two_channels(y0, y1, w[o, c], w[o + 1, c], ee, eo, oe, oo, c * plen + t0, Wo,
                                  mlb, t1 - t0, c == 0)


def forward_fast(x, w, epilogue=None):
    """x (N, C, H, W), w (O, C, 3, 3) -> y (N, O, ceil(H/2), ceil(W/2)); ``applies`` must hold.
    ``epilogue(y, lo, hi)``, if given, is applied to images lo..hi of y as soon as they are done
    (by the thread that computed them, while they are in its cache, when there are at least two
    images a thread; else once, on the whole batch)."""
    N, C, H, W = x.shape
    O = w.shape[0]
    Ho, Wo = (H + 1) // 2, (W + 1) // 2
    y = buffers.empty((N, O, Ho, Wo), x.dtype)
    threads = num_threads()
    groups = max(1, min(O // 2, -(-threads // max(N, 1))))
    args = (np.ascontiguousarray(x).reshape(-1), np.ascontiguousarray(w, dtype=x.dtype).reshape(O, C, 9),
            y.reshape(N, O, Ho * Wo), column_masks(Wo, (Ho + 1) * Wo + 1, Ho * Wo, x.dtype)[0], H, W, groups)
    if epilogue is None or N < 2 * threads:
        run_chunks(forward, N * groups, *args, work=x.size + y.size)
        if epilogue is not None:
            epilogue(y, 0, N)
        return y
    parts = min(N, 4 * threads)
    bounds = [N * t // parts for t in range(parts + 1)]

    def part(t):
        forward(*args, bounds[t], bounds[t + 1])       # groups == 1 here: task n is image n
        epilogue(y, bounds[t], bounds[t + 1])
    run_parts(part, parts)
    return y
