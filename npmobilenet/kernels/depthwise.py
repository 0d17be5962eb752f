"""Depthwise convolution as direct Numba loops (no im2col, no matmul).

A depthwise convolution (``groups == C``; Howard et al., 2017, "MobileNets", Sec. 3.1) gives each
output channel ``co`` one ``kh x kw`` filter over one input channel ``ci = co // m`` (``m`` is the
channel multiplier, ``m = C_out / C_in``, usually 1).  With only ``kh*kw`` multiply-adds per output
pixel there is nothing for a matmul to reuse, so im2col would mostly copy memory; direct loops
touch each input plane once.

The loops run on *phase planes* (``phases.py``): each input plane is copied, zero-padded and split
by stride phase, so that one kernel tap over a whole output plane is one contiguous loop
``acc[q] += w[i, j] * phase[q + off]``.  Planes are small (14x14 at stride 2 gives 7-wide rows), so
a block of images of one channel is stacked in one buffer and each tap is one loop over the block:
the weights are shared across the batch.  The backward pass uses the same layout: ``dx`` is
scattered into phase planes (``dphase[q + off] += w * dy[q]``, ``dy`` laid out at the same pitch
with zeros in the spare columns) and ``dw[i, j]`` is a dot product of ``dy`` with the phase plane
at ``off``.

Three cases go elsewhere, where measured faster: stride 1 with "same" padding on maps of 12x12
and more runs at the input's own row pitch with no copies (``depthwise_s1.py``), stride 2 with
"same" padding splits its phase planes with vector shuffles and runs all taps in one pass, both
ways (``depthwise_s2.py``), and maps of a few pixels run channels-last (``depthwise_small.py``).

Each kernel call handles a run of (channel, image block) tasks, allocating its scratch planes
once, and ``threads.run_chunks`` runs a few such runs per thread.  Every task writes only its own
planes of ``y`` / ``dx`` and its own entries of the per-block weight partials ``dw_b`` (reduced
over the blocks outside), so nothing races and the result does not depend on the thread count.
"""
import numpy as np
from numba import njit

from . import buffers, depthwise_s1, depthwise_s2, depthwise_small, phases
from .phases import gather, scatter
from .threads import run_chunks


@njit(cache=True, fastmath={"reassoc", "contract"})
def _dot(a, b):
    """sum_q a[q] * b[q]: reassociation lets the reduction vectorise (lane-wise partial sums).
    The sum is in a's dtype: ``a[0] * 0`` would make it float64, converting every product."""
    s = a.dtype.type(0)
    for q in range(a.shape[0]):
        s += a[q] * b[q]
    return s


