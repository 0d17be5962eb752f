"""im2col / col2im as Numba loops: the data movement around the one big matmul of a convolution.

``im2col`` lays out, for every output pixel, the ``C * kh * kw`` input values its kernel window
sees, so that the convolution becomes one matrix product (Chellapilla et al., 2006, "High
Performance Convolutional Neural Networks for Document Processing").  ``col2im`` is its adjoint:
it adds every column entry back onto the input pixel it was read from.

Layout: ``cols[n, (c*kh + i)*kw + j, oh*P + ow] = x_pad[n, c, oh*sh + i, ow*sw + j]``, the plain
path's layout except that each output row takes ``P >= Wo`` columns (the phase pitch, see
``phases.py``; ``P - Wo`` is 0 to 2 for the usual "same" padding).  With that pitch each row of
``cols`` is *one* contiguous copy out of the input's phase planes, padding included, instead of
``Ho`` strided copies with padding tests.  The matmul then yields outputs at pitch P, and the caller
drops the spare columns.  The rows of one group of channels are contiguous, so a grouped
convolution reshapes ``cols`` to ``(N, G, Cg*kh*kw, Ho*P)`` for free.

Each kernel handles a range of the ``N * C`` image planes and ``threads.run_chunks`` runs several
ranges in parallel; no two ranges write the same plane, so there are no races.
"""
import numpy as np
from numba import njit

from . import buffers, phases
from .phases import gather, scatter
from .threads import run_chunks


@njit(cache=True, nogil=True)
def im2col(x, cols, where, run, taps, P, Ho, plane_stride, nphase, start, stop):
    """Fill the rows of ``cols`` (N, C*kh*kw, Ho*P) that come from image planes
    ``start <= n*C + c < stop`` of ``x`` (N*C, H*W), through one image's phase planes."""
    N, T, L = cols.shape[0], taps.shape[0], Ho * P
    C = x.shape[0] // N
    phase = np.zeros(nphase * plane_stride, dtype=x.dtype)   # padding positions stay zero
    for p in range(start, stop):
        n, c = p // C, p % C
        scatter(x[p], where, run, phase, 0)
        for t in range(T):
            cols[n, c * T + t, :] = phase[taps[t]:taps[t] + L]


@njit(cache=True, nogil=True)
def col2im(dcols, dx, where, run, taps, P, Ho, plane_stride, nphase, start, stop):
    """Overwrite image planes ``start <= n*C + c < stop`` of ``dx`` (N*C, H*W) with the sum of the
    ``dcols`` (N, C*kh*kw, Ho*P) entries read from each pixel.  Entries read from the padding, and
    the spare columns (which must be zero), have no pixel and are dropped."""
    N, T, L = dcols.shape[0], taps.shape[0], Ho * P
    C = dx.shape[0] // N
    dphase = np.empty(nphase * plane_stride, dtype=dx.dtype)
    for p in range(start, stop):
        n, c = p // C, p % C
        dphase[:] = 0
        for t in range(T):
            dst, src = dphase[taps[t]:taps[t] + L], dcols[n, c * T + t]
            for q in range(L):           # index by the loop variable alone, so LLVM vectorises
                dst[q] += src[q]
        gather(dphase, where, run, dx[p], 0)


def pitch(x_shape, stride, padding):
    """The row pitch P of the fast layout (>= Wo)."""
    return phases.geometry(x_shape[2], x_shape[3], stride, padding)[0]


def _layout(x_shape, kh, kw, stride, padding):
    """(where, run, taps, P, plane_stride, nphase): the phase layout of one image (``phases.py``)."""
    P, plen = phases.geometry(x_shape[2], x_shape[3], stride, padding)
    return (phases.table(x_shape[2], x_shape[3], stride, padding, plen + P),
            phases.run_length(x_shape[3], stride), phases.taps(kh, kw, stride, P, plen + P), P, plen + P,
            stride[0] * stride[1])


def im2col_fast(x, kh, kw, stride, padding, Ho):
    """Wrapper: allocate and fill ``cols`` (N, C*kh*kw, Ho*P), dtype of x."""
    N, C, H, W = x.shape
    where, run, taps, P, plane_stride, nphase = _layout(x.shape, kh, kw, stride, padding)
    cols = np.empty((N, C * kh * kw, Ho * P), dtype=x.dtype)
    run_chunks(im2col, N * C, np.ascontiguousarray(x).reshape(N * C, H * W), cols, where, run, taps, P, Ho,
               plane_stride, nphase, work=cols.size)
    return cols


def col2im_fast(dcols, x_shape, kh, kw, stride, padding, Ho):
    """Wrapper: the adjoint of ``im2col_fast``; ``dcols`` (N, C*kh*kw, Ho*P) -> dx of ``x_shape``."""
    N, C, H, W = x_shape
    where, run, taps, P, plane_stride, nphase = _layout(x_shape, kh, kw, stride, padding)
    dx = buffers.empty(x_shape, dcols.dtype)
    run_chunks(col2im, N * C, np.ascontiguousarray(dcols), dx.reshape(N * C, H * W), where, run, taps, P, Ho,
               plane_stride, nphase, work=dcols.size)
    return dx
