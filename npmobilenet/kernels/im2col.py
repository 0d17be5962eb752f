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

from .phases import from_phases, phase_geometry, to_phases
from .threads import run_chunks


@njit(cache=True, nogil=True)
def im2col(x, cols, kh, kw, sh, sw, ph, pw, Ho, start, stop):
    """Fill the rows of ``cols`` (N, C*kh*kw, Ho*P) that come from planes ``start <= n*C + c < stop``
    of ``x`` (N, C, H, W)."""
    N, C, H, W = x.shape
    P, plen = phase_geometry(H, W, sh, sw, ph, pw)
    L = Ho * P
    phase = np.empty((sh, sw, plen + P), dtype=x.dtype)   # + P: the last taps read past the end
    for p in range(start, stop):
        n, c = p // C, p % C
        phase[:] = 0
        to_phases(x[n, c], ph, pw, sh, sw, P, phase)
        for i in range(kh):
            for j in range(kw):
                off = (i // sh) * P + j // sw
                cols[n, (c * kh + i) * kw + j, :] = phase[i % sh, j % sw, off:off + L]


@njit(cache=True, nogil=True)
def col2im(dcols, dx, kh, kw, sh, sw, ph, pw, Ho, start, stop):
    """Overwrite planes ``start <= n*C + c < stop`` of ``dx`` (N, C, H, W) with the sum of the
    ``dcols`` (N, C*kh*kw, Ho*P) entries read from each pixel.  Entries read from the padding, and
    the spare columns (which must be zero), have no pixel and are dropped."""
    N, C, H, W = dx.shape
    P, plen = phase_geometry(H, W, sh, sw, ph, pw)
    L = Ho * P
    dphase = np.empty((sh, sw, plen + P), dtype=dx.dtype)
    for p in range(start, stop):
        n, c = p // C, p % C
        dphase[:] = 0
        for i in range(kh):
            for j in range(kw):
                off = (i // sh) * P + j // sw
                dst, src = dphase[i % sh, j % sw, off:off + L], dcols[n, (c * kh + i) * kw + j]
                for q in range(L):       # index by the loop variable alone, so LLVM vectorises
                    dst[q] += src[q]
        from_phases(dphase, ph, pw, sh, sw, P, dx[n, c])


def pitch(x_shape, stride, padding):
    """The row pitch P of the fast layout (>= Wo)."""
    return int(phase_geometry(x_shape[2], x_shape[3], *stride, *padding)[0])


def im2col_fast(x, kh, kw, stride, padding, Ho):
    """Wrapper: allocate and fill ``cols`` (N, C*kh*kw, Ho*P), dtype of x."""
    (sh, sw), (ph, pw) = stride, padding
    N, C = x.shape[:2]
    cols = np.empty((N, C * kh * kw, Ho * pitch(x.shape, stride, padding)), dtype=x.dtype)
    run_chunks(im2col, N * C, np.ascontiguousarray(x), cols, kh, kw, sh, sw, ph, pw, Ho, work=cols.size)
    return cols


def col2im_fast(dcols, x_shape, kh, kw, stride, padding, Ho):
    """Wrapper: the adjoint of ``im2col_fast``; ``dcols`` (N, C*kh*kw, Ho*P) -> dx of ``x_shape``."""
    (sh, sw), (ph, pw) = stride, padding
    dx = np.empty(x_shape, dtype=dcols.dtype)
    run_chunks(col2im, x_shape[0] * x_shape[1], np.ascontiguousarray(dcols), dx, kh, kw, sh, sw, ph, pw, Ho,
               work=dcols.size)
    return dx
