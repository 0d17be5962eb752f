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
this path, when it still copied whole planes and took views, against the phase planes):

    16x72x56x56 3x3      1.2-1.7 / 2.5-3.6    against 2.0-3.0 / 4.5-6.5
    16x32x112x112 3x3    2.0-2.5 / 5.0-6.2    against 4.0-5.2 / 10.1-12.6
    16x240x28x28 3x3     1.5-1.9 / 2.8-3.7    against 2.1-2.6 / 4.0-5.7
    16x48x56x56 5x5      2.0-2.1 / 5.0-5.1    against 2.2-2.3 / 5.4-5.7
    16x120x28x28 5x5     1.8-2.3 / 3.7-4.7    against 1.8-2.3 / 4.2-6.0
    16x240x20x20 5x5     2.5-3.1 / 4.9-6.1    against 2.1-2.4 / 4.7-6.1
    16x240x14x14 3x3     0.9-1.0 / 1.6-1.8    against 0.7-0.8 / 1.3-1.4

The loops index flat arrays by unsigned offsets, not views (the comment above ``_edges``): a
call on a short stretch then costs 14 cycles before any work, where it cost 155.  That made the
kernel faster, most where the planes are small (same process, calls alternated, 2 threads,
medians of 15, two runs; ms forward / backward, flat offsets against views):

    16x72x56x56 3x3      0.98, 0.93 / 2.01, 1.85    against 1.05, 0.99 / 2.06, 1.89
    16x32x112x112 3x3    4.02, 4.04 / 3.34, 3.56    against 4.02, 4.07 / 3.31, 3.62
    16x240x28x28 3x3     0.86, 0.89 / 1.58, 1.64    against 1.07, 1.06 / 1.87, 1.92
    16x48x56x56 5x5      1.09, 1.09 / 3.07, 3.39    against 1.46, 1.42 / 3.81, 3.41
    16x120x28x28 5x5     0.79, 0.82 / 1.85, 1.87    against 1.27, 1.26 / 2.24, 2.33
    16x240x24x24 5x5     1.23, 1.27 / 2.66, 2.64    against 2.10, 2.03 / 3.69, 3.55

(this package's module against a copy of the old one compiled in the process, which alone can
differ by up to 8% on the same code; with both sides compiled as copies, medians of 41, two runs,
the 56x56 layer twice in each: 16x72x56x56 3x3 0.87-0.95 against 0.93-1.02 forward, 1.83-2.03
against 1.95-2.15 backward; 16x240x28x28 3x3 0.99-1.00 against 1.22 forward; 16x120x28x28 5x5
0.95-0.96 against 1.46-1.47), and moved the smallest map it is taken on, ``MIN_PIXELS``, from 24x24
down to 12x12.  Against the phase planes (the path below it), measured as the first table:

    16x240x20x20 5x5     1.22, 1.50 / 2.64, 3.36    against 2.01, 2.42 / 4.67, 5.63
    16x240x14x14 3x3     0.68, 0.81 / 1.06, 1.29    against 0.75, 0.94 / 1.40, 1.68
    16x672x14x14 5x5     2.44, 2.33 / 4.61, 4.39    against 3.03, 2.97 / 7.28, 6.62
    16x480x12x12 3x3     1.02, 1.04 / 1.63, 1.64    against 1.00, 1.24 / 1.95, 1.80
    16x480x12x12 5x5     1.35, 1.34 / 2.65, 2.45    against 1.88, 1.80 / 3.94, 3.96
    16x480x10x10 3x3     1.49, 0.88 / 2.23, 1.48    against 0.80, 0.80 / 1.44, 1.40
    16x576x7x7 3x3       0.97, 0.99 / 1.55, 1.48    against 0.65, 0.62 / 1.63, 1.35

Below 12x12 the phase planes, which stack several images into one loop, are as fast or faster.

