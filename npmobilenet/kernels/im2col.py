"""im2col / col2im as Numba loops: the data movement around the one big matmul of a convolution.

``im2col`` lays out, for every output pixel, the ``C * kh * kw`` input values its kernel window
sees, so that the convolution becomes one matrix product (Chellapilla et al., 2006, "High
Performance Convolutional Neural Networks for Document Processing").  ``col2im`` is its adjoint:
it adds every column entry back onto the input pixel it was read from.

Layout: ``cols[n, (c*kh + i)*kw + j, oh*P + ow] = x_pad[n, c, oh*sh + i, ow*sw + j]``, the plain
path's layout with each output row taking ``P`` columns.  Each row of ``cols`` is *one*
contiguous copy out of the input's phase planes (``phases.py``), instead of ``Ho`` strided
copies with padding tests.  For the usual "same" padding ``P = Wo``, so the matrix product
writes y directly, in its final layout: the phase planes here keep the row pitch ``Wo`` by
leaving out their leading columns of padding (``lead`` below), and a tap whose window then
runs off one end of a row (reading the neighbouring row instead of padding) has those few
columns of ``cols`` set to zero after the copy (``zero_at``; in ``col2im`` the same entries are
dropped).  Measured, the 16x3x224x224 stem, one thread: the copy of y out of a pitch-113
product was 0.19 ms of 1.1 ms per three images.  Other paddings, where real pixels would not fit
in ``Wo`` columns, take a wider pitch and the caller drops the spare columns.  The rows of one
group of channels are contiguous, so a grouped convolution reshapes ``cols`` to
``(N, G, Cg*kh*kw, Ho*P)`` for free.

Each kernel handles a range of the ``N * C`` image planes and ``threads.run_chunks`` runs several
ranges in parallel; no two ranges write the same plane, so there are no races.
"""
import numpy as np
from numba import njit

from . import buffers, phases, pointwise, threads
from .phases import gather, scatter
from .threads import run_chunks


@njit(cache=True, nogil=True)
def im2col(x, cols, where, run, taps, zero_at, P, Ho, plane_stride, nphase, start, stop):
    """Fill the rows of ``cols`` (N, C*kh*kw, Ho*P) that come from image planes
    ``start <= n*C + c < stop`` of ``x`` (N*C, H*W), through one image's phase planes.
    ``zero_at[t]``: the output columns (-1: none) where tap t's window leaves the row."""
    N, T, L = cols.shape[0], taps.shape[0], Ho * P
    C = x.shape[0] // N
    phase = np.zeros(nphase * plane_stride, dtype=x.dtype)   # padding positions stay zero
    for p in range(start, stop):
        n, c = p // C, p % C
        scatter(x[p], where, run, phase, 0)
        for t in range(T):
            row = cols[n, c * T + t]
            row[:] = phase[taps[t]:taps[t] + L]
            for ow in zero_at[t]:
                if ow >= 0:
                    for oh in range(Ho):
                        row[oh * P + ow] = 0


@njit(cache=True, nogil=True)
def col2im(dcols, dx, where, run, taps, zero_at, P, Ho, plane_stride, nphase, start, stop):
    """Overwrite image planes ``start <= n*C + c < stop`` of ``dx`` (N*C, H*W) with the sum of the
    ``dcols`` (N, C*kh*kw, Ho*P) entries read from each pixel.  Entries read from the padding, and
    the spare columns (which must be zero), have no pixel and are dropped; so are the entries at
    ``zero_at`` (set to zero here, in dcols itself, before the sum)."""
    N, T, L = dcols.shape[0], taps.shape[0], Ho * P
    C = dx.shape[0] // N
    dphase = np.empty(nphase * plane_stride, dtype=dx.dtype)
    for p in range(start, stop):
        n, c = p // C, p % C
        dphase[:] = 0
        for t in range(T):
            dst, src = dphase[taps[t]:taps[t] + L], dcols[n, c * T + t]
            for ow in zero_at[t]:
                if ow >= 0:
                    for oh in range(Ho):
                        src[oh * P + ow] = 0
            for q in range(L):           # index by the loop variable alone, so LLVM vectorises
                dst[q] += src[q]
        gather(dphase, where, run, dx[p], 0)


