"""Explicit vector operations, for the loops LLVM will not vectorise by itself, or not well.

LLVM vectorises a *loop* whose trip count is large enough (Numba runs its loop vectoriser), and
splitting a whole flattened plane into its even and odd values, ``E[q] = x[2q]``, is such a loop.
Splitting *each row* of a 14-wide plane into its 7 even and 7 odd columns is not: a loop of 7
runs scalar, and the straight-line code that unrolling it gives would need LLVM's SLP vectoriser,
which Numba leaves off.  Measured, the 16x672 planes of 14x14 split row by row into four phase
planes, one thread: 3.6 ms scalar, 0.8 ms with ``deinterleave`` below.

``deinterleave`` writes that step as one ``LANES``-wide vector operation in LLVM's IR: load
``2 * LANES`` consecutive values, shuffle the even and the odd lanes apart, store each half.  A
row of ``w`` pairs then takes ``ceil(w / LANES)`` such steps.  Each step reads and writes whole
vectors, so the caller must leave room: up to ``2 * LANES - 1`` values are read past the row's last
pair and up to ``LANES - 1`` written past the last value it asked for.  No bounds are checked.

``interleave`` is its inverse, for the backward pass: load ``LANES`` values of each half, shuffle
them into alternate lanes, store ``2 * LANES`` consecutive values.

``stencil3x3`` is one step of a 3x3 stencil on ``ROWS`` output rows at once, ``LANES`` columns of
each (``depthwise_s1.py`` says where it is used and what it saved).  LLVM vectorises the
stride-1 depthwise loop one output row at a time: each vector of outputs loads its nine shifted
input vectors.  Output rows r and r + 1 share two of their three input rows, so a step over
``ROWS`` rows loads ``3 * (ROWS + 2)`` vectors for ``ROWS`` vectors of outputs, 4.5 a vector
instead of 9; and a step whose columns are all inside the row needs none of the column masks, so
the multiply-adds are the nine taps alone.  LLVM will not make such a step from scalar code
(a loop over ``LANES`` columns is unrolled, then left scalar), so it is written here as vector IR.
``phase_taps3`` and ``phase_taps5`` do the same for the stride-2 taps of ``depthwise_s2.py``, one
vector of outputs stored straight into y.

These operations are compiled into the kernels that call them, and Numba's on-disk cache of a
kernel is checked against the kernel's own file only: after an edit here, delete
``npmobilenet/kernels/__pycache__`` (or run with ``NUMBA_CACHE_DIR`` set to an empty folder), or
the kernels keep running the code they were compiled with.
"""
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

LANES = 8       # 8 float32 = one 256-bit register (two for float64)
ROWS = 4        # output rows of one stencil3x3 step


def _typed_right(arrays, indices):
    """1-D C-contiguous arrays of one float dtype, and integer indices."""
    return (all(isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C"
                and a.dtype == arrays[0].dtype and isinstance(a.dtype, types.Float) for a in arrays)
            and all(isinstance(i, types.Integer) for i in indices))


def _element(context, builder, arr_t, arr, index_t, index, vector):
    """Pointer to ``arr[index]``, typed as a pointer to ``vector``."""
    at = builder.gep(context.make_array(arr_t)(context, builder, arr).data,
                     [context.cast(builder, index, index_t, types.intp)])
    return builder.bitcast(at, vector.as_pointer())


