"""Phase planes: the layout that turns every convolution tap into one long unit-stride loop.

An (H, W) image plane, zero-padded by (ph, pw), is copied into ``sh*sw`` *phase planes* (for stride
1 that is just the padded plane):

    phase[a, b][r, c] = x_pad[r*sh + a, c*sw + b]        (row pitch P = ceil((W + 2 pw) / sw))

Tap ``(i, j)`` of output pixel ``(oh, ow)`` then reads ``phase[i % sh, j % sw][oh + i//sh,
ow + j//sw]``: a fixed offset ``(i//sh)*P + j//sw`` from the output pixel's own position, *if the
output is laid out with the same pitch P*.  So with the output plane flattened at pitch P
(``P - Wo`` spare columns per row, dropped at the end), one tap over a whole plane is

    out[q] (+)= w * phase_flat[q + off]          for q in 0 .. Ho*P - 1

one contiguous loop with no padding test and no stride in it, which LLVM vectorises.  At 14x14 /
stride 2 this is one loop of 63 per tap instead of 7 loops of 7.  A real output pixel only ever
reads its own plane (oh + i//sh < rows), so the planes of several images can be stacked ``plen``
apart and one loop can cover them all; spare columns read whatever follows and are dropped.
Each phase plane gets ``P`` values of slack at its end, as offsets reach up to ``P`` past it.

Buffer layout: one flat array of ``sh*sw`` phase planes, each ``stride`` values long (the stacked
images plus slack); phase (a, b) starts at ``(a*sw + b) * stride``.  The copy in (``scatter``) and
out (``gather``, for gradients) goes through a table of where each input pixel lands, computed
once per call with NumPy: the per-pixel index arithmetic (divisions by the stride) would otherwise
dominate these short loops.  Along an input row, the pixels ``b, b + sw, b + 2 sw, ...`` land in
consecutive places of one phase row, so each row is copied as ``sw`` runs, each a loop that
reads at stride ``sw`` and writes contiguously; only the first pixel of a run is looked up.
Rows narrower than ``SHORT_ROW`` are copied pixel by pixel through the table instead: a loop of
a few iterations spends its time in the vectorised loop's set-up (measured, the 16x672 planes
of 14x14 of a 5x5/s2 depthwise layer, one thread: 1.2-1.3 ms through the table, 2.9 ms as
runs; its 16x72 planes of 56x56 at stride 1: 0.9 ms as runs, 1.4 ms when each run was a
strided view).
Padding positions are never written by ``scatter``, so a buffer that starts at zero keeps its
zero padding across planes.
"""
import functools

import numpy as np
from numba import njit

SHORT_ROW = 16   # rows narrower than this are copied value by value through the table


def geometry(H, W, stride, padding):
    """(P, plen): the row pitch and the length of one image's phase plane (``rows * P``)."""
    (sh, sw), (ph, pw) = stride, padding
    P = -(-(W + 2 * pw) // sw)
    return P, -(-(H + 2 * ph) // sh) * P


def per_geometry(f):
    """Compute once per geometry: the tables are the same for every call of a layer (measured:
    recomputing them was 1.5 % of a MobileNetV4 training step).  The arrays are shared, not copied:
    read them, never write them (they stay writable so that Numba sees the same array type)."""
    cached = functools.lru_cache(maxsize=1024)(f)

    @functools.wraps(f)
    def call(*args):
        return cached(*(tuple(int(v) for v in a) if isinstance(a, (tuple, list)) else int(a) for a in args))
    return call


@per_geometry
def table(H, W, stride, padding, plane_stride):
    """Flat position, in a buffer of phase planes ``plane_stride`` apart, of each pixel of an (H, W)
    plane (row-major), for the image at offset 0."""
    (sh, sw), (ph, pw) = stride, padding
    P = geometry(H, W, stride, padding)[0]
    r, c = np.arange(H)[:, None] + ph, np.arange(W)[None, :] + pw
    return (((r % sh) * sw + c % sw) * plane_stride + (r // sh) * P + c // sw).reshape(-1).astype(np.int64)


@per_geometry
def taps(kh, kw, stride, P, plane_stride):
    """Start of tap (i, j)'s read window, ``i*kw + j`` order: its phase plane plus its offset."""
    sh, sw = stride
    i, j = np.arange(kh)[:, None], np.arange(kw)[None, :]
    return (((i % sh) * sw + j % sw) * plane_stride + (i // sh) * P + j // sw).reshape(-1).astype(np.int64)


def run_length(W, stride=(1, 1)):
    """``(W, sw)``, how ``scatter`` and ``gather`` walk a plane: rows of W pixels, each as ``sw``
    runs of pixels ``sw`` apart that land side by side (``table``)."""
    return (W, stride[1])


@njit(cache=True)
def scatter(plane, where, run, out, o0):
    """out[where[k] + o0] = plane[k]: copy a flattened image plane into its phase planes.

    ``run`` = (W, sw) from ``run_length``.  Per row and run, one loop with no table lookup: at
    column stride 1 a plain copy, at stride 2 a de-interleave.  Each loop indexes contiguous views
    by the loop variable alone, with the stride a constant where it can be, so that LLVM
    vectorises it (a strided view, or an index ``d + k`` that Numba must test for negative
    wrap-around, leaves the copy element by element).
    """
    W, sw = run
    if W < SHORT_ROW:
        for k in range(plane.shape[0]):
            out[where[k] + o0] = plane[k]
        return
    for s in range(0, plane.shape[0], W):
        for b in range(min(sw, W)):
            d, n = where[s + b] + o0, (W - b + sw - 1) // sw
            dst, src = out[d:d + n], plane[s + b:s + W]
            if sw == 1:
                for k in range(n):
                    dst[k] = src[k]
            elif sw == 2:
                for k in range(n):
                    dst[k] = src[2 * k]
            else:
                for k in range(n):
                    dst[k] = src[sw * k]


@njit(cache=True)
def gather(dphase, where, run, plane, o0):
    """plane[k] = dphase[where[k] + o0]: the adjoint read-back; padding positions are dropped."""
    W, sw = run
    if W < SHORT_ROW:
        for k in range(plane.shape[0]):
            plane[k] = dphase[where[k] + o0]
        return
    for s in range(0, plane.shape[0], W):
        for b in range(min(sw, W)):
            d, n = where[s + b] + o0, (W - b + sw - 1) // sw
            src, dst = dphase[d:d + n], plane[s + b:s + W]
            if sw == 1:
                for k in range(n):
                    dst[k] = src[k]
            elif sw == 2:
                for k in range(n):
                    dst[2 * k] = src[k]
            else:
                for k in range(n):
                    dst[sw * k] = src[k]