# fastmath "contract" only fuses a*b + c into one FMA (one rounding instead of two); it does not
# reorder sums, so results stay independent of vector width and thread count.
@njit(cache=True, nogil=True, fastmath={"contract"})
def depthwise_forward(x, w, y, where, run, taps, out_where, out_run, P, plen, nb, nphase, start, stop):
    """y[n, co, oh, ow] = sum_ij w[co, i, j] * x_pad[n, co // m, oh*sh + i, ow*sw + j].

    x: (N*C, H*W) image planes; w: (C*m, kh*kw); y: (N*C*m, Ho*Wo); ``where``/``taps``/P/plen:
    the phase layout (``phases.py``) for blocks of ``nb`` images and ``nphase = sh*sw`` phases;
    ``out_where``: the position ``oh*P + ow`` of each output pixel in the pitch-P layout.
    Tasks are (channel co, block of images); this call does tasks
    ``start <= co * blocks + block < stop``.
    """
    Co = w.shape[0]
    N = y.shape[0] // Co
    C, m = x.shape[0] // N, Co // (x.shape[0] // N)
    L1 = out_where[-1] + 1                # pitch-P positions up to the last output pixel of an image
    blocks = (N + nb - 1) // nb
    phase = np.zeros(nphase * (nb * plen + P), dtype=x.dtype)   # padding positions stay zero
    acc = np.empty(nb * plen, dtype=x.dtype)
    for p in range(start, stop):
        co, n0 = p // blocks, (p % blocks) * nb
        n1 = min(N, n0 + nb)
        L = (n1 - n0 - 1) * plen + L1
        for n in range(n0, n1):
            scatter(x[n * C + co // m], where, run, phase, (n - n0) * plen)
        acc[:L] = 0
        T = taps.shape[0]
        for t in range(0, T - T % 3, 3):     # three taps per pass: a third of the acc loads and stores
            w0, w1, w2 = w[co, t], w[co, t + 1], w[co, t + 2]
            s0, s1 = phase[taps[t]:taps[t] + L], phase[taps[t + 1]:taps[t + 1] + L]
            s2 = phase[taps[t + 2]:taps[t + 2] + L]
            for q in range(L):           # index by the loop variable alone, or LLVM will not vectorise
                acc[q] += w0 * s0[q] + w1 * s1[q] + w2 * s2[q]
        for t in range(T - T % 3, T):
            wv, src = w[co, t], phase[taps[t]:taps[t] + L]
            for q in range(L):
                acc[q] += wv * src[q]
        for n in range(n0, n1):
            gather(acc, out_where, out_run, y[n * Co + co], (n - n0) * plen)


@njit(cache=True, nogil=True, fastmath={"contract"})
def depthwise_backward(x, w, dy, dx, dw_b, where, run, taps, out_where, out_run, P, plen, nb, nphase,
                       start, stop):
    """dx and the per-block weight gradients of ``depthwise_forward``, in one pass over dy.

    dx[n, ci, ih, iw] = sum_{co of ci} sum_{oh*sh+i-ph = ih, ow*sw+j-pw = iw} w[co, i, j] dy[n, co, oh, ow]
    dw_b[blk, co, i*kw + j] = sum_{n in blk} sum_{oh, ow} dy[n, co, oh, ow] * x_pad[n, ci, oh*sh + i, ow*sw + j]

    x, dx: (N*C, H*W); w: (C*m, kh*kw); dy: (N*C*m, Ho*Wo); dw_b: (blocks, C*m, kh*kw).
    Tasks are (input channel ci, block of images), so the m output channels that read one input
    plane are handled together and no two tasks write the same dx plane or dw_b entry.
    """
    Co = w.shape[0]
    N = dy.shape[0] // Co
    C, m = x.shape[0] // N, Co // (x.shape[0] // N)
    L1 = out_where[-1] + 1
    blocks = (N + nb - 1) // nb
    phase = np.zeros(nphase * (nb * plen + P), dtype=x.dtype)
    dphase = np.empty(nphase * (nb * plen + P), dtype=x.dtype)
    g = np.zeros(nb * plen, dtype=x.dtype)   # dy at pitch P; positions of no output stay zero
    for p in range(start, stop):
        ci, blk = p // blocks, p % blocks
        n0 = blk * nb
        n1 = min(N, n0 + nb)
        L = (n1 - n0 - 1) * plen + L1
        for n in range(n0, n1):
            scatter(x[n * C + ci], where, run, phase, (n - n0) * plen)
        dphase[:] = 0
        for k in range(m):
            co = ci * m + k
            for n in range(n0, n1):
                scatter(dy[n * Co + co], out_where, out_run, g, (n - n0) * plen)
            for t in range(taps.shape[0]):
                wv = w[co, t]
                dst = dphase[taps[t]:taps[t] + L]
                for q in range(L):
                    dst[q] += wv * g[q]
                dw_b[blk, co, t] = _dot(g[:L], phase[taps[t]:taps[t] + L])
        for n in range(n0, n1):
            gather(dphase, where, run, dx[n * C + ci], (n - n0) * plen)


def _layout(x_shape, w_shape, stride, padding):
    """Phase layout for blocks of nb images, with phase planes of <= 4096 values (L1-sized)."""
    N, C, H, W = x_shape
    P, plen = phases.geometry(H, W, stride, padding)
    nphase = stride[0] * stride[1]
    nb = max(1, min(N, 4096 // (plen * nphase)))
    plane_stride = nb * plen + P
    return (phases.table(H, W, stride, padding, plane_stride), phases.run_length(W, stride),
            phases.taps(w_shape[2], w_shape[3], stride, P, plane_stride), P, plen, nb, nphase)


@phases.per_geometry
def _out_where(out_hw, P):
    """Position oh*P + ow of each output pixel (row-major) in the pitch-P layout."""
    return (np.arange(out_hw[0])[:, None] * P + np.arange(out_hw[1])[None, :]).reshape(-1)


def depthwise_forward_fast(x, w, stride, padding, out_hw):
    """Wrapper: x (N, C, H, W), w (C*m, 1, kh, kw) -> y (N, C*m, Ho, Wo)."""
    if depthwise_small.applies(x.shape, w.shape):   # tiny planes: channels innermost instead
        return depthwise_small.forward_fast(x, w, stride, padding, out_hw)
    if depthwise_s1.applies(x.shape, w.shape, stride, padding):   # stride 1: straight from x
        return depthwise_s1.forward_fast(x, w)
    if depthwise_s2.applies(x.shape, w.shape, stride, padding):   # stride 2: one loop for all taps
        return depthwise_s2.forward_fast(x, w)
    N, C, H, W = x.shape
    where, run, taps, P, plen, nb, nphase = _layout(x.shape, w.shape, stride, padding)
    y = buffers.empty((N, w.shape[0]) + tuple(out_hw), x.dtype)
    run_chunks(depthwise_forward, w.shape[0] * -(-N // nb), np.ascontiguousarray(x).reshape(N * C, H * W),
               np.ascontiguousarray(w).reshape(w.shape[0], -1), y.reshape(y.shape[0] * y.shape[1], -1),
               where, run, taps, _out_where(out_hw, P), phases.run_length(out_hw[1]), P, plen, nb, nphase,
               work=x.size + y.size)
    return y


def depthwise_backward_fast(dy, x, w, stride, padding):
    """Wrapper: returns (dx, dw) with the shapes of x and w."""
    if depthwise_small.applies(x.shape, w.shape, backward=True):
        return depthwise_small.backward_fast(dy, x, w, stride, padding)
    if depthwise_s1.applies(x.shape, w.shape, stride, padding):
        return depthwise_s1.backward_fast(dy, x, w)
    if depthwise_s2.applies(x.shape, w.shape, stride, padding):
        return depthwise_s2.backward_fast(dy, x, w)
    N, C, H, W = x.shape
    where, run, taps, P, plen, nb, nphase = _layout(x.shape, w.shape, stride, padding)
    blocks = -(-N // nb)
    dx = buffers.empty(x.shape, x.dtype)        # C order: the kernel writes through a reshape
    dw_b = np.empty((blocks, w.shape[0], w.shape[2] * w.shape[3]), dtype=x.dtype)
    run_chunks(depthwise_backward, C * blocks, np.ascontiguousarray(x).reshape(N * C, H * W),
               np.ascontiguousarray(w).reshape(w.shape[0], -1),
               np.ascontiguousarray(dy).reshape(dy.shape[0] * dy.shape[1], -1), dx.reshape(N * C, H * W),
               dw_b, where, run, taps, _out_where(dy.shape[2:], P), phases.run_length(dy.shape[3]), P, plen,
               nb, nphase, work=x.size + dy.size)
    return dx, dw_b.sum(axis=0).reshape(w.shape)
