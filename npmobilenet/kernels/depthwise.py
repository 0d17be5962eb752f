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

Each kernel call handles a run of (channel, image block) tasks, allocating its scratch planes
once, and ``threads.run_chunks`` runs a few such runs per thread.  Every task writes only its own
planes of ``y`` / ``dx`` and its own entries of the per-block weight partials ``dw_b`` (reduced
over the blocks outside), so nothing races and the result does not depend on the thread count.
"""
import numpy as np
from numba import njit

from .phases import from_phases, phase_geometry, to_phases
from .threads import run_chunks


@njit(cache=True, fastmath={"reassoc", "contract"})
def _dot(a, b):
    """sum_q a[q] * b[q]: reassociation lets the reduction vectorise (lane-wise partial sums)."""
    s = a[0] * 0
    for q in range(a.shape[0]):
        s += a[q] * b[q]
    return s


@njit(cache=True)
def _geometry(N, H, W, sh, sw, ph, pw):
    """Phase pitch P, phase-plane length, and images per block (phase planes of <= 4096 values)."""
    P, plen = phase_geometry(H, W, sh, sw, ph, pw)
    return P, plen, max(1, min(N, 4096 // (plen * sh * sw)))


@njit(cache=True, nogil=True)
def depthwise_forward(x, w, y, sh, sw, ph, pw, start, stop):
    """y[n, co, oh, ow] = sum_ij w[co, i, j] * x_pad[n, co // m, oh*sh + i, ow*sw + j].

    x: (N, C, H, W); w: (C*m, kh, kw); y: (N, C*m, Ho, Wo).  Tasks are (channel co, block of
    ``nb`` images); this call does tasks ``start <= co * blocks + block < stop``.  The images of a
    block sit one after another in the phase and output buffers (``plen`` apart), so each tap is
    one loop over the whole block with the same weight.
    """
    N, C, H, W = x.shape
    Co, kh, kw = w.shape
    Ho, Wo = y.shape[2], y.shape[3]
    m = Co // C
    P, plen, nb = _geometry(N, H, W, sh, sw, ph, pw)
    blocks = (N + nb - 1) // nb
    phase = np.empty((sh, sw, nb * plen + P), dtype=x.dtype)     # + P: the last taps read past the end
    acc = np.empty(nb * plen, dtype=x.dtype)
    for p in range(start, stop):
        co, n0 = p // blocks, (p % blocks) * nb
        n1 = min(N, n0 + nb)
        L = (n1 - n0 - 1) * plen + Ho * P
        phase[:] = 0
        for n in range(n0, n1):
            to_phases(x[n, co // m], ph, pw, sh, sw, P, phase[:, :, (n - n0) * plen:])
        acc[:] = 0
        for i in range(kh):
            for j in range(kw):
                wv = w[co, i, j]
                off = (i // sh) * P + j // sw
                src = phase[i % sh, j % sw, off:off + L]
                for q in range(L):       # index by the loop variable alone, or LLVM will not vectorise
                    acc[q] += wv * src[q]
        for n in range(n0, n1):
            for oh in range(Ho):
                b = (n - n0) * plen + oh * P
                y[n, co, oh, :] = acc[b:b + Wo]


@njit(cache=True, nogil=True)
def depthwise_backward(x, w, dy, dx, dw_b, sh, sw, ph, pw, start, stop):
    """dx and the per-block weight gradients of ``depthwise_forward``, in one pass over dy.

    dx[n, ci, ih, iw] = sum_{co of ci} sum_{oh*sh+i-ph = ih, ow*sw+j-pw = iw} w[co, i, j] dy[n, co, oh, ow]
    dw_b[blk, co, i, j] = sum_{n in blk} sum_{oh, ow} dy[n, co, oh, ow] * x_pad[n, ci, oh*sh + i, ow*sw + j]

    x, dx: (N, C, H, W); w: (C*m, kh, kw); dy: (N, C*m, Ho, Wo); dw_b: (blocks, C*m, kh, kw).
    Tasks are (input channel ci, block of images), so the m output channels that read one input
    plane are handled together and no two tasks write the same dx plane or dw_b entry.
    """
    N, C, H, W = x.shape
    Co, kh, kw = w.shape
    Ho, Wo = dy.shape[2], dy.shape[3]
    m = Co // C
    P, plen, nb = _geometry(N, H, W, sh, sw, ph, pw)
    blocks = (N + nb - 1) // nb
    phase = np.empty((sh, sw, nb * plen + P), dtype=x.dtype)
    dphase = np.empty((sh, sw, nb * plen + P), dtype=x.dtype)
    g = np.zeros(nb * plen, dtype=x.dtype)   # dy at pitch P; positions of no output stay zero
    for p in range(start, stop):
        ci, blk = p // blocks, p % blocks
        n0 = blk * nb
        n1 = min(N, n0 + nb)
        L = (n1 - n0 - 1) * plen + Ho * P
        phase[:] = 0
        for n in range(n0, n1):
            to_phases(x[n, ci], ph, pw, sh, sw, P, phase[:, :, (n - n0) * plen:])
        dphase[:] = 0
        for k in range(m):
            co = ci * m + k
            for n in range(n0, n1):
                for oh in range(Ho):
                    b = (n - n0) * plen + oh * P
                    g[b:b + Wo] = dy[n, co, oh, :]
            for i in range(kh):
                for j in range(kw):
                    wv = w[co, i, j]
                    off = (i // sh) * P + j // sw
                    dst = dphase[i % sh, j % sw, off:off + L]
                    for q in range(L):
                        dst[q] += wv * g[q]
                    dw_b[blk, co, i, j] = _dot(g[:L], phase[i % sh, j % sw, off:off + L])
        for n in range(n0, n1):
            from_phases(dphase[:, :, (n - n0) * plen:], ph, pw, sh, sw, P, dx[n, ci])


def _blocks(x, stride, padding):
    N, C, H, W = x.shape
    return -(-N // _geometry(N, H, W, *stride, *padding)[2])


def depthwise_forward_fast(x, w, stride, padding, out_hw):
    """Wrapper: x (N, C, H, W), w (C*m, 1, kh, kw) -> y (N, C*m, Ho, Wo)."""
    (sh, sw), (ph, pw), (Ho, Wo) = stride, padding, out_hw
    y = np.empty((x.shape[0], w.shape[0], Ho, Wo), dtype=x.dtype)
    run_chunks(depthwise_forward, w.shape[0] * _blocks(x, stride, padding), np.ascontiguousarray(x),
               np.ascontiguousarray(w[:, 0]), y, sh, sw, ph, pw, work=x.size + y.size)
    return y


def depthwise_backward_fast(dy, x, w, stride, padding):
    """Wrapper: returns (dx, dw) with the shapes of x and w."""
    (sh, sw), (ph, pw) = stride, padding
    blocks = _blocks(x, stride, padding)
    dx = np.empty_like(x)
    dw_b = np.empty((blocks,) + w.shape[:1] + w.shape[2:], dtype=x.dtype)
    run_chunks(depthwise_backward, x.shape[1] * blocks, np.ascontiguousarray(x),
               np.ascontiguousarray(w[:, 0]), np.ascontiguousarray(dy), dx, dw_b, sh, sw, ph, pw,
               work=x.size + dy.size)
    return dx, dw_b.sum(axis=0).reshape(w.shape)
