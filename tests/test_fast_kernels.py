"""The performance machinery of the fast path: fused elementwise kernels equal to their NumPy
expressions bit for bit, the pointwise-conv products, the thread pool and the buffer pool.

Every fast path here has a plain NumPy twin; these tests pin the fast one to it exactly (or, for
products summed in another order, to float rounding), including NaN, -0.0 and the kinks, and check
that no result depends on the thread count.
"""
import os
import threading
import time

import numpy as np
import pytest

from npmobilenet.kernels import buffers, threads
from npmobilenet.ops import activations as A, backend
from npmobilenet.ops.batchnorm import BatchNorm2d, batchnorm_backward, batchnorm_forward
from npmobilenet.ops.conv import conv2d_backward, conv2d_forward

FLOATS = (np.float32, np.float64)


def _both(fn):
    """fn() on the fast path and on the plain path."""
    fast = fn()
    with backend.plain():
        plain = fn()
    return fast, plain


def _special(dtype, n=299989, seed=0):
    """Gaussian values (spread 4) plus NaN, +-inf, +-0 and every activation kink, exactly."""
    x = 4 * np.random.default_rng(seed).standard_normal(n)
    extra = [np.nan, np.inf, -np.inf, 0.0, -0.0, 3.0, -3.0, 6.0, -6.0, 1e-30, -1e-30]
    return np.concatenate([x, extra]).astype(dtype).reshape(-1, 100)   # 300000 values: parallel parts


def _same(a, b):
    """Bitwise equality, NaN included (payloads aside), and the same signs of zero."""
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a, b)
    assert np.array_equal(np.signbit(a), np.signbit(b))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("fwd,bwd", [(A.relu_forward, A.relu_backward), (A.relu6_forward, A.relu6_backward),
                                     (A.hardsigmoid_forward, A.hardsigmoid_backward),
                                     (A.hardswish_forward, A.hardswish_backward)])
def test_activation_fast_equals_plain_bitwise(fwd, bwd, dtype):
    x = _special(dtype)
    dy = np.random.default_rng(1).standard_normal(x.shape).astype(dtype)
    with np.errstate(invalid="ignore"):
        (yf, cf), (yp, cp) = _both(lambda: fwd(x))
        _same(yf, yp)
        if isinstance(cf, tuple):                       # (mask, dtype)
            np.testing.assert_array_equal(cf[0], cp[0])
        if fwd is A.hardswish_forward:                  # its slope at NaN: the kernel says 0, the
            cf = np.where(np.isnan(cf), cf.dtype.type(0.5), cf)   # NumPy expression NaN: compare elsewhere
        _same(*_both(lambda: bwd(dy, cf)))


def test_activation_fast_path_takes_non_contiguous_input():
    x = np.random.default_rng(2).standard_normal((6, 8)).astype(np.float32).T
    for fwd in (A.relu_forward, A.relu6_forward, A.hardswish_forward):
        yf, yp = _both(lambda: fwd(x)[0])
        _same(yf, yp)


@pytest.mark.parametrize("dtype", FLOATS)
def test_batchnorm_eval_fast_equals_plain_bitwise_and_backward_after_it(dtype):
    rng = np.random.default_rng(3)
    x = (3 * rng.standard_normal((3, 5, 6, 7)) + 1).astype(dtype)
    g, b = rng.standard_normal(5).astype(dtype), rng.standard_normal(5).astype(dtype)
    rm, rv = rng.standard_normal(5).astype(dtype), rng.uniform(0.5, 2, 5).astype(dtype)
    (yf, cf), (yp, cp) = _both(lambda: batchnorm_forward(x, g, b, 1e-5, False, rm, rv))
    _same(yf, yp)
    assert cf.xhat is None and cf.x is not None         # the fast eval path keeps x, not xhat
    dy = rng.standard_normal(x.shape).astype(dtype)
    for a, c in zip(batchnorm_backward(dy, cf), batchnorm_backward(dy, cp)):
        _same(a, c)