@intrinsic
def deinterleave(typingctx, src, i, even, odd, j):
    """even[j:j + LANES] = src[i:i + 2*LANES:2] and odd[j:j + LANES] = src[i + 1:i + 2*LANES:2].

    src, even, odd: 1-D C-contiguous arrays of one float dtype; i, j: integers.  Unchecked: the
    caller keeps ``i + 2*LANES <= len(src)`` and ``j + LANES <= len(even), len(odd)``."""
    if not _typed_right((src, even, odd), (i, j)):
        return None
    sig = types.void(src, i, even, odd, j)

    def codegen(context, builder, sig, args):
        src_t, i_t, even_t, odd_t, j_t = sig.args
        value = context.get_value_type(src_t.dtype)
        align = src_t.dtype.bitwidth // 8              # element alignment: the rows start anywhere
        pair, half = ir.VectorType(value, 2 * LANES), ir.VectorType(value, LANES)
        v = builder.load(_element(context, builder, src_t, args[0], i_t, args[1], pair), align=align)
        lanes = ir.VectorType(ir.IntType(32), LANES)
        for arr, arr_t, first in ((args[2], even_t, 0), (args[3], odd_t, 1)):
            lane = builder.shuffle_vector(v, v, ir.Constant(lanes, [2 * k + first for k in range(LANES)]))
            builder.store(lane, _element(context, builder, arr_t, arr, j_t, args[4], half), align=align)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def interleave(typingctx, even, odd, j, dst, i):
    """dst[i:i + 2*LANES:2] = even[j:j + LANES] and dst[i + 1:i + 2*LANES:2] = odd[j:j + LANES].

    The inverse of ``deinterleave``; the same types, and as unchecked: the caller keeps
    ``j + LANES <= len(even), len(odd)`` and ``i + 2*LANES <= len(dst)``."""
    if not _typed_right((dst, even, odd), (i, j)):
        return None
    sig = types.void(even, odd, j, dst, i)

    def codegen(context, builder, sig, args):
        even_t, odd_t, j_t, dst_t, i_t = sig.args
        value = context.get_value_type(dst_t.dtype)
        align = dst_t.dtype.bitwidth // 8
        pair, half = ir.VectorType(value, 2 * LANES), ir.VectorType(value, LANES)
        e, o = (builder.load(_element(context, builder, t, a, j_t, args[2], half), align=align)
                for a, t in ((args[0], even_t), (args[1], odd_t)))
        lanes = ir.VectorType(ir.IntType(32), 2 * LANES)
        order = [k // 2 + (k % 2) * LANES for k in range(2 * LANES)]      # e0, o0, e1, o1, ...
        v = builder.shuffle_vector(e, o, ir.Constant(lanes, order))
        builder.store(v, _element(context, builder, dst_t, args[3], i_t, args[4], pair), align=align)
        return context.get_dummy_value()

    return sig, codegen


def _stencil3x3(masked):
    """``stencil3x3`` (``masked``: every column tap times its 0/1 column mask) or
    ``stencil3x3_inner`` (no masks: the step's columns all lie inside the row)."""

    @intrinsic
    def step(typingctx, s, a, W, taps, masks, mo, HW, dst, d):
        arrays = (s, dst) + ((masks,) if masked else ())
        if not (_typed_right(arrays, (a, W, mo, HW, d)) and isinstance(taps, types.UniTuple)
                and taps.count == 9 and taps.dtype == s.dtype):
            return None
        sig = types.void(s, a, W, taps, masks, mo, HW, dst, d)

        def codegen(context, builder, sig, args):
            s_t, a_t, W_t, _, m_t, mo_t, HW_t, dst_t, d_t = sig.args
            s_v, a_v, W_v, taps_v, m_v, mo_v, HW_v, dst_v, d_v = args
            value = context.get_value_type(s_t.dtype)
            vector = ir.VectorType(value, LANES)
            align = s_t.dtype.bitwidth // 8
            index = lambda v, t: context.cast(builder, v, t, types.intp)
            a_i, W_i, mo_i, HW_i, d_i = (index(v, t) for v, t in ((a_v, a_t), (W_v, W_t), (mo_v, mo_t),
                                                               (HW_v, HW_t), (d_v, d_t)))

            def at(base, rows, plus):                  # base + rows*W + plus
                return builder.add(builder.add(base, builder.mul(W_i, _int(rows))), _int(plus))

            def load(arr, arr_t, i):
                at_i = _element(context, builder, arr_t, arr, types.intp, i, vector)
                return builder.load(at_i, align=align)

            fma = _fma(builder, vector, s_t.dtype.bitwidth)
            w = [_broadcast(builder, builder.extract_value(taps_v, k), vector) for k in range(9)]
            # rows[r][j] = s[a + r*W + j : ... + LANES]: input row r of the step, shifted by tap column j
            rows = [[load(s_v, s_t, at(a_i, r, j)) for j in range(3)] for r in range(ROWS + 2)]
            if masked:
                m0 = load(m_v, m_t, mo_i)
                m2 = load(m_v, m_t, builder.add(mo_i, builder.mul(HW_i, _int(2))))
            for out in range(ROWS):
                col = []                   # col[j] = sum_i w[i, j] * (input row out + i, shifted by j)
                for j in range(3):
                    acc = builder.fmul(w[j], rows[out][j])
                    acc = fma(w[3 + j], rows[out + 1][j], acc)
                    col.append(fma(w[6 + j], rows[out + 2][j], acc))
                if masked:
                    y = fma(m2, col[2], fma(m0, col[0], col[1]))
                else:
                    y = builder.fadd(builder.fadd(col[0], col[1]), col[2])
                out_at = _element(context, builder, dst_t, dst_v, types.intp, at(d_i, out, 0), vector)
                builder.store(y, out_at, align=align)
            return context.get_dummy_value()

        return sig, codegen

    return step


def _fma(builder, vector, bits):
    """fma(a, b, c) = a*b + c on vectors, rounded once (LLVM's llvm.fma)."""
    name = f"llvm.fma.v{LANES}f{bits}"
    fn = builder.module.globals.get(name)
    if fn is None:
        fn = ir.Function(builder.module, ir.FunctionType(vector, [vector] * 3), name)
    return lambda a, b, c: builder.call(fn, [a, b, c])


def _int(k):
    return ir.Constant(ir.IntType(64), k)


def _broadcast(builder, value, vector):
    """A vector with ``value`` in every lane."""
    one = builder.insert_element(ir.Constant(vector, ir.Undefined), value, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(one, ir.Constant(vector, ir.Undefined),
                                  ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES))


stencil3x3 = _stencil3x3(masked=True)
stencil3x3.__doc__ = """For r < ROWS and c < LANES:

    dst[d + r*W + c] = sum_j m_j * sum_i taps[3*i + j] * s[a + (r + i)*W + c + j]

with ``m_1 = 1`` and ``m_j = masks[j*HW + mo + c]`` for j = 0, 2, the same for every row r (a
row's masks repeat every W values).  s, masks, dst: 1-D C-contiguous arrays of one float dtype;
taps: a 9-tuple of that dtype, row by row; a, W, mo, HW, d: integers.  Unchecked: the caller keeps
every index in bounds."""
stencil3x3_inner = _stencil3x3(masked=False)
stencil3x3_inner.__doc__ = """``stencil3x3`` with every m_j = 1 (masks, mo and HW are not read)."""


def _phase_taps(k):
    """``phase_taps3`` or ``phase_taps5``: one vector of stride-2 outputs from the phase planes."""
    p = k // 2

    @intrinsic
    def step(typingctx, ee, eo, oe, oo, t, Wo, taps, ml, mr, dst, d):
        if not (_typed_right((ee, eo, oe, oo, ml, mr, dst), (t, Wo, d)) and isinstance(taps, types.UniTuple)
                and taps.count == k * k and taps.dtype == ee.dtype):
            return None
        sig = types.void(ee, eo, oe, oo, t, Wo, taps, ml, mr, dst, d)

        def codegen(context, builder, sig, args):
            ee_t, _, _, _, t_t, Wo_t, _, ml_t, mr_t, dst_t, d_t = sig.args
            planes, (t_v, Wo_v, taps_v, ml_v, mr_v, dst_v, d_v) = args[:4], args[4:]
            vector = ir.VectorType(context.get_value_type(ee_t.dtype), LANES)
            align = ee_t.dtype.bitwidth // 8
            index = lambda v, ty: context.cast(builder, v, ty, types.intp)
            t_i, Wo_i, d_i = index(t_v, t_t), index(Wo_v, Wo_t), index(d_v, d_t)
            load = lambda arr, i: builder.load(_element(context, builder, ee_t, arr, types.intp, i, vector),
                                               align=align)
            fma = _fma(builder, vector, ee_t.dtype.bitwidth)
            groups = {}                    # dc -> running sum of the taps at column offset dc
            for i in range(k):
                for j in range(k):
                    plane = planes[2 * ((i - p) % 2) + (j - p) % 2]          # ee, eo, oe, oo
                    window, dc = (i - p) // 2 + 1, (j - p) // 2
                    at = builder.add(builder.add(t_i, builder.mul(Wo_i, _int(window))), _int(1 + dc))
                    w = _broadcast(builder, builder.extract_value(taps_v, k * i + j), vector)
                    x = load(plane, at)
                    groups[dc] = fma(w, x, groups[dc]) if dc in groups else builder.fmul(w, x)
            y = fma(load(ml_v, t_i), groups[-1], groups[0])
            if 1 in groups:
                y = fma(load(mr_v, t_i), groups[1], y)
            builder.store(y, _element(context, builder, dst_t, dst_v, types.intp, d_i, vector), align=align)
            return context.get_dummy_value()

        return sig, codegen

    return step


phase_taps3, phase_taps5 = _phase_taps(3), _phase_taps(5)
phase_taps5.__doc__ = """For c < LANES, the stride-2 5x5 output at phase-plane position t + c
(``depthwise_s2.py``, (2)): dst[d + c] = ml[t + c] * left + mid + mr[t + c] * right, where
left, mid and right sum ``taps[5*i + j] * plane[t + c + window*Wo + 1 + dc]`` over the taps
(i, j) at column offset dc = -1, 0 and 1, plane and window given by the tap's row and column
parity and offset.  ee, eo, oe, oo, ml, mr, dst: 1-D C-contiguous arrays of one float dtype;
taps: a 25-tuple of that dtype, row by row; t, Wo, d: integers.  Unchecked: the caller keeps
every index in bounds."""
phase_taps3.__doc__ = """``phase_taps5`` for a 3x3 kernel (9 taps; no tap at column offset +1, so mr is
not read)."""
