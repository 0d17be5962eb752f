"""Conv2d: every grouping a MobileNet uses (standard, pointwise, grouped, depthwise with and
without channel multiplier), both paths.

* forward against an independent 7-loop reference written from the definition;
* gradients against central differences (float64, h = 1e-5, STYLE.md G2 pass rule);
* the fast path equals the plain-NumPy path to float rounding, forward and backward, in float64
  and float32, on small and MobileNet-sized layers; depthwise's direct loops equal its im2col;
* the module contract: backward never mutates dy or the cache, two backward calls give the same
  gradients, backward before forward raises, bad input raises naming the argument, float32 stays
  float32.
"""
import contextlib

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from npmobilenet.gradcheck import assert_grad_close, gradcheck, numerical_grad
from npmobilenet.module import BackwardBeforeForward
from npmobilenet.ops import backend
from npmobilenet.ops import conv as C
from npmobilenet.ops.conv import Conv2d, conv2d_backward, conv2d_forward

PATHS = ["fast", "plain"]


def on(path):
    return backend.plain() if path == "plain" else contextlib.nullcontext()


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def naive_conv(x, w, b, stride, padding, groups):
    """Eq. (1) of ops/conv.py as seven nested loops, padding by bounds tests (no np.pad, no im2col)."""
    N, Cin, H, W = x.shape
    O, Cg, kh, kw = w.shape
    (sh, sw), (ph, pw) = pair(stride), pair((kh // 2, kw // 2) if padding is None else padding)
    Ho, Wo = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    y = np.zeros((N, O, Ho, Wo), dtype=np.float64)
    for n in range(N):
        for o in range(O):
            g = o // (O // groups)
            for oh in range(Ho):
                for ow in range(Wo):
                    s = 0.0 if b is None else float(b[o])
                    for c in range(Cg):
                        for i in range(kh):
                            for j in range(kw):
                                ih, iw = oh * sh - ph + i, ow * sw - pw + j
                                if 0 <= ih < H and 0 <= iw < W:
                                    s += float(w[o, c, i, j]) * float(x[n, g * Cg + c, ih, iw])
                    y[n, o, oh, ow] = s
    return y


# (N, C, H, W, O, kernel, stride, padding, groups, bias): every case a MobileNet uses, small.
CONFIGS = [
    (1, 3, 7, 7, 4, 3, 2, None, 1, False),             # stem-like, odd input at stride 2 (7 -> 4)
    (2, 2, 8, 8, 3, 3, 2, None, 1, True),              # even input at stride 2 (8 -> 4)
    (2, 4, 6, 5, 6, 1, 1, 0, 1, True),                 # pointwise
    (2, 3, 5, 6, 2, 1, 2, 0, 1, False),                # strided pointwise
    (2, 4, 7, 6, 4, 3, 1, None, 4, False),             # depthwise 3x3 s1
    (2, 4, 9, 9, 4, 5, 2, None, 4, True),              # depthwise 5x5 s2, odd input
    (2, 3, 8, 8, 3, 5, 2, None, 3, False),             # depthwise 5x5 s2, even input
    (1, 3, 8, 7, 6, 3, 2, None, 3, False),             # depthwise, channel multiplier 2
    (2, 2, 6, 5, 6, 3, 1, 0, 2, True),                 # depthwise, multiplier 3, padding 0
    (2, 4, 6, 6, 6, 3, 1, None, 2, True),              # grouped, 2 groups
    (2, 2, 7, 7, 3, 5, 1, 0, 1, False),                # k = 5, padding 0
    (1, 8, 5, 5, 8, 3, 2, 0, 8, False),                # depthwise s2, padding 0 (5 -> 2)
    (2, 6, 5, 8, 4, (3, 5), (2, 1), (1, 2), 2, True),  # non-square kernel, stride and padding
    (1, 2, 3, 3, 2, 5, 1, 1, 1, False),                # kernel as large as the padded input
    (2, 1, 9, 8, 2, 3, 3, 1, 1, True),                 # stride 3
    (1, 2, 24, 25, 2, 3, 1, None, 2, False),           # depthwise s1 on maps large enough (>= 24x24)
    (1, 2, 24, 24, 2, 5, 1, None, 2, True),            #   for kernels/depthwise_s1.py, 3x3 and 5x5
    (2, 3, 13, 12, 3, 3, 2, None, 3, False),           # depthwise s2 on maps large enough (> 8x8)
    (2, 2, 12, 10, 2, 5, 2, None, 2, True),            #   for kernels/depthwise_s2.py, 3x3 and 5x5
]
IDS = [f"N{c[0]}C{c[1]}{c[2]}x{c[3]}-O{c[4]}k{c[5]}s{c[6]}p{c[7]}g{c[8]}{'b' if c[9] else ''}" for c in CONFIGS]


def make(cfg, rng, dtype=np.float64):
    N, Cin, H, W, O, k, s, p, g, bias = cfg
    kh, kw = pair(k)
    x = rng.standard_normal((N, Cin, H, W)).astype(dtype)
    w = rng.standard_normal((O, Cin // g, kh, kw)).astype(dtype)
    b = rng.standard_normal(O).astype(dtype) if bias else None
    return x, w, b, s, p, g


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_forward_matches_naive_loops(cfg, path):
    x, w, b, s, p, g = make(cfg, np.random.default_rng(1))
    with on(path):
        y, _ = conv2d_forward(x, w, b, s, p, g)
    np.testing.assert_allclose(y, naive_conv(x, w, b, s, p, g), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_gradients_match_finite_differences(cfg, path):
    rng = np.random.default_rng(2)
    x, w, b, s, p, g = make(cfg, rng)
    assert x.size <= 2000 and w.size <= 2000
    with on(path):
        y, cache = conv2d_forward(x, w, b, s, p, g)
        dy = rng.standard_normal(y.shape)                 # Gaussian upstream gradient, never ones
        dx, dw, db = conv2d_backward(dy, cache)
        f = lambda: float(np.sum(conv2d_forward(x, w, b, s, p, g)[0] * dy))  # noqa: E731
        assert_grad_close(dx, numerical_grad(f, x), "dx")
        assert_grad_close(dw, numerical_grad(f, w), "dw")
        if b is None:
            assert db is None
        else:
            assert_grad_close(db, numerical_grad(f, b), "db")


@settings(deadline=None, max_examples=25)
@given(st.data())
def test_random_configurations(data):
    """Random geometry: fast == plain, and the fast path's gradients against finite differences."""
    d = data.draw
    kind = d(st.sampled_from(["standard", "grouped", "depthwise", "multiplier"]))
    g = 1 if kind == "standard" else d(st.integers(2, 4))
    cg = d(st.integers(1, 3)) if kind in ("standard", "grouped") else 1
    og = d(st.integers(1, 3)) if kind != "depthwise" else 1
    k = d(st.sampled_from([(1, 1), (3, 3), (5, 5), (3, 5), (1, 3)]))
    stride = d(st.sampled_from([(1, 1), (2, 2), (1, 2)]))
    padding = d(st.sampled_from([None, (0, 0), (1, 1), (2, 1)]))
    pad = (k[0] // 2, k[1] // 2) if padding is None else padding
    H = d(st.integers(max(1, k[0] - 2 * pad[0]), 9))
    W = d(st.integers(max(1, k[1] - 2 * pad[1]), 9))
    N, bias = d(st.integers(1, 2)), d(st.booleans())
    rng = np.random.default_rng(d(st.integers(0, 2 ** 31)))
    x = rng.standard_normal((N, g * cg, H, W))
    w = rng.standard_normal((g * og, cg) + k)
    b = rng.standard_normal(g * og) if bias else None
    y, cache = conv2d_forward(x, w, b, stride, padding, g)
    dy = rng.standard_normal(y.shape)
    grads = conv2d_backward(dy, cache)
    with backend.plain():
        y_plain, cache_plain = conv2d_forward(x, w, b, stride, padding, g)
        grads_plain = conv2d_backward(dy, cache_plain)
    assert_close(y, y_plain, 1e-12)
    for a, r in zip(grads, grads_plain):
        assert (a is None) == (r is None)
        if a is not None:
            assert_close(a, r, 1e-12)
    f = lambda: float(np.sum(conv2d_forward(x, w, b, stride, padding, g)[0] * dy))  # noqa: E731
    grad_close(grads[0], numerical_grad(f, x), "dx")
    grad_close(grads[1], numerical_grad(f, w), "dw")


def grad_close(analytic, numeric, name):
    """``assert_grad_close``, plus the case it cannot rate: an all-zero true gradient (an output that
    sees only padding) must come out exactly zero."""
    if not np.any(numeric):
        assert not np.any(analytic), f"{name}: numeric gradient is 0 everywhere, mine is not"
    else:
        assert_grad_close(analytic, numeric, name)


def assert_close(a, b, rtol):
    """Equal to float rounding: |a - b| <= rtol * (|b| + max|b|) elementwise, same dtype and shape."""
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * float(np.max(np.abs(b), initial=0.0)))


# MobileNet-sized layers (batch 2); large enough to take the threaded and the chunked paths.
MOBILE = [
    ((2, 3, 64, 64), 16, 3, 2, None, 1, False),        # stem
    ((2, 16, 56, 56), 16, 3, 1, None, 16, False),      # depthwise 3x3
    ((2, 24, 15, 15), 24, 3, 2, None, 24, False),      # depthwise 3x3 s2, odd input
    ((2, 40, 14, 14), 40, 5, 2, None, 40, False),      # depthwise 5x5 s2
    ((2, 8, 20, 20), 16, 3, 1, None, 8, True),         # depthwise, multiplier 2
    ((2, 24, 28, 28), 40, 1, 1, 0, 1, True),           # pointwise
    ((2, 8, 32, 32), 16, 3, 1, None, 1, False),        # standard
    ((2, 16, 28, 28), 32, 3, 2, None, 4, True),        # grouped
]
MOBILE_IDS = [f"{c[0]}-O{c[1]}k{c[2]}s{c[3]}g{c[5]}" for c in MOBILE]


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 1e-5)], ids=["f64", "f32"])
@pytest.mark.parametrize("cfg", MOBILE, ids=MOBILE_IDS)
def test_fast_path_equals_plain_path(cfg, dtype, rtol):
    shape, O, k, s, p, g, bias = cfg
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((O, shape[1] // g, k, k)).astype(dtype)
    b = rng.standard_normal(O).astype(dtype) if bias else None
    y, cache = conv2d_forward(x, w, b, s, p, g)
    dy = rng.standard_normal(y.shape).astype(dtype)
    grads = conv2d_backward(dy, cache)
    with backend.plain():
        y_ref, cache_ref = conv2d_forward(x, w, b, s, p, g)
        grads_ref = conv2d_backward(dy, cache_ref)
    assert_close(y, y_ref, rtol)
    for a, r in zip(grads, grads_ref):
        if r is None:
            assert a is None
        else:
            assert_close(a, r, rtol)


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 1e-5)], ids=["f64", "f32"])
@pytest.mark.parametrize("cfg", [c for c in CONFIGS if c[8] == c[1]]      # every depthwise config, and two larger
                         + [(2, 16, 28, 28, 16, 3, 1, None, 16, False), (2, 32, 14, 14, 64, 5, 2, None, 32, False)])
def test_depthwise_direct_loops_equal_im2col(cfg, dtype, rtol):
    x, w, _, s, p, g = make(cfg, np.random.default_rng(4), dtype)
    stride, padding, groups, out_hw = C._validate(x, w, None, s, p, g)
    assert C._kind(x.shape, w.shape, stride, padding, groups) == "depthwise"
    y = C._forward_fast(x, w, stride, padding, groups, out_hw)
    y_cols = C._forward_fast(x, w, stride, padding, groups, out_hw, method="im2col")
    assert_close(y, y_cols, rtol)
    cache = C.ConvCache(x, w, False, stride, padding, groups)
    dy = np.random.default_rng(5).standard_normal(y.shape).astype(dtype)
    for a, r in zip(C._backward_fast(dy, cache), C._backward_fast(dy, cache, method="im2col")):
        assert_close(a, r, rtol)


@pytest.mark.parametrize("groups", [1, 2])
def test_im2col_batch_chunks_give_the_same_result(monkeypatch, groups):
    """3 images in chunks of 2 (a full and a partial chunk) equal the plain path."""
    rng = np.random.default_rng(13)
    x, w = rng.standard_normal((3, 4, 9, 8)), rng.standard_normal((6, 4 // groups, 3, 3))
    per_image = 4 * 9 * 5 * 4                            # C*kh*kw*Ho*P at stride 2: Ho = 5, P = Wo = 4
    from npmobilenet.kernels import im2col
    monkeypatch.setattr(im2col, "_CHUNK", 2 * per_image)
    y, cache = conv2d_forward(x, w, None, 2, None, groups)
    dy = rng.standard_normal(y.shape)
    grads = conv2d_backward(dy, cache)
    with backend.plain():
        y_ref, cache_ref = conv2d_forward(x, w, None, 2, None, groups)
        grads_ref = conv2d_backward(dy, cache_ref)
    assert_close(y, y_ref, 1e-12)
    for a, r in zip(grads[:2], grads_ref[:2]):
        assert_close(a, r, 1e-12)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("groups,k", [(1, 3), (6, 3), (1, 1), (2, 5)])
def test_non_contiguous_input_gives_the_same_result(groups, k, path):
    rng = np.random.default_rng(14)
    x_t = rng.standard_normal((9, 8, 6, 2)).transpose(3, 2, 1, 0)        # a (2, 6, 8, 9) strided view
    w = rng.standard_normal((6, 6 // groups, k, k))
    with on(path):
        y, cache = conv2d_forward(x_t, w, None, 2, None, groups)
        y_c, cache_c = conv2d_forward(np.ascontiguousarray(x_t), w, None, 2, None, groups)
        dy = rng.standard_normal(y.shape)
        for a, b in zip(conv2d_backward(dy, cache)[:2], conv2d_backward(dy, cache_c)[:2]):
            assert np.array_equal(a, b)
    assert np.array_equal(y, y_c)


def test_thread_count_does_not_change_results():
    from npmobilenet.kernels import threads as pool
    most = 2
    rng = np.random.default_rng(6)
    x = rng.standard_normal((4, 16, 32, 32))
    results = []
    old = pool.num_threads()
    try:
        for threads in (1, most):
            pool.set_num_threads(threads)
            out = []
            for w, s, g in ((rng.standard_normal((16, 1, 3, 3)), 1, 16), (rng.standard_normal((8, 16, 3, 3)), 2, 1)):
                y, cache = conv2d_forward(x, w, None, s, None, g)
                out += [y, *conv2d_backward(np.cos(y), cache)[:2]]
            results.append(out)
            rng = np.random.default_rng(6)
            x = rng.standard_normal((4, 16, 32, 32))
    finally:
        pool.set_num_threads(old)
    for a, b in zip(*results):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("H,k,s,p,expected", [(224, 3, 2, None, 112), (7, 3, 2, None, 4), (14, 5, 2, None, 7),
                                              (15, 5, 2, None, 8), (112, 3, 1, None, 112), (9, 3, 2, 0, 4),
                                              (8, 1, 2, 0, 4)])
def test_output_size_is_floor_formula(H, k, s, p, expected, path):
    with on(path):
        y, _ = conv2d_forward(np.ones((1, 1, H, H + 1)), np.ones((1, 1, k, k)), None, s, p)
    pw = k // 2 if p is None else p
    assert y.shape == (1, 1, expected, (H + 1 + 2 * pw - k) // s + 1)


# ---- the module ---------------------------------------------------------------------------------
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("args,kw", [((3, 4, 3), dict(stride=2, bias=True)), ((4, 4, 3), dict(groups=4)),
                                     ((4, 6, 1), dict(bias=True)), ((2, 4, 5), dict(stride=2, groups=2))])
def test_module_gradcheck(args, kw, path):
    conv = Conv2d(*args, **kw, rng=0).to(np.float64)
    for p in conv.parameters().values():
        p += 0.1 * np.random.default_rng(7).standard_normal(p.shape)
    with on(path):
        gradcheck(conv, np.random.default_rng(8).standard_normal((2, args[0], 6, 7))).assert_passed()


def test_module_parameters_and_init_follow_torch():
    conv = Conv2d(16, 32, 3, stride=2, bias=True, rng=0)
    assert list(conv.parameters()) == ["weight", "bias"]
    assert conv.weight.shape == (32, 16, 3, 3) and conv.bias.shape == (32,)
    assert conv.weight.dtype == np.float32
    bound = 1 / np.sqrt(16 * 9)                           # kaiming_uniform_(a=sqrt(5)): U(+-1/sqrt(fan_in))
    assert np.abs(conv.weight).max() <= bound and np.abs(conv.weight).max() > 0.9 * bound
    assert np.abs(conv.bias).max() <= bound
    assert list(Conv2d(16, 16, 3, groups=16).parameters()) == ["weight"]
    assert Conv2d(16, 16, 5, groups=16).weight.shape == (16, 1, 5, 5)
    assert np.array_equal(Conv2d(3, 8, 3, rng=1).weight, Conv2d(3, 8, 3, rng=1).weight)
    assert Conv2d(3, 8, 3).padding == (1, 1) and Conv2d(3, 8, 5).padding == (2, 2)
    assert Conv2d(3, 8, 3, padding=0).padding == (0, 0)
    assert repr(Conv2d(16, 32, 3, stride=2)) == "Conv2d(16->32, k=3, s=2)"
    assert repr(Conv2d(16, 16, 5, stride=2, groups=16)) == "Conv2d(16->16, k=5, s=2, groups=16)"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("args,kw", [((3, 8, 3), dict(stride=2, bias=True)), ((8, 8, 3), dict(groups=8)),
                                     ((8, 16, 1), {}), ((8, 8, 3), dict(groups=2, bias=True))])
def test_backward_leaves_dy_and_cache_alone_and_is_repeatable(args, kw, path):
    rng = np.random.default_rng(9)
    conv = Conv2d(*args, **kw, rng=0)
    x = rng.standard_normal((2, args[0], 9, 9)).astype(np.float32)
    x0 = x.copy()
    with on(path):
        y = conv(x)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        dy0 = dy.copy()
        dx1 = conv.backward(dy)
        g1 = {k: v.copy() for k, v in conv.grads().items()}
        dx2 = conv.backward(dy)
    assert np.array_equal(dy, dy0) and np.array_equal(x, x0) and np.array_equal(conv.cache.x, x0)
    assert np.array_equal(dx1, dx2)
    for k, v in conv.grads().items():
        assert np.array_equal(v, g1[k]), f"{k}: second backward changed the gradient (accumulated?)"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("args,kw", [((3, 8, 3), dict(stride=2, bias=True)), ((8, 8, 5), dict(groups=8, stride=2)),
                                     ((8, 16, 1), dict(bias=True)), ((8, 8, 3), dict(groups=2)),
                                     ((4, 8, 3), dict(groups=4))])
def test_float32_stays_float32(args, kw, path):
    conv = Conv2d(*args, **kw, rng=0)
    x = np.random.default_rng(10).standard_normal((2, args[0], 8, 8)).astype(np.float32)
    with on(path):
        y = conv(x)
        dx = conv.backward(np.ones_like(y))
        y2, cache = conv2d_forward(x, conv.weight, conv.bias if "bias" in kw else None, conv.stride, None, conv.groups)
        grads = conv2d_backward(y2, cache)
    assert y.dtype == dx.dtype == y2.dtype == np.float32
    assert all(g.dtype == np.float32 for g in conv.grads().values())
    assert all(g is None or g.dtype == np.float32 for g in grads)


def test_backward_before_forward_raises():
    conv = Conv2d(16, 32, 3, stride=2)
    with pytest.raises(BackwardBeforeForward, match=r"Conv2d\(16->32, k=3, s=2\)"):
        conv.backward(np.zeros((1, 32, 4, 4), np.float32))


@pytest.mark.parametrize("x,padding,exc,words", [
    (np.zeros((3, 8, 8), np.float32), None, ValueError, ["x", "(3, 8, 8)", "(N, C, H, W)"]),
    (np.zeros((1, 4, 8, 8), np.float32), None, ValueError, ["x", "4 channels", "expected 3"]),
    (np.zeros((1, 3, 8, 8), np.int32), None, TypeError, ["x", "int32", "float"]),
    (np.zeros((1, 3, 8, 8), np.float64), None, TypeError, ["x", "float64", "float32"]),
    (np.zeros((1, 3, 1, 8), np.float32), 0, ValueError, ["x", "height 1", "kernel height 3"]),
    ([[1.0]], None, TypeError, ["x", "list"]),
    (np.zeros((0, 3, 8, 8), np.float32), None, ValueError, ["x", "(0, 3, 8, 8)", "no values"]),
])
def test_module_bad_input_names_layer_argument_and_expectation(x, padding, exc, words):
    conv = Conv2d(3, 8, 3, stride=2, padding=padding)
    with pytest.raises(exc) as err:
        conv(x)
    assert str(err.value).startswith(conv._label())
    for word in words:
        assert word in str(err.value), f"{word!r} not in {err.value}"


@pytest.mark.parametrize("x_shape,w_shape,groups", [((0, 3, 8, 8), (8, 3, 3, 3), 1),     # the stem's kernel
                                                   ((0, 8, 8, 8), (8, 1, 3, 3), 8),     # depthwise
                                                   ((0, 8, 8, 8), (16, 8, 1, 1), 1)])   # pointwise
def test_functional_conv_rejects_an_empty_batch(x_shape, w_shape, groups):
    """An empty batch gets one clear error before any kernel, on either path."""
    x, w = np.zeros(x_shape, np.float32), np.zeros(w_shape, np.float32)
    for path in (contextlib.nullcontext, backend.plain):      # the fast path, then the plain one
        with path(), pytest.raises(ValueError, match=r"conv2d_forward: x has shape \(0, \d+, 8, 8\), no values"):
            conv2d_forward(x, w, None, 2, None, groups)


def test_module_bad_dy_names_dy():
    conv = Conv2d(3, 8, 3, stride=2)
    conv(np.zeros((1, 3, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"Conv2d\(3->8, k=3, s=2\)\.backward: dy .*\(1, 8, 4, 4\).*\(1, 8, 8, 8\)"):
        conv.backward(np.zeros((1, 8, 8, 8), np.float32))
    with pytest.raises(ValueError, match="dy must be a float32"):
        conv.backward(np.zeros((1, 8, 4, 4), np.float64))


@pytest.mark.parametrize("args,kw,words", [
    ((6, 4, 3), dict(groups=4), ["in_channels=6", "groups=4"]),
    ((4, 6, 3), dict(groups=4), ["out_channels=6", "groups=4"]),
    ((0, 4, 3), {}, ["in_channels", "0"]),
    ((4, 4, 3), dict(stride=0), ["stride", ">= 1"]),
    ((4, 4, 3), dict(padding=-1), ["padding", ">= 0"]),
    ((4, 4, "3"), {}, ["kernel_size", "'3'"]),
])
def test_constructor_rejects_bad_arguments(args, kw, words):
    with pytest.raises((ValueError, TypeError)) as err:
        Conv2d(*args, **kw)
    for word in words:
        assert word in str(err.value), f"{word!r} not in {err.value}"


@pytest.mark.parametrize("call,exc,words", [
    (lambda x, w: conv2d_forward(x, w.astype(np.float32)), TypeError, ["x has dtype float64", "w has dtype float32"]),
    (lambda x, w: conv2d_forward(x, w[0]), ValueError, ["w has shape (4, 3, 3)", "3 dimensions"]),
    (lambda x, w: conv2d_forward(x, w, groups=2), ValueError, ["x has 4 channels", "w.shape[1] * groups = 4 * 2"]),
    (lambda x, w: conv2d_forward(x, w[:3, :1], groups=4), ValueError, ["3 output channels", "groups=4"]),
    (lambda x, w: conv2d_forward(x, w, b=np.zeros(3)), ValueError, ["b must be", "shape (4,)", "(3,)"]),
    (lambda x, w: conv2d_forward(x, w, stride=0), ValueError, ["stride", ">= 1", "0"]),
    (lambda x, w: conv2d_forward(x, w, padding=(1, -1)), ValueError, ["padding", ">= 0"]),
    (lambda x, w: conv2d_forward(x, w, stride=1.5), TypeError, ["stride", "1.5"]),
    (lambda x, w: conv2d_forward(x[:, :, :1], w, padding=0), ValueError, ["height 1", "kernel height 3"]),
    (lambda x, w: conv2d_forward(x.astype(int), w), TypeError, ["x has dtype int", "float"]),
    (lambda x, w: conv2d_backward(np.zeros((2, 4, 5, 5)), None), TypeError, ["cache", "NoneType"]),
    (lambda x, w: conv2d_backward(np.zeros((2, 4, 4, 5)), conv2d_forward(x, w)[1]), ValueError,
     ["dy must be a float64 array of shape (2, 4, 5, 5)", "(2, 4, 4, 5)"]),
])
def test_function_bad_input_names_the_argument(call, exc, words):
    rng = np.random.default_rng(11)
    with pytest.raises(exc) as err:
        call(rng.standard_normal((2, 4, 5, 5)), rng.standard_normal((4, 4, 3, 3)))
    assert str(err.value).startswith("conv2d_")
    for word in words:
        assert word in str(err.value), f"{word!r} not in {err.value}"


def test_torch_parity_float32():
    """float32 against torch.nn.functional.conv2d and its autograd (where torch is installed)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(12)
    for shape, O, k, s, g, bias in [((2, 3, 32, 32), 16, 3, 2, 1, True), ((2, 16, 28, 28), 16, 3, 1, 16, False),
                                    ((2, 32, 14, 14), 32, 5, 2, 32, True), ((2, 24, 14, 14), 40, 1, 1, 1, False),
                                    ((2, 16, 15, 15), 32, 3, 2, 4, True)]:
        x = rng.standard_normal(shape).astype(np.float32)
        w = (rng.standard_normal((O, shape[1] // g, k, k)) / k).astype(np.float32)
        b = rng.standard_normal(O).astype(np.float32) if bias else None
        xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
        bt = torch.tensor(b, requires_grad=True) if bias else None
        yt = torch.nn.functional.conv2d(xt, wt, bt, s, k // 2, 1, g)
        dy = rng.standard_normal(tuple(yt.shape)).astype(np.float32)
        yt.backward(torch.tensor(dy))
        for path in PATHS:
            with on(path):
                y, cache = conv2d_forward(x, w, b, s, None, g)
                dx, dw, db = conv2d_backward(dy, cache)
            assert_close(y, yt.detach().numpy(), 1e-5)
            assert_close(dx, xt.grad.numpy(), 1e-5)
            assert_close(dw, wt.grad.numpy(), 1e-5)
            if bias:
                assert_close(db, bt.grad.numpy(), 1e-5)


def test_layer_benchmark_runs(capsys):
    from npmobilenet.bench import layers
    assert layers.main(["--quick", "--no-torch", "--repeats", "1", "--min-time", "0", "--only", "pw 1x1"]) == 0
    out = capsys.readouterr().out
    assert "pw 1x1 240->80 @28" in out and "fast" in out and "plain" in out and "dw 3x3" not in out
    assert layers.STREAM not in out                  # a 240 -> 80 conv moves other data than a copy
    assert layers.main(["--quick", "--no-torch", "--repeats", "1", "--min-time", "0", "--only", "hardswish"]) == 0
    rows = [r.split() for r in capsys.readouterr().out.splitlines() if r.startswith("hardswish 240 @28")]
    assert [r[3] for r in rows] == ["fast", "plain", "numpy"] and all(float(t) > 0 for r in rows for t in r[-2:])


def test_layer_benchmark_reports_each_target_of_the_issue(capsys):
    """Every ratio target is checked, on its own side of its limit: depthwise < 1x torch and 20x
    the per-channel loop, pointwise 1.25x, stem 3x, BN and hard-swish 1.5x."""
    from npmobilenet.bench import layers
    ms = 1e-3                                        # the results are in seconds
    torch = (ms, ms)
    results = {"dw 3x3/s1 72 @56": {"fast": (1.0 * ms, 1.1 * ms), "torch": (1.05 * ms, ms),
                                    "per-channel numpy": (19.0 * ms, 30.0 * ms),
                                    layers.STREAM: (0.5 * ms, 0.7 * ms)},
               "pw 1x1 240->80 @28": {"fast": (1.2 * ms, 1.3 * ms), "torch": torch},
               "stem 3x3/s2 3->16 @224": {"fast": (2.9 * ms, 3.1 * ms), "torch": torch},
               "bn 240 @28 (train)": {"fast": (1.4 * ms, 1.6 * ms), "torch": torch},
               "hardswish 240 @28": {"fast": (1.6 * ms, 1.4 * ms), "torch": torch}}
    checks = {what: ok for what, ok, _ in layers._report_targets(results)}
    assert checks == {
        "dw 3x3/s1 72 @56 forward: fast < torch": True, "dw 3x3/s1 72 @56 backward: fast < torch": False,
        "dw 3x3/s1 72 @56 forward: >= 20x per-channel numpy": False,       # 19.0x
        "dw 3x3/s1 72 @56 backward: >= 20x per-channel numpy": True,       # 27.3x
        "pw 1x1 240->80 @28 forward: within 1.25x torch": True, "pw 1x1 240->80 @28 backward: within 1.25x torch": False,
        "stem 3x3/s2 3->16 @224 forward: within 3.0x torch": True,
        "stem 3x3/s2 3->16 @224 backward: within 3.0x torch": False,
        "bn 240 @28 (train) forward: within 1.5x torch": True, "bn 240 @28 (train) backward: within 1.5x torch": False,
        "hardswish 240 @28 forward: within 1.5x torch": False, "hardswish 240 @28 backward: within 1.5x torch": True}
    assert "numpy copy / add 0.50 ms against fast 1.00 ms" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("s", [1, 2])
@pytest.mark.parametrize("groups_kind", ["standard", "grouped", "depthwise", "multiplier"])
@pytest.mark.parametrize("p", [None, 0])
def test_exhaustive_gradients(k, s, groups_kind, p, path):
    """Every kernel size x stride x grouping x padding, odd and even sizes, with bias."""
    g, cin, cout = {"standard": (1, 3, 4), "grouped": (2, 4, 6), "depthwise": (4, 4, 4),
                    "multiplier": (3, 3, 6)}[groups_kind]
    for H, W in ((k + 2, k + 3), (k + 3, k + 2)):
        test_gradients_match_finite_differences((2, cin, H, W, cout, k, s, p, g, True), path)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("args,kw", [((3, 8, 3), dict(stride=2, bias=True)), ((8, 8, 3), dict(groups=8)),
                                     ((8, 16, 1), {}), ((4, 8, 5), dict(groups=2, stride=2))])
def test_backward_without_input_grad_gives_the_same_weight_grads(args, kw, path):
    """input_grad=False (an image input) returns None and leaves the weight and bias gradients
    exactly those of the full backward: dW does not depend on whether dx is computed."""
    rng = np.random.default_rng(4)
    conv = Conv2d(*args, **kw, rng=0)
    x = rng.standard_normal((3, args[0], 11, 11)).astype(np.float32)
    with on(path):
        dy = rng.standard_normal(conv(x).shape).astype(np.float32)
        assert conv.backward(dy).shape == x.shape
        full = {k: v.copy() for k, v in conv.grads().items()}
        for v in conv.grads().values():
            v[...] = np.nan
        assert conv.backward(dy, input_grad=False) is None
    for k, v in conv.grads().items():
        assert np.array_equal(v, full[k]), k