@pytest.mark.parametrize("shape", [(16, 40, 1, 1), (5, 24, 3, 3), (4, 6, 9, 9), (1, 12, 5, 5), (33, 70, 1, 1)])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_pointwise_conv_fast_equals_plain(shape, dtype, tol):
    """1x1 maps (one product for the batch), few pixels (dW over all N*L pixels at once) and more
    pixels (dW per image, summed in chunks)."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((7, shape[1], 1, 1)).astype(dtype)
    b = rng.standard_normal(7).astype(dtype)

    def run():
        y, cache = conv2d_forward(x, w, b)
        return (y,) + conv2d_backward(np.cos(y), cache)
    for f, p in zip(*_both(run)):
        assert f.dtype == dtype and f.shape == p.shape
        np.testing.assert_allclose(f, p, rtol=tol, atol=tol * np.abs(p).max())


def test_pointwise_dw_needs_no_per_image_stack():
    """dW of a 1x1 conv on 1x1 maps is one product: no (N, O, C) intermediate."""
    import tracemalloc
    N, C, O = 64, 256, 512
    rng = np.random.default_rng(5)
    x = rng.standard_normal((N, C, 1, 1), dtype=np.float32)
    w = rng.standard_normal((O, C, 1, 1), dtype=np.float32)
    y, cache = conv2d_forward(x, w)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    conv2d_backward(dy, cache)                         # warm up
    tracemalloc.start()
    try:
        conv2d_backward(dy, cache)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < N * O * C * 4 / 8


def test_thread_count_does_not_change_results():
    most = 2
    rng = np.random.default_rng(6)
    x = rng.standard_normal((8, 64, 24, 24)).astype(np.float32)   # above every parallel threshold
    w1 = rng.standard_normal((96, 64, 1, 1)).astype(np.float32)
    xs = rng.standard_normal((64, 512, 1, 1)).astype(np.float32)
    ws = rng.standard_normal((1024, 512, 1, 1)).astype(np.float32)
    results, old = [], threads.num_threads()
    try:
        for n in (1, most):
            threads.set_num_threads(n)
            out = []
            for xx, ww in ((x, w1), (xs, ws)):
                y, cache = conv2d_forward(xx, ww)
                out += [y, *conv2d_backward(np.cos(y), cache)[:2]]
            xd = np.ascontiguousarray(x[:, :, :2, :2] + 0)            # 8x64x2x2: the small-map depthwise
            y, cache = conv2d_forward(xd, w1[:64, :3].reshape(64, 1, 3, 1).repeat(3, axis=3), None, 1, None, 64)
            out += [y, *conv2d_backward(np.cos(y), cache)[:2]]
            bn = BatchNorm2d(64)
            y = bn(x)
            out += [y, bn.backward(np.cos(y)), bn.grads()["weight"].copy()]
            for fwd, bwd in ((A.relu6_forward, A.relu6_backward), (A.hardswish_forward, A.hardswish_backward)):
                y, c = fwd(x)
                out += [y, bwd(np.cos(y), c)]
            results.append([a.copy() for a in out])
    finally:
        threads.set_num_threads(old)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


# ---- the thread pool --------------------------------------------------------------------------
def test_run_parts_does_every_part_once_and_the_caller_works():
    seen, lock = [], threading.Lock()

    def part(t):
        with lock:
            seen.append((t, threading.get_ident()))
    threads.run_parts(part, 40, threads=2)
    assert sorted(t for t, _ in seen) == list(range(40))
    threads.run_parts(part, 3, threads=1)
    assert all(ident == threading.get_ident() for _, ident in seen[-3:])


def test_run_parts_raises_a_part_error_in_the_caller():
    def part(t):
        if t == 5:
            raise ZeroDivisionError("part 5")
    with pytest.raises(ZeroDivisionError, match="part 5"):
        threads.run_parts(part, 12, threads=2)


def test_run_parts_waits_only_for_parts_started_and_ignores_a_finished_job():
    # A first call holds both of its threads, the caller and the pool thread, each in a part.
    # Its job is ahead in the pool thread's queue, so a second call's job reaches that thread
    # only once it is free: the second caller must do all its parts itself and return without
    # waiting for it.  Freed, the pool thread finds the second job done and takes nothing.
    release, seen = threading.Event(), []
    first = threading.Thread(target=threads.run_parts, args=(lambda t: release.wait(10), 2),
                             kwargs={"threads": 2})
    first.start()
    time.sleep(0.05)
    second = threading.Thread(target=threads.run_parts,
                              args=(lambda t: seen.append((t, threading.get_ident())), 6),
                              kwargs={"threads": 2})
    second.start()
    second.join(5)
    assert not second.is_alive(), "the second call waited for the busy pool thread"
    assert sorted(t for t, _ in seen) == list(range(6))
    assert {i for _, i in seen} == {second.ident}
    release.set()
    first.join(10)
    assert not first.is_alive()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_run_parts_after_fork_starts_its_own_pool_thread():
    threads.run_parts(lambda t: None, 4, threads=2)       # the parent has a pool thread now
    pid = os.fork()
    if pid == 0:                                           # the child: none of the parent's threads
        code = 3
        try:
            seen = []

            def part(t):
                time.sleep(0.002)                          # releases the GIL: the pool thread gets parts
                seen.append((t, threading.get_ident()))
            threads.run_parts(part, 16, threads=2)
            idents = {i for _, i in seen}
            code = 0 if sorted(t for t, _ in seen) == list(range(16)) and len(idents) == 2 else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child did not run its parts on two threads"


@pytest.mark.parametrize("a_shape,b_shape", [((96, 64), (8, 64, 300)), ((96, 64), (1, 64, 3000)),
                                             ((3000, 64), (64, 96)),
                                             ((16, 960), (960, 1280)),       # by columns: b large
                                             ((40, 300), (1, 300, 2000)),    # the same, b stacked
                                             ((1000, 16), (16, 1280))])      # by rows: b small
@pytest.mark.parametrize("b_view", ["contiguous", "transposed"])
def test_parallel_matmul_equals_numpy(a_shape, b_shape, b_view):
    rng = np.random.default_rng(7)
    a = rng.standard_normal(a_shape[::-1]).astype(np.float32).T     # a transposed view, as W.T
    b = rng.standard_normal(b_shape).astype(np.float32)
    if b_view == "transposed":                                      # as the head's weight, w.T
        b = np.ascontiguousarray(b.swapaxes(-1, -2)).swapaxes(-1, -2)
    out = np.empty(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (a.shape[-2], b.shape[-1]), np.float32)
    threads.matmul(a, b, out)
    np.testing.assert_allclose(out, np.matmul(a, b), rtol=1e-5, atol=1e-4)


# ---- the buffer pool --------------------------------------------------------------------------
def test_buffers_reuse_only_arrays_nobody_holds():
    shape = (4, 256, 64)                                # 256 KiB of float32: pooled
    a = buffers.empty(shape, np.float32)
    a_id = id(a)
    assert id(buffers.empty(shape, np.float32)) != a_id  # a is still held
    view = a[1:]
    del a
    assert id(buffers.empty(shape, np.float32)) != a_id  # a view still refers to it
    del view
    b = buffers.empty(shape, np.float32)
    assert id(b) == a_id                                 # free again: reused
    assert buffers.empty(shape, np.float64).dtype == np.float64
    assert buffers.empty((3, 4), np.float32).shape == (3, 4)   # small: never pooled


def test_buffers_are_never_handed_out_twice_across_threads():
    shape, held, lock = (1 << 17,), [], threading.Lock()

    def take():
        for _ in range(20):
            a = buffers.empty(shape, np.float32)
            with lock:
                held.append(a)
    ts = [threading.Thread(target=take) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len({id(a) for a in held}) == 80           # all held at once: 80 distinct arrays


# ---- depthwise on small maps (channels innermost) ----------------------------------------------
SMALL_DW = [((40, 96, 1, 1), 5, 1, None), ((40, 96, 1, 1), 3, 2, None), ((9, 24, 2, 2), 3, 1, None),
            ((9, 24, 2, 2), 5, 2, None), ((4, 12, 3, 3), 3, 2, 0), ((3, 10, 4, 4), 5, 1, None),
            ((3, 10, 2, 3), (3, 5), (2, 1), (1, 2)), ((1, 7, 4, 4), 3, 1, None), ((5, 16, 7, 7), 5, 1, None),
            ((4, 8, 8, 8), 3, 2, None), ((2, 6, 7, 7), 3, 2, None)]


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("shape,k,s,p", SMALL_DW)
def test_depthwise_on_small_maps_equals_plain(shape, k, s, p, dtype, tol):
    from npmobilenet.kernels import depthwise_small
    kh, kw = (k, k) if isinstance(k, int) else k
    rng = np.random.default_rng(8)
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((shape[1], 1, kh, kw)).astype(dtype)
    st, pd = (s, s) if isinstance(s, int) else s, (kh // 2, kw // 2) if p is None else \
        ((p, p) if isinstance(p, int) else p)
    with backend.plain():           # the reference: the plain path's y, dx, dw
        y, cache = conv2d_forward(x, w, None, st, pd, shape[1])
        want = (y,) + conv2d_backward(np.cos(y), cache)[:2]
    got = (depthwise_small.forward_fast(x, w, st, pd, y.shape[2:]),) + \
        depthwise_small.backward_fast(np.cos(y), x, w, st, pd)   # this path, whatever dispatch picks
    for f, r in zip(got, want):
        assert f.dtype == dtype and f.shape == r.shape and f.flags.c_contiguous
        np.testing.assert_allclose(f, r, rtol=tol, atol=tol * np.abs(r).max())


def test_depthwise_small_maps_path_is_not_taken_for_a_multiplier():
    from npmobilenet.kernels import depthwise_small
    assert not depthwise_small.applies((2, 4, 2, 2), (8, 1, 3, 3))
    assert not depthwise_small.applies((2, 4, 9, 8), (4, 1, 3, 3))   # 72 pixels: the plane path


@pytest.mark.parametrize("shape,fwd,bwd", [((128, 8, 1, 1), True, True), ((16, 8, 4, 4), True, True),
                                           ((16, 8, 7, 7), False, True), ((16, 8, 8, 8), False, False),
                                           ((2, 8, 7, 7), True, True), ((3, 8, 8, 8), True, True)])
def test_depthwise_small_maps_path_is_taken_where_measured_faster(shape, fwd, bwd):
    """The rule of depthwise_small's docstring: at batch >= 4, 4x4 maps forward and 7x7 backward."""
    from npmobilenet.kernels import depthwise_small
    w_shape = (shape[1], 1, 3, 3)
    assert depthwise_small.applies(shape, w_shape) is fwd
    assert depthwise_small.applies(shape, w_shape, backward=True) is bwd


