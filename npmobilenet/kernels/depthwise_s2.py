"""Stride-2 depthwise convolution: each plane split into four phase planes by whole-vector
shuffles, then every tap in one loop over the output pixels only, forward and backward.

At stride 2, tap (i, j) of output pixel (oh, ow), with "same" padding ``p = k // 2``, reads
``x[2 oh + i - p, 2 ow + j - p]``: row and column parity fixed by the tap, so each tap reads one
of the four *phase planes* of x, the values at (even, even), (even, odd), (odd, even) and
(odd, odd) positions, each the output's size ``Ho x Wo`` (``ceil(H/2) x ceil(W/2)``):

    ee[r, c] = x[2r, 2c],  eo[r, c] = x[2r, 2c + 1],  oe[r, c] = x[2r + 1, 2c],  oo[...]     (1)

(0 where the position is past the input's last row or column).  In a phase plane tap (i, j) is at
row ``oh + floor((i - p) / 2)`` and column ``ow + floor((j - p) / 2)``, both offsets in {-1, 0, 1}.
With the planes stored at the output's pitch Wo, the read is

    plane[t + dr * Wo + dc],   t = oh * Wo + ow,   dr, dc in {-1, 0, 1}                         (2)

a fixed offset from the output pixel's own position t.  So one pass over t does all k*k taps,
``LANES`` pixels at a time (below), with nothing computed for a pixel that is not in the output.
Offsets dc = -1 and +1 at the first and last column read the neighbouring row instead of the padding;
those taps are multiplied by 0/1 column masks (``column_masks``).  The rows of padding above and
below are real zeros: the images of one channel are stacked ``plen = (Ho + 1) * Wo + 1`` apart
in each phase plane, with a separator of ``Wo + 1`` zeros between them (a row, and one more for
the corner tap at dr = dc = -1, which would otherwise read the image before), and the taps run
over the block (``BLOCK`` values a plane at most, below).  The mask multiplies a column's sum of
products, so an inf or NaN in x also reaches the output pixel at the far edge of the
neighbouring row: non-finite in, non-finite out, in the same image.

The split (1) is the cost.  At 14x14 a phase row has 7 values, and a loop of 7 runs scalar: that
copy, through a table, was half the time of the 16x672x14x14 5x5 layer (``depthwise.py``, 1.2 of
2.4 ms on one thread).  Here each row is split by ``simd.deinterleave``, one vector load of 16
values and two shuffles per 8 output columns.  Whole vectors run past the row's end: the
writes into the next row, rewritten next, or into the separator, zeroed again after each image;
the reads into the next row or plane of x, except at the end of x, whose last planes are copied
into a scratch buffer with room after them first.

Measured (float32, 2 threads, the four calls alternated in one process, medians of 5 x 11, two
runs; ms): this kernel, the one before it (which split only the columns, in one vectorised loop
over the plane, and so also computed every odd row, dropped after; it took widths up to 56),
the phase planes of ``depthwise.py``, and PyTorch 2.14.1's ``F.conv2d`` on the same arrays:

                         this kernel   columns split   phase planes   PyTorch
    16x672x14x14 5x5     0.67, 0.67    0.94, 0.92      1.24, 1.28     0.73, 0.73
    16x240x28x28 3x3     0.58, 0.57    0.76, 0.82      1.53, 1.46     0.93, 0.94
    16x240x28x28 5x5     0.81, 0.75    1.11, 1.08      1.83, 1.68     1.05, 0.94
    16x144x56x56 3x3     1.06, 1.03    1.30, 1.36      2.19, 2.07     2.82, 2.69
    16x72x56x56 5x5      0.89, 0.89    1.19, 1.24      1.47, 1.39     1.36, 1.30
    16x960x8x8 5x5       0.59, 0.74    0.69, 0.91      1.03, 1.22     0.43, 0.46
    16x32x112x112 3x3    1.62, 1.97    -               1.65, 2.14     2.06, 2.93
    16x96x112x112 3x3    6.08, 6.15    -               8.47, 8.48     23.1, 24.7
    1x672x14x14 5x5      0.19, 0.22    0.20, 0.23      0.18, 0.21     0.10, 0.12

On one thread the 14x14 5x5 layer took 1.2 ms against 1.7 (columns split): 0.55 ms for the split,
which reads x (about the time of one NumPy pass that sums x), the rest for the 25 taps and the copy
out.  The split is bound by its instructions, not by memory: on 16 channels, which stay in L2, it
took as long a plane as on 672.  Writing a phase row of at most ``LANES`` values with no inner
loop, and zeroing again only the values the last row spilled into the separator, took it from 119
to 85-94 cycles a plane (the whole kernel from 269 to 222-241; one thread).  On 2 threads the layer
then took 6-14% less time (calls alternated, medians of 21): 0.59-0.61 against 0.63-0.65 ms with
this module against a copy of the old one compiled in the process, 0.58-0.70 against 0.65-0.81 with
a copy of this one against the old module (the two ways bracket the up to 8% by which a copy of the
same code can differ); at 28x28 and larger, where rows take several vectors, the two were level.
``BLOCK`` = 1024 values a phase plane (16 images at 14x14, 1 at 56x56) was measured against 600,
1536 and 2048: level at 14x14, 8x8 and 112x112, and at 28x28 and 56x56 2048 took 25-40% longer
(16x240x28x28 5x5: 1.13 against 0.77 ms; 16x144x56x56 3x3: 1.35 against 0.97): the four planes and
the block's output, 20 KB in float32, leave room in L1 for the rows of x coming in.

Writing y directly.  A loop over the whole block (what the forward was) computes its outputs into
a scratch plane (``acc``), ``plen`` apart per image, separators included, and copies each image's
pixels out to y: a copy that took 12-13% of the layer (16x672x14x14 5x5, 1 and 2 threads,
measured by leaving it out).
Where an image has at least ``LANES`` output pixels, each vector of 8 is instead computed by
``simd.phase_taps3`` / ``phase_taps5`` (the taps of (2) as explicit vector code, 25 multiply-adds
and the two masks) and stored straight into the image's plane of y, its last vector at
``Ho*Wo - LANES``, over pixels already written; the separators are not computed at all.  Images
of fewer than 8 output pixels are computed the same way into the scratch plane and copied out.
Measured (float32, 2 threads, the module before and this one both compiled as copies in one
process, calls alternated, medians of 41, two runs; ms forward, this way against the loop and
copy):

    16x672x14x14 5x5     0.560, 0.555    against 0.652, 0.642
    16x240x28x28 3x3     0.492, 0.482    against 0.552, 0.573
    16x240x28x28 5x5     0.891, 0.688    against 1.089, 0.903
    16x144x56x56 3x3     1.145, 0.996    against 1.251, 1.116
    16x72x56x56 5x5      0.794, 0.724    against 1.020, 0.922
    16x960x8x8 5x5       0.468, 0.498    against 0.551, 0.522
    16x32x112x112 3x3    1.438, 1.232    against 1.564, 1.372
    16x96x112x112 3x3    3.973, 3.627    against 4.578, 4.025
    1x672x14x14 5x5      0.148, 0.152    against 0.164, 0.144

(one thread, 16x672x14x14 5x5: 0.96 against 1.04 ms).  The sums are grouped differently from the
loop's, so the two agree to rounding, not bit for bit.

Backward.  Each tap's read in (2) is ``plane[t + off] * m(t)`` (m: its column mask, or 1), so

    dw[i, j]          = sum_t dy[t] * m(t) * plane[t + off]                                    (3)
    dplane[s]        += w[i, j] * m(s - off) * dy[s - off]                                     (4)

(3) is nine dot products in one pass for 3x3 (three passes of ten, ten and five for 5x5), over
x's phase planes split as above and dy laid out as ``acc`` is, ``plen`` apart per image.  (4)
gives the four phase planes of dx, each in one loop summing its taps (1, 2, 2 and 4 of them
for 3x3), reading dy (and dy times each mask, made once) at the taps' offsets from a buffer with
zeros before it.  ``merge_phases`` then interleaves them back into dx's planes
(``simd.interleave``, the inverse shuffle), leaving out what fell on padding.  Measured
(float32, 2 threads, calls alternated, medians of 15, two runs; ms), against the phase planes of
``depthwise.py`` used before, and PyTorch 2.14.1's backward timed in its own loop:

                         this kernel   phase planes   PyTorch
    16x672x14x14 5x5     3.29, 2.57    4.25, 3.17     15.5, 13.7
    16x240x28x28 3x3     2.25, 2.21    3.76, 3.28     11.4, 8.7
    16x240x28x28 5x5     3.43, 2.59    5.79, 4.18     18.3, 17.3
    16x144x56x56 3x3     5.86, 5.42    7.36, 6.71     27.2, 28.6
    16x72x56x56 5x5      3.17, 4.24    4.24, 5.24     30.5, 35.2
    16x96x112x112 3x3    17.3, 17.0    20.5, 20.1     73.4, 72.6
    1x672x14x14 5x5      0.46, 0.54    0.50, 0.50     0.88, 0.85

On the large maps both are bound by memory: one thread reads 16x96x112x112 (77 MB) in about
6.5 ms and writes it in about 10, and the backward reads x and dy and writes dx.

Channel multiplier 1 (every MobileNet), square 3x3 and 5x5 kernels, any map size.  Tasks are
(channel, block of images); every task writes its own planes of y or dx and its own row of the
per-block weight partials (summed in order afterwards), so the result does not depend on the
threads.
"""
import functools

