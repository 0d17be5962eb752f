"""Phase planes: the layout that turns every convolution tap into one long unit-stride loop.

An (H, W) image plane, zero-padded by (ph, pw), is copied into ``sh*sw`` *phase planes* (for stride
1 that is just the padded plane):

    phase[a, b][r, c] = x_pad[r*sh + a, c*sw + b]        (row pitch P = ceil((W + 2 pw) / sw))

Tap ``(i, j)`` of output pixel ``(oh, ow)`` then reads ``phase[i % sh, j % sw][oh + i//sh,
ow + j//sw]``: a fixed offset ``off = (i//sh)*P + j//sw`` from the output pixel's own position,
*if the output is laid out with the same pitch P*.  So with the output plane flattened at pitch P
(``P - Wo`` spare columns per row, dropped at the end), one tap over a whole plane is

    out[q] (+)= w * phase_flat[q + off]          for q in 0 .. Ho*P - 1

one contiguous loop with no padding test and no stride in it, which LLVM vectorises.  At 14x14 /
stride 2 this is one loop of 63 per tap instead of 7 loops of 7.  A real output pixel only ever
reads its own plane (oh + i//sh < rows), so planes can be stacked ``length`` apart and one loop can
cover several images; the spare columns read whatever follows and are dropped.  Readers must
allow ``P`` values of slack after the last plane (``off`` reaches up to ``P`` past it).

``from_phases`` is the adjoint (used by backward passes): it reads the plane back out of
gradient phase planes, dropping the padding positions.
"""
from numba import njit


@njit(cache=True)
def to_phases(plane, ph, pw, sh, sw, P, out):
    """Copy an (H, W) plane, zero-padded by (ph, pw), into ``out`` (sh, sw, >= rows*P) phase planes,
    whose padding positions must already be zero."""
    H, W = plane.shape
    for r in range(H):
        a, base = (r + ph) % sh, ((r + ph) // sh) * P
        if sw == 1:              # the common case as a row copy (a runtime stride would not vectorise)
            out[a, 0, base + pw:base + pw + W] = plane[r]
            continue
        for b in range(sw):      # columns c = c0, c0 + sw, ... land in phase b at consecutive places
            c0 = (b - pw) % sw
            dst, src = out[a, b, base + (c0 + pw) // sw:], plane[r, c0:]
            if sw == 2:          # a constant stride compiles to tighter code than a variable one
                for t in range((W - c0 + 1) // 2):
                    dst[t] = src[2 * t]
            else:
                for t in range((W - c0 + sw - 1) // sw):
                    dst[t] = src[t * sw]


@njit(cache=True)
def from_phases(dphase, ph, pw, sh, sw, P, plane):
    """The adjoint of ``to_phases``: read an (H, W) plane back; padding positions are dropped."""
    H, W = plane.shape
    for r in range(H):
        a, base = (r + ph) % sh, ((r + ph) // sh) * P
        if sw == 1:
            plane[r] = dphase[a, 0, base + pw:base + pw + W]
            continue
        for b in range(sw):
            c0 = (b - pw) % sw
            src, dst = dphase[a, b, base + (c0 + pw) // sw:], plane[r, c0:]
            if sw == 2:
                for t in range((W - c0 + 1) // 2):
                    dst[2 * t] = src[t]
            else:
                for t in range((W - c0 + sw - 1) // sw):
                    dst[t * sw] = src[t]


@njit(cache=True)
def phase_geometry(H, W, sh, sw, ph, pw):
    """Pitch P (values per phase row) and length (values per phase plane) for an (H, W) input."""
    P = (W + 2 * pw + sw - 1) // sw
    return P, ((H + 2 * ph + sh - 1) // sh) * P