# ---- stride-1 depthwise at the input's row pitch -------------------------------------------------
S1_DW = [((2, 3, 16, 16), 3), ((3, 4, 17, 23), 3), ((1, 5, 40, 3), 3), ((2, 3, 3, 90), 3),
         ((2, 3, 16, 19), 5), ((1, 4, 5, 64), 5), ((2, 2, 64, 5), 5), ((1, 2, 56, 56), 5), ((2, 2, 10, 10), 5),
         ((2, 2, 3, 3), 3), ((2, 2, 5, 5), 5), ((3, 2, 12, 12), 5), ((2, 3, 14, 14), 3),
         # 3x3 maps >= MIN_STEP_WIDTH wide: the steps of several rows (one block and a row left,
         # exactly one block, rows a whole number of steps, a last step over columns already written,
         # the narrowest such map, a block too few rows)
         ((2, 3, 9, 33), 3), ((1, 2, 8, 40), 3), ((2, 2, 17, 37), 3), ((1, 2, 56, 56), 3),
         ((1, 3, 12, 32), 3), ((2, 2, 7, 64), 3), ((1, 2, 30, 112), 3)]


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("shape,k", S1_DW)
def test_depthwise_stride1_kernel_equals_plain(shape, k, dtype, tol):
    """kernels/depthwise_s1.py called directly (whatever dispatch picks), against the plain path,
    on maps as narrow and as flat as the kernel: every edge and corner case of its masks."""
    from npmobilenet.kernels import depthwise_s1
    rng = np.random.default_rng(11)
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((shape[1], 1, k, k)).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    with backend.plain():
        y, cache = conv2d_forward(x, w, None, 1, k // 2, shape[1])
        want = (y,) + conv2d_backward(dy, cache)[:2]
    got = (depthwise_s1.forward_fast(x, w),) + depthwise_s1.backward_fast(dy, x, w)
    for f, r in zip(got, want):
        assert f.dtype == dtype and f.shape == r.shape and f.flags.c_contiguous
        np.testing.assert_allclose(f, r, rtol=tol, atol=tol * np.abs(r).max())


@pytest.mark.parametrize("H,W,steps", [(8, 32, True), (9, 33, True), (56, 56, True), (7, 64, False),
                                         (56, 31, False), (112, 28, False)])
def test_depthwise_stride1_steps_of_several_rows_are_taken_where_they_apply(H, W, steps):
    """The rule of depthwise_s1's docstring: 3x3 maps at least MIN_STEP_WIDTH wide with a block
    of ROWS rows between rows 2 and H - 3; never 5x5."""
    from npmobilenet.kernels import depthwise_s1
    from npmobilenet.kernels.simd import ROWS
    assert ROWS == 4 and depthwise_s1.MIN_STEP_WIDTH == 32      # the thresholds the cases sit on
    assert depthwise_s1.steps_apply(3, 3, H, W) is steps
    assert depthwise_s1.steps_apply(5, 5, H, W) is False


def test_depthwise_stride1_kernel_does_not_depend_on_the_thread_count():
    from npmobilenet.kernels import depthwise_s1
    rng = np.random.default_rng(12)
    x = rng.standard_normal((4, 48, 32, 32)).astype(np.float32)       # large enough to run in parallel
    w = rng.standard_normal((48, 1, 5, 5)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    before = threads.num_threads()
    try:
        threads.set_num_threads(1)
        one = (depthwise_s1.forward_fast(x, w).copy(),) + tuple(a.copy() for a in depthwise_s1.backward_fast(dy, x, w))
        threads.set_num_threads(2)
        two = (depthwise_s1.forward_fast(x, w),) + depthwise_s1.backward_fast(dy, x, w)
    finally:
        threads.set_num_threads(before)
    for a, b in zip(one, two):
        _same(a, b)


@pytest.mark.parametrize("x_shape,w_shape,stride,padding,taken", [
    ((16, 72, 56, 56), (72, 1, 3, 3), (1, 1), (1, 1), True),
    ((1, 120, 12, 12), (120, 1, 5, 5), (1, 1), (2, 2), True),     # 144 pixels: the least
    ((16, 240, 11, 13), (240, 1, 3, 3), (1, 1), (1, 1), False),  # 143: the phase planes
    ((16, 672, 14, 14), (672, 1, 5, 5), (1, 1), (2, 2), True),    # V3's 14x14 5x5 layers
    ((16, 960, 7, 7), (960, 1, 5, 5), (1, 1), (2, 2), False),    # 49: a small map
    ((16, 72, 56, 56), (72, 1, 3, 3), (2, 2), (1, 1), False),    # stride 2
    ((16, 72, 56, 56), (144, 1, 3, 3), (1, 1), (1, 1), False),   # channel multiplier 2
    ((16, 72, 56, 56), (72, 1, 3, 3), (1, 1), (0, 0), False),    # not "same" padding
    ((16, 72, 56, 56), (72, 1, 7, 7), (1, 1), (3, 3), False),    # 7x7: not written out
    ((16, 72, 56, 56), (72, 1, 3, 5), (1, 1), (1, 2), False),    # not square
])
def test_depthwise_stride1_path_is_taken_where_it_applies(x_shape, w_shape, stride, padding, taken):
    """The rule of depthwise_s1's docstring: stride 1, same padding, 3x3 or 5x5, multiplier 1, maps
    of >= 12x12 pixels."""
    from npmobilenet.kernels import depthwise_s1
    assert depthwise_s1.applies(x_shape, w_shape, stride, padding) is taken


# ---- stride-2 depthwise forward, four phase planes ------------------------------------------------
S2_DW = [((2, 3, 14, 14), 5), ((2, 3, 14, 14), 3), ((3, 4, 13, 10), 3), ((2, 3, 9, 12), 5),
         ((5, 2, 2, 2), 3), ((5, 2, 2, 2), 5), ((4, 2, 3, 4), 5), ((1, 3, 56, 56), 5), ((2, 2, 7, 56), 3),
         ((2, 2, 40, 6), 5), ((3, 2, 1, 4), 5), ((2, 2, 1, 56), 3), ((2, 3, 13, 13), 5), ((3, 2, 8, 7), 3),
         ((2, 3, 6, 1), 5), ((2, 2, 5, 17), 3), ((1, 2, 30, 112), 3), ((4, 2, 3, 3), 5), ((1, 1, 9, 11), 5),
         # outputs of exactly LANES pixels, two vectors, one pixel more (a last vector over pixels already
         # written), one fewer (the loop and copy)
         ((3, 2, 4, 8), 3), ((3, 2, 4, 8), 5), ((3, 2, 4, 16), 5), ((2, 2, 6, 6), 5), ((2, 3, 2, 14), 3),
         ((2, 3, 2, 14), 5)]


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("shape,k", S2_DW)
def test_depthwise_stride2_kernel_equals_plain(shape, k, dtype, tol):
    """kernels/depthwise_s2.py called directly (whatever dispatch picks), against the plain path:
    odd and even heights and widths, maps one to four columns wide (the output one and two wide:
    every tap at a column offset of -1 or +1 masked), rows of more than one vector (17, 56, 112
    columns), tall maps and maps one row high.  The planes before the last of x are split by
    whole vectors, the last one value at a time (a single plane: that path alone)."""
    from npmobilenet.kernels import depthwise_s2
    rng = np.random.default_rng(13)
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((shape[1], 1, k, k)).astype(dtype)
    with backend.plain():
        want, _ = conv2d_forward(x, w, None, 2, k // 2, shape[1])
    got = depthwise_s2.forward_fast(x, w)
    assert got.dtype == dtype and got.shape == want.shape and got.flags.c_contiguous
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("shape,k", S2_DW)
def test_depthwise_stride2_backward_equals_plain(shape, k, dtype, tol):
    """depthwise_s2.backward_fast called directly, against the plain path's dx and dw, on the
    forward's shapes (the rows written value by value near each plane's end included)."""
    from npmobilenet.kernels import depthwise_s2
    rng = np.random.default_rng(21)
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((shape[1], 1, k, k)).astype(dtype)
    with backend.plain():
        y, cache = conv2d_forward(x, w, None, 2, k // 2, shape[1])
        dy = rng.standard_normal(y.shape).astype(dtype)
        want_dx, want_dw, _ = conv2d_backward(dy, cache)
    dx, dw = depthwise_s2.backward_fast(dy, x, w)
    assert dx.dtype == dw.dtype == dtype and dx.shape == x.shape and dw.shape == w.shape
    np.testing.assert_allclose(dx, want_dx, rtol=tol, atol=tol * np.abs(want_dx).max())
    np.testing.assert_allclose(dw, want_dw, rtol=tol, atol=tol * np.abs(want_dw).max())


@pytest.mark.parametrize("shape", [(1, 1, 14, 14), (2, 3, 9, 12), (1, 2, 1, 1), (3, 2, 1, 7), (2, 1, 6, 1),
                                   (1, 1, 7, 56), (2, 2, 5, 17), (1, 1, 3, 112)])
def test_merge_phases_inverts_split_phases_and_writes_only_its_planes(shape):
    """split then merge gives each plane back exactly; values around the planes it writes (the
    other channels' planes, written by other tasks at the same time) are never touched."""
    from npmobilenet.kernels import depthwise_s2
    from npmobilenet.kernels.simd import LANES
    N, C, H, W = shape
    Ho, Wo = (H + 1) // 2, (W + 1) // 2
    plen, b0 = (Ho + 1) * Wo + 1, Wo + 1
    x = np.random.default_rng(22).standard_normal(N * C * H * W + 4 * LANES)  # room for the reads
    size = b0 + N * plen + 2 * LANES
    planes = [np.zeros(size) for _ in range(4)]
    depthwise_s2.split_phases(x, 0, C * H * W, N, H, W, *planes, b0, plen)     # channel 0's planes
    dst = np.full(N * C * H * W, 7.5)
    depthwise_s2.merge_phases(*planes, b0, plen, N, H, W, dst, 0, C * H * W)
    got, want = dst.reshape(N, C, H * W), x[:N * C * H * W].reshape(N, C, H * W)
    _same(got[:, 0], want[:, 0])
    assert (got[:, 1:] == 7.5).all()


@pytest.mark.parametrize("shape", [(3, 14, 14), (2, 9, 12), (3, 1, 1), (2, 1, 7), (2, 6, 1), (2, 7, 56),
                                   (2, 5, 17), (1, 3, 112), (4, 8, 8), (2, 16, 16), (2, 18, 18), (3, 2, 3)])
def test_split_phases_gives_the_strided_slices_and_zero_separators_on_reused_buffers(shape):
    """Each plane's four phase planes are x[0::2, 0::2], x[0::2, 1::2], x[1::2, 0::2] and
    x[1::2, 1::2] (0 past the last row or column) at pitch Wo, with only zeros before the first
    and between the planes: also in buffers that an earlier split of other values wrote, as the
    tasks of a kernel reuse them (only the values a split's last row spilled are zeroed again)."""
    from npmobilenet.kernels import depthwise_s2
    from npmobilenet.kernels.simd import LANES
    N, H, W = shape
    Ho, Wo = (H + 1) // 2, (W + 1) // 2
    plen, b0 = (Ho + 1) * Wo + 1, Wo + 1
    size = b0 + N * plen + 2 * LANES
    rng = np.random.default_rng(23)
    earlier, x = (rng.standard_normal(N * H * W + 4 * LANES) + 3 for _ in range(2))   # no zeros
    planes = [np.zeros(size) for _ in range(4)]
    depthwise_s2.split_phases(earlier, 0, H * W, N, H, W, *planes, b0, plen)
    depthwise_s2.split_phases(x, 0, H * W, N, H, W, *planes, b0, plen)
    padded = np.zeros((N, 2 * Ho, 2 * Wo))
    padded[:, :H, :W] = x[:N * H * W].reshape(N, H, W)
    for got, (r, c) in zip(planes, [(0, 0), (0, 1), (1, 0), (1, 1)]):
        want = np.zeros(b0 + N * plen)
        for n in range(N):
            want[b0 + n * plen:][:Ho * Wo] = padded[n, r::2, c::2].ravel()
        _same(got[:b0 + N * plen], want)


@pytest.mark.parametrize("k", [3, 5])
def test_depthwise_stride2_kernel_stacks_images_in_blocks(monkeypatch, k):
    """Blocks of 3 images for a batch of 7 (3, 3, then 1): each image reads only its own rows and
    the zero rows around them, never the image stacked before or after it, nor what an earlier
    block left in the buffers; forward and backward (where the last block's dy, one image, sits
    where the full blocks' images were)."""
    from npmobilenet.kernels import depthwise_s2
    shape = (7, 4, 10, 8)
    plen = (shape[2] // 2 + 1) * shape[3] // 2 + 1
    monkeypatch.setattr(depthwise_s2, "BLOCK", 3 * plen + 1)
    assert depthwise_s2._geometry(shape[0], shape[2], shape[3])[2:] == (plen, 3)
    rng = np.random.default_rng(14)
    x = rng.standard_normal(shape) + 10.0      # large values: a stray read would show
    w = rng.standard_normal((shape[1], 1, k, k))
    with backend.plain():
        want, cache = conv2d_forward(x, w, None, 2, k // 2, shape[1])
        dy = rng.standard_normal(want.shape) - 3.0       # and for the backward, a stray dy
        want_dx, want_dw, _ = conv2d_backward(dy, cache)
    np.testing.assert_allclose(depthwise_s2.forward_fast(x, w), want, rtol=1e-12, atol=1e-12 * np.abs(want).max())
    dx, dw = depthwise_s2.backward_fast(dy, x, w)
    np.testing.assert_allclose(dx, want_dx, rtol=1e-12, atol=1e-12 * np.abs(want_dx).max())
    np.testing.assert_allclose(dw, want_dw, rtol=1e-12, atol=1e-12 * np.abs(want_dw).max())


@pytest.mark.parametrize("shape,k", [((4, 3, 14, 14), 5), ((4, 3, 9, 7), 3), ((3, 2, 6, 6), 5)])
def test_depthwise_stride2_kernel_keeps_a_nan_in_its_own_image(shape, k):
    """A NaN at an image's first pixel or at its last (the value that the corner tap, dr = dc = -1,
    of the next image's first output pixel would reach without the separator's extra zero): every
    other image's output stays equal to the plain path's."""
    from npmobilenet.kernels import depthwise_s2
    rng = np.random.default_rng(16)
    x = rng.standard_normal(shape)
    w = rng.standard_normal((shape[1], 1, k, k))
    with backend.plain():
        want, _ = conv2d_forward(x, w, None, 2, k // 2, shape[1])
    for pixel in ((0, 0), (-1, -1)):
        bad = x.copy()
        bad[1, :, pixel[0], pixel[1]] = np.nan
        got = depthwise_s2.forward_fast(bad, w)
        assert np.isnan(got[1]).any()
        others = [0] + list(range(2, shape[0]))
        np.testing.assert_allclose(got[others], want[others], rtol=1e-12, atol=1e-12 * np.abs(want).max())


@pytest.mark.parametrize("shape,k", [((4, 3, 14, 14), 5), ((4, 3, 9, 7), 3)])
def test_depthwise_stride2_backward_keeps_a_nan_in_its_own_image(shape, k):
    """A NaN in one image's dy at its first or last pixel: the other images' dx stay equal to
    the plain path's (dw, a sum over all images, is NaN)."""
    from npmobilenet.kernels import depthwise_s2
    rng = np.random.default_rng(23)
    x = rng.standard_normal(shape)
    w = rng.standard_normal((shape[1], 1, k, k))
    with backend.plain():
        y, cache = conv2d_forward(x, w, None, 2, k // 2, shape[1])
        dy = rng.standard_normal(y.shape)
        want, _, _ = conv2d_backward(dy, cache)
    for pixel in ((0, 0), (-1, -1)):
        bad = dy.copy()
        bad[1, :, pixel[0], pixel[1]] = np.nan
        dx, dw = depthwise_s2.backward_fast(bad, x, w)
        assert np.isnan(dx[1]).any() and np.isnan(dw).any()
        others = [0] + list(range(2, shape[0]))
        np.testing.assert_allclose(dx[others], want[others], rtol=1e-12, atol=1e-12 * np.abs(want).max())


def test_depthwise_stride2_kernel_does_not_depend_on_the_thread_count():
    from npmobilenet.kernels import depthwise_s2
    rng = np.random.default_rng(15)
    x = rng.standard_normal((8, 96, 28, 28)).astype(np.float32)       # large enough to run in parallel
    w = rng.standard_normal((96, 1, 5, 5)).astype(np.float32)
    dy = rng.standard_normal((8, 96, 14, 14)).astype(np.float32)
    before = threads.num_threads()
    try:
        threads.set_num_threads(1)
        one = depthwise_s2.forward_fast(x, w).copy()
        one_dx, one_dw = (a.copy() for a in depthwise_s2.backward_fast(dy, x, w))
        threads.set_num_threads(2)
        two = depthwise_s2.forward_fast(x, w)
        two_dx, two_dw = depthwise_s2.backward_fast(dy, x, w)
    finally:
        threads.set_num_threads(before)
    _same(one, two)
    _same(one_dx, two_dx)
    _same(one_dw, two_dw)


@pytest.mark.parametrize("x_shape,w_shape,stride,padding,taken", [
    ((16, 672, 14, 14), (672, 1, 5, 5), (2, 2), (2, 2), True),
    ((16, 144, 56, 56), (144, 1, 3, 3), (2, 2), (1, 1), True),
    ((16, 96, 112, 112), (96, 1, 3, 3), (2, 2), (1, 1), True),
    ((16, 8, 13, 2), (8, 1, 3, 3), (2, 2), (1, 1), True),         # odd height, two columns
    ((16, 8, 14, 13), (8, 1, 3, 3), (2, 2), (1, 1), True),        # odd width
    ((16, 72, 56, 56), (72, 1, 3, 3), (1, 1), (1, 1), False),     # stride 1
    ((16, 72, 28, 28), (144, 1, 3, 3), (2, 2), (1, 1), False),    # channel multiplier 2
    ((16, 72, 28, 28), (72, 1, 3, 3), (2, 2), (0, 0), False),     # not "same" padding
    ((16, 72, 28, 28), (72, 1, 7, 7), (2, 2), (3, 3), False),     # 7x7: not written out
    ((16, 72, 28, 28), (72, 1, 3, 5), (2, 2), (1, 2), False),     # not square
])
def test_depthwise_stride2_path_is_taken_where_it_applies(x_shape, w_shape, stride, padding, taken):
    """The rule of depthwise_s2's docstring: stride 2, same padding, 3x3 or 5x5, multiplier 1, any
    map size."""
    from npmobilenet.kernels import depthwise_s2
    assert depthwise_s2.applies(x_shape, w_shape, stride, padding) is taken


# ---- the stem: a full 3x3 stride-2 conv over few input channels, direct loops ----------------------
STEM = [(2, 3, 224, 224, 16), (1, 3, 224, 224, 32), (3, 3, 9, 8, 4), (2, 1, 8, 9, 6), (5, 4, 17, 31, 2),
        (1, 3, 1, 1, 2), (2, 2, 2, 5, 8), (4, 3, 15, 13, 32), (1, 3, 30, 112, 16), (2, 3, 40, 600, 4),
        (3, 2, 7, 1, 2), (2, 3, 1, 20, 6)]


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("shape", STEM, ids=[f"{n}x{c}x{h}x{w}-{o}" for n, c, h, w, o in STEM])
def test_stem_kernel_equals_plain(shape, dtype, tol):
    """kernels/stem.py called directly, against the plain path: one to four input channels, 2 to 32
    output channels, odd and even heights and widths, maps one pixel, one row or one column in
    size, bands of several rows (112 columns: 4 rows a band, the last one short) and of one row
    (600 columns).  Widths that are a multiple of 16 split the last image in place, the others
    through the copy with room after it; one image is split over groups of output channels."""
    from npmobilenet.kernels import stem
    N, C, H, W, O = shape
    rng = np.random.default_rng(17)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((O, C, 3, 3)).astype(dtype)
    assert stem.applies(x.shape, w.shape, (2, 2), (1, 1), 1)
    with backend.plain():
        want, _ = conv2d_forward(x, w, None, 2, 1)
    got = stem.forward_fast(x, w)
    assert got.dtype == dtype and got.shape == want.shape and got.flags.c_contiguous
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())


def test_stem_kernel_keeps_a_nan_in_its_own_image():
    """A NaN at an image's first or last pixel, in its first or last channel: the other images'
    outputs stay equal to the plain path's (each image is split into the phase buffers afresh)."""
    from npmobilenet.kernels import stem
    rng = np.random.default_rng(18)
    x = rng.standard_normal((4, 3, 9, 12))
    w = rng.standard_normal((6, 3, 3, 3))
    with backend.plain():
        want, _ = conv2d_forward(x, w, None, 2, 1)
    for channel, pixel in ((0, (0, 0)), (2, (-1, -1))):
        bad = x.copy()
        bad[1, channel, pixel[0], pixel[1]] = np.nan
        got = stem.forward_fast(bad, w)
        assert np.isnan(got[1]).any()
        others = [0, 2, 3]
        np.testing.assert_allclose(got[others], want[others], rtol=1e-12, atol=1e-12 * np.abs(want).max())


@pytest.mark.parametrize("N", [1, 8])
def test_stem_kernel_does_not_depend_on_the_thread_count(N):
    """Batch 1 runs as two tasks of output channels on two threads, one on one thread; batch 8 as
    tasks of images: bit for bit the same either way."""
    from npmobilenet.kernels import stem
    rng = np.random.default_rng(19)
    x = rng.standard_normal((N, 3, 96, 96)).astype(np.float32)      # large enough to run in parallel
    w = rng.standard_normal((16, 3, 3, 3)).astype(np.float32)
    before = threads.num_threads()
    try:
        threads.set_num_threads(1)
        one = stem.forward_fast(x, w).copy()
        threads.set_num_threads(2)
        two = stem.forward_fast(x, w)
    finally:
        threads.set_num_threads(before)
    _same(one, two)


@pytest.mark.parametrize("x_shape,w_shape,stride,padding,groups,taken", [
    ((16, 3, 224, 224), (16, 3, 3, 3), (2, 2), (1, 1), 1, True),      # MobileNetV3's stem
    ((16, 3, 224, 224), (32, 3, 3, 3), (2, 2), (1, 1), 1, True),      # V1, V2, V4
    ((1, 1, 28, 28), (8, 1, 3, 3), (2, 2), (1, 1), 1, True),          # one channel
    ((1, 4, 28, 28), (8, 4, 3, 3), (2, 2), (1, 1), 1, True),
    ((16, 8, 112, 112), (32, 8, 3, 3), (2, 2), (1, 1), 1, False),     # 8 channels: im2col is faster
    ((16, 3, 224, 224), (15, 3, 3, 3), (2, 2), (1, 1), 1, False),     # odd output channels
    ((16, 3, 224, 224), (16, 3, 3, 3), (1, 1), (1, 1), 1, False),     # stride 1
    ((16, 3, 224, 224), (16, 3, 3, 3), (2, 2), (0, 0), 1, False),     # padding 0
    ((16, 3, 224, 224), (16, 3, 5, 5), (2, 2), (2, 2), 1, False),     # 5x5
    ((16, 4, 56, 56), (16, 2, 3, 3), (2, 2), (1, 1), 2, False),       # grouped
])
def test_stem_path_is_taken_where_it_applies(x_shape, w_shape, stride, padding, groups, taken):
    """The rule of stem.py's docstring, and the conv's dispatch follows it (depthwise and
    pointwise convs keep their own kernels)."""
    from npmobilenet.kernels import stem
    from npmobilenet.ops import conv
    assert stem.applies(x_shape, w_shape, stride, padding, groups) is taken
    assert (conv._kind(x_shape, w_shape, stride, padding, groups) == "stem") is taken
    assert conv._kind(x_shape, w_shape, stride, padding, groups, method="im2col") != "stem"


def test_stem_conv_forward_and_backward_equal_im2col():
    """Conv2d's fast path on a stem: the forward through stem.py equals the im2col forward, and
    the backward (im2col's, as for any standard conv) equals the plain path's."""
    from npmobilenet.ops import conv as C
    rng = np.random.default_rng(20)
    x = rng.standard_normal((3, 3, 33, 30))
    w = rng.standard_normal((8, 3, 3, 3))
    stride, padding, groups, out_hw = C._validate(x, w, None, 2, 1, 1)
    y = C._forward_fast(x, w, stride, padding, groups, out_hw)
    np.testing.assert_allclose(y, C._forward_fast(x, w, stride, padding, groups, out_hw, method="im2col"),
                               rtol=1e-12, atol=1e-12 * np.abs(y).max())
    dy = rng.standard_normal(y.shape)
    y2, cache = conv2d_forward(x, w, None, 2, 1)
    with backend.plain():
        _, cache_plain = conv2d_forward(x, w, None, 2, 1)
        want = conv2d_backward(dy, cache_plain)
    dx, dw, db = conv2d_backward(dy, cache)
    assert db is None and want[2] is None                           # no bias
    for got, ref in ((dx, want[0]), (dw, want[1])):
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())
    dx, dw, _ = conv2d_backward(dy, cache, input_grad=False)        # the stem's case: no dx
    assert dx is None
    np.testing.assert_allclose(dw, want[1], rtol=1e-12, atol=1e-12 * np.abs(want[1]).max())


def test_buffers_let_go_of_shapes_no_longer_used(monkeypatch):
    monkeypatch.setattr(buffers, "KEEP_CALLS", 300)
    buffers.clear()
    buffers.empty((1 << 16,), np.float32)             # pooled, then free
    assert buffers.pooled_bytes() == 1 << 18
    for _ in range(600):                               # another shape in use meanwhile
        keep = buffers.empty((1 << 17,), np.float32)   # (two arrays: the last one is still held)
    assert buffers.pooled_bytes() == 2 * (1 << 19)     # only that shape is left
    del keep


# ---- batch norm + activation, fused by Sequential ----------------------------------------------
def _chain(act_cls, dtype, training):
    from npmobilenet.module import Sequential
    from npmobilenet.ops.conv import Conv2d
    rng = np.random.default_rng(9)
    seq = Sequential(Conv2d(6, 24, 3, rng=rng), BatchNorm2d(24), act_cls(), Conv2d(24, 8, 1, rng=rng))
    bn = seq[1]
    bn.weight[...] = rng.uniform(0.5, 2, 24)
    bn.bias[...] = rng.standard_normal(24)
    bn.running_mean[...] = rng.standard_normal(24)
    bn.running_var[...] = rng.uniform(0.5, 2, 24)
    seq.to(dtype).train(training)
    x = (2 * rng.standard_normal((4, 6, 9, 9)) + 0.5).astype(dtype)
    return seq, x, rng.standard_normal((4, 8, 9, 9)).astype(dtype)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("act_cls", [A.ReLU, A.ReLU6, A.Hardswish])
def test_fused_bn_activation_equals_the_layers_run_apart(act_cls, dtype, training):
    from npmobilenet.ops import fused
    from npmobilenet.ops.batchnorm import xhat_of
    runs, xhats = [], []
    for fuse in (True, False):
        seq, x, dy = _chain(act_cls, dtype, training)
        bn, act = seq[1], seq[2]
        assert fused.pair(bn, act)
        if not fuse:                       # an instance attribute: Sequential must run them apart
            object.__setattr__(act, "forward", act.forward)
            object.__setattr__(act, "backward", act.backward)
            assert not fused.pair(bn, act)
        y = seq.forward(x)
        kept = [y, bn.running_mean.copy(), bn.running_var.copy(), act.cache[0] if isinstance(act.cache, tuple)
                else act.cache] + ([] if training else [bn.cache.x])
        xhats.append(xhat_of(bn.cache))
        runs.append((kept, [seq.backward(dy)] + [g.copy() for g in seq.grads().values()]))
    for a, b in zip(runs[0][0], runs[1][0]):          # forward: the same operations, bit for bit
        _same(np.asarray(a), np.asarray(b))
    if training:        # fused, BN keeps x and xhat is recomputed (here in NumPy): equal to rounding
        eps = np.finfo(dtype).eps
        np.testing.assert_allclose(xhats[0], xhats[1], rtol=4 * eps, atol=4 * eps * np.abs(xhats[1]).max())
    tol = 1e-12 if dtype == np.float64 else 1e-5       # backward: BN's sums may be vectorised in
    for a, b in zip(runs[0][1], runs[1][1]):           # another order (float64 accumulators)
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * np.abs(b).max())


@pytest.mark.parametrize("act_cls", [A.ReLU, A.Hardswish])
def test_fused_training_bn_keeps_its_input_not_a_written_xhat(act_cls):
    """The fused training forward references the conv's output for BN's backward (no xhat array)."""
    seq, x, dy = _chain(act_cls, np.float32, True)
    conv, bn = seq[0], seq[1]
    seq.forward(x)
    assert bn.cache.xhat is None and bn.cache.stats.dtype == np.float64 and bn.cache.stats.shape == (2, 24)
    h = conv.forward(x)                    # the same conv output again, for comparison
    np.testing.assert_array_equal(bn.cache.x, h)


@pytest.mark.parametrize("act_cls", [A.ReLU, A.Hardswish])
def test_fused_forward_then_module_backward_and_back(act_cls):
    """The fused forward leaves the caches the modules' own backward expects, and vice versa."""
    seq, x, dy = _chain(act_cls, np.float64, True)
    bn, act, conv = seq[1], seq[2], seq[3]
    seq.forward(x)                                      # fused
    d_fused = seq.backward(dy)
    d_apart = seq[0].backward(bn.backward(act.backward(conv.backward(dy))))
    np.testing.assert_allclose(d_fused, d_apart, rtol=1e-12, atol=1e-12 * np.abs(d_apart).max())


def test_fusion_steps_aside_for_patched_classes(monkeypatch):
    from npmobilenet.ops import fused
    seq, x, _ = _chain(A.ReLU, np.float32, True)
    calls = []
    original = A.ReLU.forward
    monkeypatch.setattr(A.ReLU, "forward", lambda self, x: calls.append(1) or original(self, x))
    assert not fused.pair(seq[1], seq[2])
    seq.forward(x)
    assert calls == [1]
    with backend.plain():
        monkeypatch.undo()
        assert not fused.pair(seq[1], seq[2])          # plain path: never fused


def test_fused_gradients_pass_the_gradient_check():
    from npmobilenet.gradcheck import gradcheck
    seq, x, _ = _chain(A.ReLU6, np.float64, True)
    gradcheck(seq, x[:2, :, :5, :5], mode="directional").assert_passed()


@pytest.mark.parametrize("hw", [(5, 7), (1, 1)])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 2e-5)])
def test_squeeze_excite_fast_equals_plain(hw, dtype, tol):
    from npmobilenet.ops.squeeze_excite import SqueezeExcite
    rng = np.random.default_rng(10)
    se = SqueezeExcite(12, 4, rng=1).to(dtype)
    x = rng.standard_normal((3, 12) + hw).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)

    def run():
        y = se(x)
        return [y, se.backward(dy)] + [g.copy() for g in se.grads().values()]
    fast, plain = _both(run)          # the 1x1 convs' products and ds's sums run in other orders
    for a, b in zip(fast, plain):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * np.abs(b).max())