import numpy as np
from numba import njit

from . import buffers
from .simd import LANES, deinterleave, interleave, phase_taps3, phase_taps5
from .threads import run_chunks

BLOCK = 1024       # values per phase plane of a block (module docstring)


def applies(x_shape, w_shape, stride, padding):
    """True for a multiplier-1, stride-2, same-padded 3x3 or 5x5 depthwise conv."""
    k = w_shape[2]
    return (w_shape[0] == x_shape[1] and tuple(stride) == (2, 2) and w_shape[3] == k and k in (3, 5)
            and tuple(padding) == (k // 2, k // 2))


def _geometry(N, H, W):
    """(Ho, Wo, plen, nb): the output's size, the stride between stacked images, images per block."""
    Ho, Wo = (H + 1) // 2, (W + 1) // 2
    plen = (Ho + 1) * Wo + 1
    return Ho, Wo, plen, max(1, min(N, BLOCK // plen))


@functools.lru_cache(maxsize=64)
def column_masks(Wo, plen, n, dtype):
    """Two (n,) arrays: at output position t, 0 where column ow = (t % plen) % Wo is the first
    (the left mask) or the last (the right mask), else 1."""
    ow = np.arange(n) % plen % Wo
    return (ow != 0).astype(dtype), (ow != Wo - 1).astype(dtype)


# A call, not inlined: inlined at its two call sites (x, and the scratch copy of x's end), it
# reference-counted the arrays it was handed, calls into Numba's runtime for every plane that
# made the whole kernel 20-25% slower.  One call per task covers all its planes.
@njit(cache=True, nogil=True)
def split_phases(src, s0, step, count, H, W, ee, eo, oe, oo, d0, plen):
    """Phase rows (1) of the ``count`` planes ``src[s0 + m*step:][:H*W]``, plane m's from
    ``d0 + m*plen`` on at pitch Wo, each followed by its separator of zeros.  Values past the
    input's last row or column are 0.  Reads run up to ``2 * LANES`` values past each plane.

    Only this function writes the phase planes, and the separators start as zeros, so after each
    plane only the values its last row's whole vectors spilled into the separator are zeroed
    again.  A phase row of at most ``LANES`` values (maps up to 16 wide) is one shuffle, written
    without an inner loop: a loop of one trip cost as much again in its set-up."""
    Ho, Wo = (H + 1) // 2, (W + 1) // 2
    nv = (Wo + LANES - 1) // LANES       # whole vectors a phase row
    spill = nv * LANES - Wo              # values the last of them writes past the row
    for m in range(count):
        s, d = s0 + m * step, d0 + m * plen
        if nv == 1:
            for r in range(H // 2):      # an even and an odd input row give phase row r
                deinterleave(src, s + 2 * r * W, ee, eo, d + r * Wo)
                deinterleave(src, s + (2 * r + 1) * W, oe, oo, d + r * Wo)
        else:
            for r in range(H // 2):      # whole vectors: reads and writes run past each row
                for c in range(0, Wo, LANES):
                    deinterleave(src, s + 2 * r * W + 2 * c, ee, eo, d + r * Wo + c)
                for c in range(0, Wo, LANES):
                    deinterleave(src, s + (2 * r + 1) * W + 2 * c, oe, oo, d + r * Wo + c)
        if H % 2:                        # no odd row below the last even row
            r = Ho - 1
            for c in range(0, Wo, LANES):
                deinterleave(src, s + 2 * r * W + 2 * c, ee, eo, d + r * Wo + c)
            for c in range(Wo):
                oe[d + r * Wo + c] = 0
                oo[d + r * Wo + c] = 0
        if W % 2:                        # each row's last pair's odd value was the next row's first
            for r in range(Ho):
                eo[d + r * Wo + Wo - 1] = 0
                oo[d + r * Wo + Wo - 1] = 0
        for q in range(d + Ho * Wo, d + Ho * Wo + spill):     # the separator: zero again
            ee[q] = eo[q] = oe[q] = oo[q] = 0


@njit(cache=True, nogil=True, inline="always")
def split_reach(H, W):
    """How far ``split_phases`` reads from the start of a plane: to its last row's last vector."""
    Wo = (W + 1) // 2
    return (H - 1) * W + 2 * LANES * ((Wo + LANES - 1) // LANES)


@njit(cache=True, nogil=True)
def _split_block(xf, c, C, H, W, n0, n1, tail, ee, eo, oe, oo, b0, plen):
    """Phase planes of channel c of images n0 .. n1 - 1, stacked ``plen`` apart from ``b0``.

    Images n0 .. n_in - 1 are split in place; the reads of the others would pass the end of x
    (its last few planes), so they are copied into ``tail`` first."""
    HW = H * W
    n_in = min(n1, max(n0, (xf.shape[0] - split_reach(H, W) - c * HW) // (C * HW) + 1))
    split_phases(xf, (n0 * C + c) * HW, C * HW, n_in - n0, H, W, ee, eo, oe, oo, b0, plen)
    if n_in < n1:
        for n in range(n_in, n1):
            for q in range(HW):
                tail[(n - n_in) * HW + q] = xf[(n * C + c) * HW + q]
        split_phases(tail, 0, HW, n1 - n_in, H, W, ee, eo, oe, oo, b0 + (n_in - n0) * plen, plen)


@njit(cache=True, nogil=True)
def forward(xf, w, y, ml, mr, k, H, W, nb, start, stop):
    """y[p] = x[p] conv w[p % C] at stride 2 for the tasks (channel, block of nb images) in
    [start, stop).  xf: x flattened (N*C*H*W,); w: (C, k*k); y: flat (N*C*Ho*Wo,); ml, mr:
    ``column_masks`` of ``nb * plen + LANES`` values."""
    C = w.shape[0]
    HW = H * W
    N = xf.shape[0] // (C * HW)
    Ho, Wo = (H + 1) // 2, (W + 1) // 2
    plen = (Ho + 1) * Wo + 1
    b0 = Wo + 1                          # where image 0's rows start: after one separator
    size = b0 + nb * plen + 2 * LANES    # slack for the whole-vector writes
    ee, eo = np.zeros(size, dtype=xf.dtype), np.zeros(size, dtype=xf.dtype)
    oe, oo = np.zeros(size, dtype=xf.dtype), np.zeros(size, dtype=xf.dtype)
    acc = np.empty(nb * plen + LANES, dtype=xf.dtype)    # small images only: vectors run past
    tail = np.zeros(nb * HW + split_reach(H, W), dtype=xf.dtype)
    blocks = (N + nb - 1) // nb
    for task in range(start, stop):
        co, n0 = task // blocks, (task % blocks) * nb
        n1 = min(N, n0 + nb)
        _split_block(xf, co, C, H, W, n0, n1, tail, ee, eo, oe, oo, b0, plen)
        if Ho * Wo >= LANES:
            _taps_into(ee, eo, oe, oo, w[co], ml, mr, y, (n0 * C + co) * Ho * Wo, C * Ho * Wo,
                       n1 - n0, plen, Ho * Wo, Wo, k)
        else:                                            # vectors wider than an image: into acc
            _taps_into(ee, eo, oe, oo, w[co], ml, mr, acc, 0, plen, n1 - n0, plen, Ho * Wo, Wo, k)
            for n in range(n0, n1):
                dst, a = y[(n * C + co) * Ho * Wo:], acc[(n - n0) * plen:]
                for q in range(Ho * Wo):
                    dst[q] = a[q]


@njit(cache=True, nogil=True, inline="always")
def _taps_into(ee, eo, oe, oo, wc, ml, mr, dst, d0, dstep, count, plen, n, Wo, k):
    """(2) for the ``count`` images of a block, image m's n = Ho*Wo pixels into
    ``dst[d0 + m*dstep:]``, a vector at a time (``simd.phase_taps*``).  An image that is not a
    whole number of vectors takes its last at ``n - LANES``, over pixels already written (the same
    values again); one of fewer than LANES pixels writes a whole vector, so dst must have room."""
    last = max(0, n - LANES)
    if k == 3:
        taps3 = (wc[0], wc[1], wc[2], wc[3], wc[4], wc[5], wc[6], wc[7], wc[8])
        for m in range(count):
            t, d = m * plen, d0 + m * dstep
            for c in range(0, last, LANES):
                phase_taps3(ee, eo, oe, oo, t + c, Wo, taps3, ml, mr, dst, d + c)
            phase_taps3(ee, eo, oe, oo, t + last, Wo, taps3, ml, mr, dst, d + last)
    else:
        taps5 = (wc[0], wc[1], wc[2], wc[3], wc[4], wc[5], wc[6], wc[7], wc[8], wc[9], wc[10], wc[11],
                 wc[12], wc[13], wc[14], wc[15], wc[16], wc[17], wc[18], wc[19], wc[20], wc[21], wc[22],
                 wc[23], wc[24])
        for m in range(count):
            t, d = m * plen, d0 + m * dstep
            for c in range(0, last, LANES):
                phase_taps5(ee, eo, oe, oo, t + c, Wo, taps5, ml, mr, dst, d + c)
            phase_taps5(ee, eo, oe, oo, t + last, Wo, taps5, ml, mr, dst, d + last)


def forward_fast(x, w):
    """x (N, C, H, W), w (C, 1, k, k) -> y (N, C, ceil(H/2), ceil(W/2)); ``applies`` must hold."""
    N, C, H, W = x.shape
    k = w.shape[2]
    Ho, Wo, plen, nb = _geometry(N, H, W)
    y = buffers.empty((N, C, Ho, Wo), x.dtype)
    ml, mr = column_masks(Wo, plen, nb * plen + LANES, x.dtype)
    run_chunks(forward, C * -(-N // nb), np.ascontiguousarray(x).reshape(-1),
               np.ascontiguousarray(w, dtype=x.dtype).reshape(C, k * k), y.reshape(-1),
               ml, mr, k, H, W, nb, work=x.size + y.size)
    return y


# ---- backward ------------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def merge_phases(ee, eo, oe, oo, d0, plen, count, H, W, dst, s0, step):
    """The inverse of ``split_phases``: planes ``dst[s0 + m*step:][:H*W]`` for m < count from the
    phase rows of plane m at ``d0 + m*plen``, pitch Wo.  A row is written by whole vectors
    (``simd.interleave``) when they stay inside its plane: their spill past the row's end lands in
    the rows below, written after it; the rows near the plane's end are written value by value."""
    Wo = (W + 1) // 2
    HW = H * W
    span = 2 * LANES * ((Wo + LANES - 1) // LANES)     # values one row's vectors write
    evens, odds = (ee, oe), (eo, oo)                    # by the row's parity
    for m in range(count):
        s, d = s0 + m * step, d0 + m * plen
        for row in range(H):
            e, o = evens[row % 2], odds[row % 2]
            at, src = s + row * W, d + (row // 2) * Wo
            if at + span <= s + HW:
                for c in range(0, Wo, LANES):
                    interleave(e, o, src + c, dst, at + 2 * c)
            else:
                for c in range(Wo):
                    dst[at + 2 * c] = e[src + c]
                    if 2 * c + 1 < W:
                        dst[at + 2 * c + 1] = o[src + c]


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _weight_sums(g, gl, gr, ee, eo, oe, oo, Wo, L, k, dw):
    """dw[i*k + j] = sum_{t < L} dy[t] * m(t) * (the value tap (i, j) reads at t in (2)): one
    block's weight gradient.  g: dy at the outputs' positions; gl, gr: g times the left and right
    column masks (the taps at dc = -1 and +1 carry them, as in the forward).  Reassociation lets
    each sum vectorise (lane-wise partial sums); the order depends on the shapes alone."""
    zero = g.dtype.type(0)
    if k == 3:
        ee1, eo1 = ee[Wo:], eo[Wo:]
        oe0, oo0 = oe[0:], oo[0:]
        oe1, oo1 = oe[Wo:], oo[Wo:]
        s00 = s01 = s02 = s10 = s11 = s12 = s20 = s21 = s22 = zero
        for t in range(L):
            a, b = gl[t], g[t]
            s00 += a * oo0[t]
            s10 += a * eo1[t]
            s20 += a * oo1[t]
            s01 += b * oe0[t + 1]
            s11 += b * ee1[t + 1]
            s21 += b * oe1[t + 1]
            s02 += b * oo0[t + 1]
            s12 += b * eo1[t + 1]
            s22 += b * oo1[t + 1]
        dw[0], dw[1], dw[2], dw[3], dw[4], dw[5], dw[6], dw[7], dw[8] = (s00, s01, s02, s10, s11, s12,
                                                                       s20, s21, s22)
        return
    ee0, ee1, ee2 = ee[0:], ee[Wo:], ee[2 * Wo:]
    eo0, eo1, eo2 = eo[0:], eo[Wo:], eo[2 * Wo:]
    oe0, oe1 = oe[0:], oe[Wo:]
    oo0, oo1 = oo[0:], oo[Wo:]
    # three passes, the forward's three groups (25 running sums at once would not fit the registers)
    s00 = s01 = s10 = s11 = s20 = s21 = s30 = s31 = s40 = s41 = zero
    for t in range(L):
        a = gl[t]
        s00 += a * ee0[t]
        s01 += a * eo0[t]
        s10 += a * oe0[t]
        s11 += a * oo0[t]
        s20 += a * ee1[t]
        s21 += a * eo1[t]
        s30 += a * oe1[t]
        s31 += a * oo1[t]
        s40 += a * ee2[t]
        s41 += a * eo2[t]
    s02 = s03 = s12 = s13 = s22 = s23 = s32 = s33 = s42 = s43 = zero
    for t in range(L):
        b = g[t]
        s02 += b * ee0[t + 1]
        s03 += b * eo0[t + 1]
        s12 += b * oe0[t + 1]
        s13 += b * oo0[t + 1]
        s22 += b * ee1[t + 1]
        s23 += b * eo1[t + 1]
        s32 += b * oe1[t + 1]
        s33 += b * oo1[t + 1]
        s42 += b * ee2[t + 1]
        s43 += b * eo2[t + 1]
    s04 = s14 = s24 = s34 = s44 = zero
    for t in range(L):
        e = gr[t]
        s04 += e * ee0[t + 2]
        s14 += e * oe0[t + 2]
        s24 += e * ee1[t + 2]
        s34 += e * oe1[t + 2]
        s44 += e * ee2[t + 2]
    dw[0], dw[1], dw[2], dw[3], dw[4] = s00, s01, s02, s03, s04
    dw[5], dw[6], dw[7], dw[8], dw[9] = s10, s11, s12, s13, s14
    dw[10], dw[11], dw[12], dw[13], dw[14] = s20, s21, s22, s23, s24
    dw[15], dw[16], dw[17], dw[18], dw[19] = s30, s31, s32, s33, s34
    dw[20], dw[21], dw[22], dw[23], dw[24] = s40, s41, s42, s43, s44


@njit(cache=True, nogil=True, fastmath={"contract"})
def _input_phases(G, GL, GR, gb, wc, k, Wo, S, dee, deo, doe, doo):
    """The adjoint of (2): tap (i, j) read ``plane[t + off]`` times m(t), so it adds
    ``w[i, j] * m(s - off) * dy[s - off]`` to the phase plane of dx at s.  Here for every s < S in
    one loop, each plane summing its taps; G, GL, GR hold dy, and dy times the left and right
    masks, from ``gb`` on, with zeros before (``gb`` >= the largest offset) and between images.
    Positions of dx's padding get values too; ``merge_phases`` leaves them out."""
    if k == 3:
        w00, w01, w02, w10, w11, w12, w20, w21, w22 = (wc[0], wc[1], wc[2], wc[3], wc[4], wc[5],
                                                       wc[6], wc[7], wc[8])
        l0, lW = GL[gb:], GL[gb - Wo:]                  # a_d[s] = a[s - d]: dy read back by offset d
        g1, gW1 = G[gb - 1:], G[gb - Wo - 1:]
        for s in range(S):
            doo[s] = w00 * l0[s] + w20 * lW[s] + w02 * g1[s] + w22 * gW1[s]
            deo[s] = w10 * lW[s] + w12 * gW1[s]
            doe[s] = w01 * g1[s] + w21 * gW1[s]
            dee[s] = w11 * gW1[s]
        return
    (w00, w01, w02, w03, w04, w10, w11, w12, w13, w14, w20, w21, w22, w23, w24,
     w30, w31, w32, w33, w34, w40, w41, w42, w43, w44) = (
        wc[0], wc[1], wc[2], wc[3], wc[4], wc[5], wc[6], wc[7], wc[8], wc[9], wc[10], wc[11],
        wc[12], wc[13], wc[14], wc[15], wc[16], wc[17], wc[18], wc[19], wc[20], wc[21],
        wc[22], wc[23], wc[24])
    l0, lW, l2W = GL[gb:], GL[gb - Wo:], GL[gb - 2 * Wo:]
    g1, gW1, g2W1 = G[gb - 1:], G[gb - Wo - 1:], G[gb - 2 * Wo - 1:]
    r2, rW2, r2W2 = GR[gb - 2:], GR[gb - Wo - 2:], GR[gb - 2 * Wo - 2:]
    for s in range(S):
        dee[s] = (w00 * l0[s] + w20 * lW[s] + w40 * l2W[s] + w02 * g1[s] + w22 * gW1[s]
                  + w42 * g2W1[s] + w04 * r2[s] + w24 * rW2[s] + w44 * r2W2[s])
        deo[s] = w01 * l0[s] + w21 * lW[s] + w41 * l2W[s] + w03 * g1[s] + w23 * gW1[s] + w43 * g2W1[s]
        doe[s] = w10 * l0[s] + w30 * lW[s] + w12 * g1[s] + w32 * gW1[s] + w14 * r2[s] + w34 * rW2[s]
        doo[s] = w11 * l0[s] + w31 * lW[s] + w13 * g1[s] + w33 * gW1[s]


@njit(cache=True, nogil=True)
def backward(xf, w, dyf, dxf, dw_b, ml, mr, k, H, W, nb, start, stop):
    """dx and the per-block weight gradients of ``forward`` for the tasks (channel, block of nb
    images) in [start, stop).  xf, dxf: x and dx flattened (N*C*H*W,); w: (C, k*k); dyf: dy
    flattened (N*C*Ho*Wo,); dw_b: (blocks, C, k*k), block b's share of dw."""
    C = w.shape[0]
    HW = H * W
    N = xf.shape[0] // (C * HW)
    Ho, Wo = (H + 1) // 2, (W + 1) // 2
    plen = (Ho + 1) * Wo + 1
    b0 = Wo + 1
    size = b0 + nb * plen + 2 * LANES
    ee, eo = np.zeros(size, dtype=xf.dtype), np.zeros(size, dtype=xf.dtype)
    oe, oo = np.zeros(size, dtype=xf.dtype), np.zeros(size, dtype=xf.dtype)
    dee, deo = np.zeros(size, dtype=xf.dtype), np.zeros(size, dtype=xf.dtype)
    doe, doo = np.zeros(size, dtype=xf.dtype), np.zeros(size, dtype=xf.dtype)
    gb = 2 * Wo + 2                      # zeros before dy's first value: its largest offset
    G = np.zeros(gb + nb * plen, dtype=xf.dtype)     # dy at the outputs' positions, as acc
    GL, GR = np.zeros(gb + nb * plen, dtype=xf.dtype), np.zeros(gb + nb * plen, dtype=xf.dtype)
    tail = np.zeros(nb * HW + split_reach(H, W), dtype=xf.dtype)
    blocks = (N + nb - 1) // nb
    for task in range(start, stop):
        c, blk = task // blocks, task % blocks
        n0 = blk * nb
        n1 = min(N, n0 + nb)
        _split_block(xf, c, C, H, W, n0, n1, tail, ee, eo, oe, oo, b0, plen)
        for n in range(n0, n1):          # image n's dy from (n - n0) * plen; the gaps stay zero
            d, src = gb + (n - n0) * plen, (n * C + c) * Ho * Wo
            for q in range(Ho * Wo):
                G[d + q] = dyf[src + q]
        L = (n1 - n0 - 1) * plen + Ho * Wo
        for t in range(gb, gb + L):
            GL[t] = ml[t - gb] * G[t]
        if k == 5:                       # only the 5x5 kernel has taps at dc = +1
            for t in range(gb, gb + L):
                GR[t] = mr[t - gb] * G[t]
        _weight_sums(G[gb:], GL[gb:], GR[gb:], ee, eo, oe, oo, Wo, L, k, dw_b[blk, c])
        _input_phases(G, GL, GR, gb, w[c], k, Wo, b0 + L, dee, deo, doe, doo)
        merge_phases(dee, deo, doe, doo, b0, plen, n1 - n0, H, W, dxf, (n0 * C + c) * HW, C * HW)


def backward_fast(dy, x, w):
    """Returns (dx, dw) with the shapes of x and w; ``applies`` must hold."""
    N, C, H, W = x.shape
    k = w.shape[2]
    Ho, Wo, plen, nb = _geometry(N, H, W)
    blocks = -(-N // nb)
    dx = buffers.empty(x.shape, x.dtype)
    dw_b = np.empty((blocks, C, k * k), dtype=x.dtype)
    ml, mr = column_masks(Wo, plen, nb * plen, x.dtype)
    run_chunks(backward, C * blocks, np.ascontiguousarray(x).reshape(-1),
               np.ascontiguousarray(w, dtype=x.dtype).reshape(C, k * k), np.ascontiguousarray(dy).reshape(-1),
               dx.reshape(-1), dw_b, ml, mr, k, H, W, nb, work=2 * x.size + dy.size)
    return dx, dw_b.sum(axis=0).reshape(w.shape)
