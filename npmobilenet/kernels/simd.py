"""Two explicit vector operations, for the loops LLVM will not vectorise by itself.

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
"""
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

LANES = 8       # 8 float32 = one 256-bit register (two for float64)


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