# ---- simd.stencil3x3 -------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("masked", [True, False])
@pytest.mark.parametrize("a,W,d", [(0, 11, 0), (5, 13, 3), (21, 9, 17)])
def test_stencil3x3_writes_rows_by_lanes_of_the_stencil_and_nothing_else(dtype, masked, a, W, d):
    """One step against the sum written out in NumPy: ROWS output rows of LANES values, row r at
    ``d + r*W``, tap (i, j) read at ``a + (r + i)*W + c + j``, the side columns times their masks
    (or not, for the inner step); every other value of dst stays as it was."""
    from numba import njit
    from npmobilenet.kernels.simd import LANES, ROWS, stencil3x3, stencil3x3_inner
    step = stencil3x3 if masked else stencil3x3_inner

    @njit
    def call(s, a, W, taps, masks, mo, HW, dst, d):
        step(s, a, W, (taps[0], taps[1], taps[2], taps[3], taps[4], taps[5], taps[6], taps[7], taps[8]),
             masks, mo, HW, dst, d)

    rng = np.random.default_rng(a + W)
    s = rng.standard_normal(a + (ROWS + 2) * W + LANES + 2).astype(dtype)
    taps = rng.standard_normal(9).astype(dtype)
    HW, mo = 4 * W, 2
    masks = rng.integers(0, 2, 3 * HW).astype(dtype)
    masks[HW:2 * HW] = 7            # the centre column's mask is never read
    dst = np.full(d + ROWS * W + LANES, -1.0, dtype=dtype)
    want = dst.copy()
    for r in range(ROWS):
        for c in range(LANES):
            col = [sum(float(taps[3 * i + j]) * float(s[a + (r + i) * W + c + j]) for i in range(3)) for j in range(3)]
            m = [float(masks[j * HW + mo + c]) if masked and j != 1 else 1.0 for j in range(3)]
            want[d + r * W + c] = sum(mj * cj for mj, cj in zip(m, col))
    call(s, a, W, taps, masks, mo, HW, dst, d)
    tol = 1e-5 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(dst, want, rtol=tol, atol=tol * np.abs(want).max())
    untouched = np.ones(dst.size, bool)
    for r in range(ROWS):
        untouched[d + r * W:d + r * W + LANES] = False
    assert np.all(dst[untouched] == -1.0)