Steps of several rows (3x3 only, ``_plane_steps``).  The flat loop (2) loads nine input vectors
for every vector of outputs and multiplies two of its three column sums by masks.  Output rows r
and r + 1 share two of their three input rows, and a row's inner columns need no mask.  So on maps
at least ``MIN_STEP_WIDTH`` wide, rows 2 to H - 3 are written ``simd.ROWS`` = 4 rows by ``LANES``
columns at a time (``simd.stencil3x3``): 18 vector loads for 4 vectors of outputs, and the masks
only in a row's first and last step.  The sums are grouped differently from the flat loop's, so
the two agree to rounding, not bit for bit.  Measured (float32, 2 threads, the module before and
this one both compiled as copies in one process, calls alternated, medians of 41, two runs; ms
forward / backward; the backward's dx is the same pass, its dw sums unchanged):

    16x72x56x56 3x3      0.67, 0.68 / 1.65, 1.66    against 0.85, 0.81 / 1.82, 1.71
    16x144x56x56 3x3     1.26, 1.33 / 3.49, 3.47    against 1.42, 1.80 / 3.83, 3.59
    16x32x112x112 3x3    1.00, 1.35 / 2.84, 3.81    against 1.35, 1.93 / 3.12, 4.11
    16x120x40x40 3x3     0.87, 0.80 / 1.48, 1.48    against 2.05, 0.95 / 1.60, 1.66
    1x72x56x56 3x3       0.061, 0.078 / 0.13, 0.18  against 0.074, 0.088 / 0.14, 0.18
    16x240x28x28 3x3     0.86, 0.95 / 1.60, 1.83    against 0.87, 0.95 / 1.57, 1.82  (flat loop both)

A 28-wide row is 3.5 steps, its last step half over columns already written; there the steps took
8-14% longer than the flat loop (16x240x28x28 forward, a first version), hence ``MIN_STEP_WIDTH``
= 32.  ROWS = 3 measured as 4, ROWS = 2 slower at 56x56 (0.83 of the flat loop's time against
0.78).  For 5x5, steps of 1 to 3 rows were no faster than the flat loop (16x48x56x56: 1.04-1.05
of its time, and slower on smaller maps), so 5x5 keeps it.

Channel multiplier 1 (every MobileNet) and square 3x3 and 5x5 kernels (the loops are written out
per kernel size); anything else takes the phase-plane path.  Tasks are whole planes; every task
writes its own plane of y / dx and its own row of per-image weight partials (summed over the
images in order afterwards), so results do not depend on the thread count.
"""
import functools

import numpy as np
from numba import njit, uint64

from . import buffers
from .simd import LANES, ROWS, stencil3x3, stencil3x3_inner
from .threads import run_chunks

MIN_PIXELS = 12 * 12    # smaller maps take the phase-plane path (module docstring)
MIN_STEP_WIDTH = 32     # narrower 3x3 maps take the flat loop alone (module docstring)


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


# Every index below is an unsigned offset into a flat array, where the loops once took views
# (``a[o:o + n]``) of a plane and its windows.  Each view costs two updates of the array's
# reference count, and a signed index a test for wrap-around that stops the loop vectorising; an
# unsigned one needs neither.  A call on a short stretch cost 155 cycles before it did any work
# (the views of the plane, its nine windows and the masks), and 14 this way.
@njit(cache=True, nogil=True)
def _edges(src, so, top, bot, o, HW):
    """Copy the first and last ``2*o`` values of the plane ``src[so:so + HW]`` into ``top[o:]`` and
    ``bot[:2*o]``.

    ``o = ph*W + pw`` is the offset of the centre tap in (1).  Only the first and last o output
    pixels have windows that reach past the plane's first or last row; these two strips, with
    ``top[:o]`` and ``bot[2*o:]`` left at zero, are padded copies of the plane's ends on which (1)
    holds for them."""
    u = uint64
    so, o, last = u(so), u(o), u(so) + u(HW) - u(2 * o)
    for q in range(u(0), u(2) * o):
        top[o + q] = src[so + q]
        bot[q] = src[last + q]


# The tap loops are calls, not inlined: Numba inlines at the level of its own IR, so the loop would
# take the caller's fastmath flags (none: no fused multiply-adds); measured 1.4-2x slower.
@njit(cache=True, nogil=True, fastmath={"contract"})
def _taps3(s, so, wc, dst, do, masks, mo, n, W):
    """(2) for a 3x3 kernel on a stretch of n output pixels: for q < n,
    ``dst[do + q] = sum_j m_j[mo + q] * sum_i w[i, j] * s[so + q + i*W + j]``; wc: (9,) taps."""
    u = uint64
    so, do, mo, n, W = u(so), u(do), u(mo), u(n), u(W)
    a, b, c = so, so + W, so + u(2) * W              # tap rows 0, 1, 2
    w00, w01, w02, w10, w11, w12, w20, w21, w22 = (wc[0], wc[1], wc[2], wc[3], wc[4], wc[5],
                                                   wc[6], wc[7], wc[8])
    for q in range(u(0), n):
        dst[do + q] = (masks[0, mo + q] * (w00 * s[a + q] + w10 * s[b + q] + w20 * s[c + q])
                       + (w01 * s[a + q + u(1)] + w11 * s[b + q + u(1)] + w21 * s[c + q + u(1)])
                       + masks[2, mo + q] * (w02 * s[a + q + u(2)] + w12 * s[b + q + u(2)]
                                             + w22 * s[c + q + u(2)]))


@njit(cache=True, nogil=True, fastmath={"contract"})
def _taps5(s, so, wc, dst, do, masks, mo, n, W):
    """(2) for a 5x5 kernel, as ``_taps3``; wc: (25,) taps."""
    u = uint64
    so, do, mo, n, W = u(so), u(do), u(mo), u(n), u(W)
    a, b, c, d, e = so, so + W, so + u(2) * W, so + u(3) * W, so + u(4) * W     # tap rows 0 .. 4
    for q in range(u(0), n):
        a0, b0, c0, d0, e0 = a + q, b + q, c + q, d + q, e + q
        dst[do + q] = (
            masks[0, mo + q] * (wc[0] * s[a0] + wc[5] * s[b0] + wc[10] * s[c0] + wc[15] * s[d0]
                                + wc[20] * s[e0])
            + masks[1, mo + q] * (wc[1] * s[a0 + u(1)] + wc[6] * s[b0 + u(1)] + wc[11] * s[c0 + u(1)]
                                  + wc[16] * s[d0 + u(1)] + wc[21] * s[e0 + u(1)])
            + (wc[2] * s[a0 + u(2)] + wc[7] * s[b0 + u(2)] + wc[12] * s[c0 + u(2)] + wc[17] * s[d0 + u(2)]
               + wc[22] * s[e0 + u(2)])
            + masks[3, mo + q] * (wc[3] * s[a0 + u(3)] + wc[8] * s[b0 + u(3)] + wc[13] * s[c0 + u(3)]
                                  + wc[18] * s[d0 + u(3)] + wc[23] * s[e0 + u(3)])
            + masks[4, mo + q] * (wc[4] * s[a0 + u(4)] + wc[9] * s[b0 + u(4)] + wc[14] * s[c0 + u(4)]
                                  + wc[19] * s[d0 + u(4)] + wc[24] * s[e0 + u(4)]))


@njit(cache=True, nogil=True, inline="always")
def _taps(s, so, wc, dst, do, masks, mo, n, kw, W):
    """(2) on the n output pixels from ``dst[do]`` on, for a 3x3 or a 5x5 kernel."""
    if kw == 3:
        _taps3(s, so, wc, dst, do, masks, mo, n, W)
    else:
        _taps5(s, so, wc, dst, do, masks, mo, n, W)


@njit(cache=True, nogil=True, inline="always")
def _plane(src, p, wc, dst, masks, kh, kw, H, W, top, bot):
    """Plane p of dst = plane p of src conv wc; src, dst: flat (N*C*H*W,); wc: (kh*kw,) taps.

    The first and last ``o = ph*W + pw`` output pixels run on the padded copies ``top`` and
    ``bot`` of the plane's ends (``_edges``; each ``3*o`` values); all the others read src in
    place: tap (i, j) of pixel q is ``src[p*H*W + q - o + i*W + j]``, inside the plane."""
    HW = H * W
    base = p * HW
    o = (kh // 2) * W + kw // 2
    _edges(src, base, top, bot, o, HW)
    _taps(top, 0, wc, dst, base, masks, 0, o, kw, W)
    _taps(src, base, wc, dst, base + o, masks, o, HW - 2 * o, kw, W)
    _taps(bot, 0, wc, dst, base + HW - o, masks, HW - o, o, kw, W)


@njit(cache=True, nogil=True)
def steps_apply(kh, kw, H, W):
    """True where ``_plane_steps`` is used: 3x3, maps at least ``MIN_STEP_WIDTH`` wide and with at
    least one block of ``ROWS`` rows between rows 2 and H - 3."""
    return kh == kw == 3 and W >= MIN_STEP_WIDTH and H - 4 >= ROWS


@njit(cache=True, nogil=True, inline="always")
def _plane_steps(src, p, wc, dst, masks, mflat, H, W, top, bot):
    """``_plane`` for a 3x3 kernel (``steps_apply`` must hold), rows 2 to H - 3 in steps of ``ROWS``
    rows by ``LANES`` columns (``simd.stencil3x3``); mflat: masks.reshape(-1).

    Rows 2 to H - 3 have every window inside the plane, and a step over whole rows never crosses
    one except into the masked taps of a row's first and last column, so only a row's first and
    last step need the masks.  A row that is not a whole number of steps takes its last step at
    column W - LANES, over columns already written: the same values again.  The pixels before and
    after the blocks, the first and last ``W + 1`` included, take the flat loop as in ``_plane``."""
    HW = H * W
    base = p * HW
    o = W + 1
    _edges(src, base, top, bot, o, HW)
    _taps3(top, 0, wc, dst, base, masks, 0, o, W)
    _taps3(src, base, wc, dst, base + o, masks, o, W - 1, W)              # the rest of row 1
    taps = (wc[0], wc[1], wc[2], wc[3], wc[4], wc[5], wc[6], wc[7], wc[8])
    blocks, last = (H - 4) // ROWS, W - LANES
    for b in range(blocks):
        q = (2 + b * ROWS) * W         # the block's first pixel; its windows start a row and a column before
        stencil3x3(src, base + q - o, W, taps, mflat, q, HW, dst, base + q)
        for c in range(LANES, last, LANES):
            stencil3x3_inner(src, base + q + c - o, W, taps, mflat, q + c, HW, dst, base + q + c)
        stencil3x3(src, base + q + last - o, W, taps, mflat, q + last, HW, dst, base + q + last)
    done = (2 + blocks * ROWS) * W
    _taps3(src, base + done - o, wc, dst, base + done, masks, done, HW - o - done, W)
    _taps3(bot, 0, wc, dst, base + HW - o, masks, HW - o, o, W)


@njit(cache=True, nogil=True)
def forward(x, w, y, masks, kh, kw, H, W, start, stop):
    """y[p] = x[p] conv w[p % C] for planes start <= p < stop.  x, y: flat (N*C*H*W,); w: (C, kh*kw)."""
    C = w.shape[0]
    o = (kh // 2) * W + kw // 2
    top, bot = np.zeros(3 * o, dtype=x.dtype), np.zeros(3 * o, dtype=x.dtype)
    if steps_apply(kh, kw, H, W):
        mflat = masks.reshape(-1)
        for p in range(start, stop):
            _plane_steps(x, p, w[p % C], y, masks, mflat, H, W, top, bot)
        return
    for p in range(start, stop):
        _plane(x, p, w[p % C], y, masks, kh, kw, H, W, top, bot)


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _weight_grad(x, g, base, dwp, masks, kh, kw, H, W, pad):
    """dwp[i*kw + j] = sum_q g[base + q] * m_j[q] * pad[q + i*W + j]: one image plane's dw.

    ``pad``: scratch of ``(H + 2*ph)*W + 2*pw`` values, zero outside ``[pw + ph*W, pw + ph*W + H*W)``,
    into which the plane ``x[base:base + H*W]`` is copied first.  Reassociation lets each sum
    vectorise (lane-wise partial sums); it changes only the order within one plane's sum, which
    depends on the shapes alone, never on the threads."""
    u = uint64
    HW, base, Wu = u(H * W), u(base), u(W)
    inner = u(kw // 2 + (kh // 2) * W)
    for q in range(u(0), HW):
        pad[inner + q] = x[base + q]
    zero = x.dtype.type(0)       # sums in x's dtype (a float64 sum of float32 products is 2.5x slower)
    if kw == 3:                  # all nine sums in one pass: g and the masks read once
        b, c = Wu, u(2) * Wu     # tap rows 1 and 2 (row 0 at 0)
        t00 = t01 = t02 = t10 = t11 = t12 = t20 = t21 = t22 = zero
        for q in range(u(0), HW):
            gq = g[base + q]
            g0, g2 = gq * masks[0, q], gq * masks[2, q]
            t00 += g0 * pad[q]
            t01 += gq * pad[q + u(1)]
            t02 += g2 * pad[q + u(2)]
            t10 += g0 * pad[b + q]
            t11 += gq * pad[b + q + u(1)]
            t12 += g2 * pad[b + q + u(2)]
            t20 += g0 * pad[c + q]
            t21 += gq * pad[c + q + u(1)]
            t22 += g2 * pad[c + q + u(2)]
        dwp[0], dwp[1], dwp[2], dwp[3], dwp[4] = t00, t01, t02, t10, t11
        dwp[5], dwp[6], dwp[7], dwp[8] = t12, t20, t21, t22
        return
    for i in range(5):           # 5x5: one pass per tap row, its five sums side by side
        r = u(i) * Wu
        t0 = t1 = t2 = t3 = t4 = zero
        for q in range(u(0), HW):
            gq = g[base + q]
            t0 += (gq * masks[0, q]) * pad[r + q]
            t1 += (gq * masks[1, q]) * pad[r + q + u(1)]
            t2 += gq * pad[r + q + u(2)]
            t3 += (gq * masks[3, q]) * pad[r + q + u(3)]
            t4 += (gq * masks[4, q]) * pad[r + q + u(4)]
        dwp[5 * i], dwp[5 * i + 1], dwp[5 * i + 2], dwp[5 * i + 3], dwp[5 * i + 4] = t0, t1, t2, t3, t4


@njit(cache=True, nogil=True)
def backward(x, w_flipped, dy, dx, dw_n, masks, kh, kw, H, W, start, stop):
    """dx and per-plane weight gradients for planes start <= p < stop.

    x, dy, dx: flat (N*C*H*W,); w_flipped: (C, kh*kw), each kernel turned by 180 degrees;
    dw_n: (N*C, kh*kw), plane p's share of dw[p % C]."""
    C = w_flipped.shape[0]
    pad = np.zeros((H + kh - 1) * W + kw - 1, dtype=x.dtype)
    o = (kh // 2) * W + kw // 2
    top, bot = np.zeros(3 * o, dtype=x.dtype), np.zeros(3 * o, dtype=x.dtype)
    if steps_apply(kh, kw, H, W):
        mflat = masks.reshape(-1)
        for p in range(start, stop):
            _plane_steps(dy, p, w_flipped[p % C], dx, masks, mflat, H, W, top, bot)
            _weight_grad(x, dy, p * H * W, dw_n[p], masks, kh, kw, H, W, pad)
        return
    for p in range(start, stop):
        _plane(dy, p, w_flipped[p % C], dx, masks, kh, kw, H, W, top, bot)
        _weight_grad(x, dy, p * H * W, dw_n[p], masks, kh, kw, H, W, pad)


def forward_fast(x, w):
    """x (N, C, H, W), w (C, 1, k, k) -> y (N, C, H, W); ``applies`` must hold."""
    N, C, H, W = x.shape
    kh, kw = w.shape[2:]
    y = buffers.empty(x.shape, x.dtype)
    run_chunks(forward, N * C, np.ascontiguousarray(x).reshape(-1),
               np.ascontiguousarray(w, dtype=x.dtype).reshape(C, kh * kw), y.reshape(-1),
               column_masks(H, W, kw, x.dtype), kh, kw, H, W, work=2 * x.size)
    return y


def backward_fast(dy, x, w):
    """Returns (dx, dw) with the shapes of x and w; ``applies`` must hold."""
    N, C, H, W = x.shape
    kh, kw = w.shape[2:]
    dx = buffers.empty(x.shape, x.dtype)
    dw_n = np.empty((N, C, kh * kw), dtype=x.dtype)
    w_flipped = np.ascontiguousarray(w[:, 0, ::-1, ::-1], dtype=x.dtype).reshape(C, kh * kw)
    run_chunks(backward, N * C, np.ascontiguousarray(x).reshape(-1), w_flipped,
               np.ascontiguousarray(dy).reshape(-1), dx.reshape(-1),
               dw_n.reshape(N * C, kh * kw), column_masks(H, W, kw, x.dtype), kh, kw, H, W,
               work=3 * x.size)
    return dx, dw_n.sum(axis=0).reshape(w.shape)