def _leads(W, stride, padding):
    """lead[b]: the leading columns of phase b that hold only padding (left out of the planes)."""
    sw, pw = stride[1], padding[1]
    return [max(0, -(-(pw - b) // sw)) for b in range(sw)]


@phases.per_geometry
def pitch(x_shape, kernel, stride, padding):
    """The row pitch P (>= Wo) of the columns: Wo when every real pixel of a phase row fits in Wo
    columns once its leading padding is left out (always for "same" padding), else wider."""
    W, (sw, pw), kw = x_shape[3], (stride[1], padding[1]), kernel[1]
    Wo = (W + 2 * pw - kw) // sw + 1
    lead = _leads(W, stride, padding)
    return max([Wo] + [(W - 1 + pw - b) // sw - lead[b] + 1 for b in range(sw)])


@phases.per_geometry
def _layout(x_shape, kernel, stride, padding):
    """(where, run, taps, zero_at, P, plane_stride, nphase): one image's phase planes at pitch P.

    Plane (a, b) holds the padded rows ``r = a, a + sh, ...`` and padded columns ``c = b + sw*(lead[b]
    + k)`` for k >= 0, row-major at pitch P, after ``P`` values of slack (tap windows start up to
    ``lead[b]`` values before their output's position)."""
    H, W = x_shape[2], x_shape[3]
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    P, lead = pitch(x_shape, kernel, stride, padding), _leads(W, stride, padding)
    Wo = (W + 2 * pw - kw) // sw + 1
    rows = -(-(H + 2 * ph) // sh)
    plane_stride = P + rows * P + P + kw
    r, c = np.arange(H)[:, None] + ph, np.arange(W)[None, :] + pw
    lead_c = np.array(lead)[c % sw]
    where = ((r % sh) * sw + c % sw) * plane_stride + P + (r // sh) * P + c // sw - lead_c
    i, j = np.arange(kh)[:, None], np.arange(kw)[None, :]
    lead_j = np.array(lead)[j % sw]
    taps = ((i % sh) * sw + j % sw) * plane_stride + P + (i // sh) * P + j // sw - lead_j
    # tap j reads stored column ow + j//sw - lead[j % sw] of its row: outside [0, P) it wraps
    zero_at = np.full((kh * kw, max(1, kw)), -1, dtype=np.int64)
    for t in range(kh * kw):
        jj = t % kw
        ows = [ow for ow in range(Wo) if not 0 <= ow + jj // sw - lead[jj % sw] < P]
        zero_at[t, :len(ows)] = ows
    return (where.reshape(-1).astype(np.int64), phases.run_length(W, stride), taps.reshape(-1).astype(np.int64),
            zero_at, P, plane_stride, sh * sw)


def im2col_fast(x, kh, kw, stride, padding, Ho, serial=False):
    """Wrapper: allocate and fill ``cols`` (N, C*kh*kw, Ho*P), dtype of x (``serial``: this thread only)."""
    N, C, H, W = x.shape
    where, run, taps, zero_at, P, plane_stride, nphase = _layout(x.shape, (kh, kw), stride, padding)
    cols = buffers.empty((N, C * kh * kw, Ho * P), x.dtype)
    run_chunks(im2col, N * C, np.ascontiguousarray(x).reshape(N * C, H * W), cols, where, run, taps, zero_at,
               P, Ho, plane_stride, nphase, work=0 if serial else cols.size)
    return cols


def col2im_fast(dcols, x_shape, kh, kw, stride, padding, Ho, out=None, serial=False):
    """Wrapper: the adjoint of ``im2col_fast``; ``dcols`` (N, C*kh*kw, Ho*P), a contiguous scratch
    array (its entries at ``zero_at`` are zeroed) -> dx of ``x_shape`` (written into ``out`` when given)."""
    N, C, H, W = x_shape
    where, run, taps, zero_at, P, plane_stride, nphase = _layout(x_shape, (kh, kw), stride, padding)
    dx = buffers.empty(x_shape, dcols.dtype) if out is None else out
    run_chunks(col2im, N * C, dcols, dx.reshape(N * C, H * W), where, run, taps, zero_at, P, Ho,
               plane_stride, nphase, work=0 if serial else dcols.size)
    return dx


# ---- the convolution: batch chunks of a few images ---------------------------------------------
# The columns of a chunk and its matmul output stay in cache and their buffers are reused, instead
# of one batch-sized im2col that would be written to memory.  With two or more chunks, the chunks
# are the parts handed to the threads, each doing im2col, product and copy-out for its own images
# on one thread (the BLAS is single-threaded, see threads.py): coarse parts, no hand-over between
# the steps of one image.  A single chunk (batch 1) splits each step over the threads instead.
# Chunks depend only on the shapes, and each one's dW is kept apart and the partials summed in
# order, so the results do not depend on the thread count.
_CHUNK = 1 << 20   # im2col values per batch chunk (4 MB in float32): written and read back in cache


def _chunks(x_shape, kh, kw, Ho, P):
    N, C = x_shape[:2]
    nb = max(1, min(N, _CHUNK // (C * kh * kw * Ho * P)))
    return nb, -(-N // nb)


def conv_forward(x, Wg, kernel, stride, padding, out_hw, epilogue=None):
    """y (N, O, Ho, Wo) of a conv with weights ``Wg`` (G, Og, Cg*kh*kw), through im2col.
    ``epilogue(y, lo, hi)``, if given, is applied to each chunk of images as soon as it is done."""
    N, G, Og = x.shape[0], Wg.shape[0], Wg.shape[1]
    (Ho, Wo), P = out_hw, pitch(x.shape, kernel, stride, padding)
    nb, chunks = _chunks(x.shape, *kernel, Ho, P)
    y = buffers.empty((N, G * Og, Ho, Wo), x.dtype)

    def chunk(t, serial=True):
        n0, n1 = t * nb, min(N, (t + 1) * nb)
        cols = im2col_fast(x[n0:n1], *kernel, stride, padding, Ho, serial).reshape(n1 - n0, G, -1, Ho * P)
        # at P == Wo the product is y itself; else it has spare columns to drop
        yp = y[n0:n1].reshape(n1 - n0, G, Og, Ho * P) if P == Wo else \
            buffers.empty((n1 - n0, G, Og, Ho * P), x.dtype)
        if serial:
            np.matmul(Wg, cols, out=yp)
        else:
            threads.matmul(Wg, cols, out=yp)
        if P != Wo:
            y[n0:n1] = yp.reshape(n1 - n0, G * Og, Ho, P)[..., :Wo]
        if epilogue is not None:
            epilogue(y, n0, n1)
    if chunks == 1:
        chunk(0, serial=False)
    else:
        threads.run_parts(chunk, chunks)
    return y


def conv_backward(dy, x, Wg, kernel, stride, padding, input_grad=True):
    """(dx, dW (G, Og, Cg*kh*kw)) of ``conv_forward``, recomputing each chunk's columns.
    ``input_grad=False`` skips dx (returned as None): the product for dX_col and col2im."""
    N, G, Og = x.shape[0], Wg.shape[0], Wg.shape[1]
    Ho, Wo = dy.shape[2:]
    P = pitch(x.shape, kernel, stride, padding)
    nb, chunks = _chunks(x.shape, *kernel, Ho, P)
    dx = buffers.empty(x.shape, x.dtype) if input_grad else None
    dw = np.empty((chunks,) + Wg.shape, x.dtype)
    dy = np.ascontiguousarray(dy)

    def chunk(t, serial=True):
        n0, n1 = t * nb, min(N, (t + 1) * nb)
        k = n1 - n0
        cols = im2col_fast(x[n0:n1], *kernel, stride, padding, Ho, serial).reshape(k, G, -1, Ho * P)
        if P == Wo:
            dYk = dy[n0:n1].reshape(k, G, Og, Ho * P)
        else:                                                   # dy at pitch P; spare columns 0
            dYp = buffers.empty((k, G * Og, Ho, P), x.dtype)
            dYp[..., Wo:] = 0
            dYp[..., :Wo] = dy[n0:n1]
            dYk = dYp.reshape(k, G, Og, Ho * P)
        pointwise.weight_grad(dYk, cols, dw[t])
        if not input_grad:
            return
        dcols = buffers.empty((k, G, Wg.shape[2], Ho * P), x.dtype)
        if serial:
            np.matmul(Wg.swapaxes(-1, -2), dYk, out=dcols)
        else:
            threads.matmul(Wg.swapaxes(-1, -2), dYk, out=dcols)
        col2im_fast(dcols.reshape(k, -1, Ho * P), (k,) + x.shape[1:], *kernel, stride, padding, Ho,
                    out=dx[n0:n1], serial=serial)
    if chunks == 1:
        chunk(0, serial=False)
    else:
        threads.run_parts(chunk, chunks)
    return dx, dw[0] if chunks == 1 else dw.sum(axis=0)      # no chunks (an empty batch): zeros