def test_stencil3x3_rejects_a_wrong_tuple_and_mixed_dtypes():
    from numba import njit
    from numba.core.errors import TypingError
    from npmobilenet.kernels.simd import stencil3x3

    @njit
    def call(s, taps, dst):
        stencil3x3(s, 0, 4, taps, s, 0, 4, dst, 0)

    a32, a64 = np.zeros(64, np.float32), np.zeros(64, np.float64)
    nine32 = tuple(np.float32(1) for _ in range(9))
    with pytest.raises(TypingError):
        call(a32, nine32[:8], a32)                            # eight taps
    with pytest.raises(TypingError):
        call(a32, tuple(1.0 for _ in range(9)), a32)         # float64 taps on float32 arrays
    with pytest.raises(TypingError):
        call(a32, nine32, a64)


def test_phase_taps_reject_a_wrong_tuple_and_mixed_dtypes():
    from numba import njit
    from numba.core.errors import TypingError
    from npmobilenet.kernels.simd import phase_taps3, phase_taps5

    @njit
    def call3(a, taps, dst):
        phase_taps3(a, a, a, a, 0, 4, taps, a, a, dst, 0)

    @njit
    def call5(a, taps, dst):
        phase_taps5(a, a, a, a, 0, 4, taps, a, a, dst, 0)

    a32, a64 = np.zeros(64, np.float32), np.zeros(64, np.float64)
    with pytest.raises(TypingError):
        call5(a32, tuple(np.float32(1) for _ in range(9)), a32)      # nine taps for 5x5
    with pytest.raises(TypingError):
        call3(a32, tuple(1.0 for _ in range(9)), a32)                # float64 taps on float32 arrays
    with pytest.raises(TypingError):
        call3(a32, tuple(np.float32(1) for _ in range(9)), a64)


# ---- simd.deinterleave -----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("i,j", [(0, 0), (3, 5), (17, 1), (48, 40)])
def test_deinterleave_splits_one_vector_of_pairs_and_writes_nothing_else(dtype, i, j):
    """Against NumPy's strided slices, for both dtypes, at offsets that are not multiples of the
    vector's size; the values outside the LANES written stay as they were."""
    from numba import njit
    from npmobilenet.kernels.simd import LANES, deinterleave

    @njit
    def call(src, i, even, odd, j):
        deinterleave(src, i, even, odd, j)

    src = np.arange(100, dtype=dtype) * 1.5 - 7
    even, odd = np.full(64, -1.0, dtype=dtype), np.full(64, -2.0, dtype=dtype)
    want_even, want_odd = even.copy(), odd.copy()
    want_even[j:j + LANES] = src[i:i + 2 * LANES:2]
    want_odd[j:j + LANES] = src[i + 1:i + 2 * LANES:2]
    call(src, i, even, odd, j)
    _same(even, want_even)
    _same(odd, want_odd)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("i,j", [(0, 0), (3, 5), (17, 2)])
def test_interleave_merges_one_vector_of_pairs_and_writes_nothing_else(dtype, i, j):
    """The inverse of deinterleave, against NumPy's strided slices; the values outside the
    2*LANES written stay as they were."""
    from numba import njit
    from npmobilenet.kernels.simd import LANES, interleave

    @njit
    def call(even, odd, j, dst, i):
        interleave(even, odd, j, dst, i)

    even, odd = np.arange(40, dtype=dtype) * 1.5 - 7, np.arange(40, dtype=dtype) * -0.5 + 3
    dst = np.full(64, -1.0, dtype=dtype)
    want = dst.copy()
    want[i:i + 2 * LANES:2] = even[j:j + LANES]
    want[i + 1:i + 2 * LANES:2] = odd[j:j + LANES]
    call(even, odd, j, dst, i)
    _same(dst, want)


def test_interleave_rejects_mixed_dtypes_and_strided_arrays():
    from numba import njit
    from numba.core.errors import TypingError
    from npmobilenet.kernels.simd import interleave

    @njit
    def call(even, odd, dst):
        interleave(even, odd, 0, dst, 0)

    a32, a64 = np.zeros(32, np.float32), np.zeros(32, np.float64)
    with pytest.raises(TypingError):
        call(a64, a64, a32)
    with pytest.raises(TypingError):
        call(a32, a32, a32[::2])


def test_deinterleave_rejects_mixed_dtypes_and_strided_arrays():
    from numba import njit
    from numba.core.errors import TypingError
    from npmobilenet.kernels.simd import deinterleave

    @njit
    def call(src, even, odd):
        deinterleave(src, 0, even, odd, 0)

    a32, a64 = np.zeros(32, np.float32), np.zeros(32, np.float64)
    with pytest.raises(TypingError):
        call(a32, a64, a64)
    with pytest.raises(TypingError):
        call(a32[::2], a32, a32)
