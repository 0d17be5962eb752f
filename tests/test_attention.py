"""Mobile MQA: the attention core (ops/attention.py) and the MobileAttention block.

Finite-difference checks run in float64 (STYLE G1-G2); parity with timm 1.0.31 runs only where
torch and timm are installed.
"""
import numpy as np
import pytest

from npmobilenet.gradcheck import assert_grad_close, numerical_grad
from npmobilenet.ops import attention as A
from npmobilenet.ops import backend

BACKENDS = ["fast", "plain"]


def _on(path):
    """Context that selects the backend path by name."""
    if path == "plain":
        return backend.plain()
    import contextlib
    return contextlib.nullcontext()


def _qkv(rng, n, heads, lq, lkv, dk, dv):
    return (rng.standard_normal((n, heads, lq, dk)), rng.standard_normal((n, lkv, dk)),
            rng.standard_normal((n, lkv, dv)))


def _reference_mqa(q, k, v):
    """Per image and per head, written from equations (1)-(3) with explicit loops."""
    n, heads, lq, dk = q.shape
    out = np.zeros((n, heads, lq, v.shape[2]))
    for b in range(n):
        for h in range(heads):
            s = q[b, h] @ k[b].T / np.sqrt(dk)
            e = np.exp(s - s.max(axis=1, keepdims=True))
            out[b, h] = (e / e.sum(axis=1, keepdims=True)) @ v[b]
    return out


# ---- the core -------------------------------------------------------------------------------
CORE_CASES = [  # (N, heads, Lq, Lkv, dk, dv)
    (2, 1, 5, 3, 4, 3),
    (2, 2, 6, 4, 3, 5),
    (1, 4, 9, 5, 4, 4),
    (2, 4, 4, 4, 2, 3),
]


@pytest.mark.parametrize("path", BACKENDS)
@pytest.mark.parametrize("case", CORE_CASES)
def test_core_forward_matches_per_head_loops(case, path):
    q, k, v = _qkv(np.random.default_rng(1), *case)
    with _on(path):
        out, _ = A.mqa_forward(q, k, v)
    np.testing.assert_allclose(out, _reference_mqa(q, k, v), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("path", BACKENDS)
@pytest.mark.parametrize("case", CORE_CASES)
def test_core_gradients_match_finite_differences(case, path):
    rng = np.random.default_rng(2)
    q, k, v = _qkv(rng, *case)
    dout = rng.standard_normal(q.shape[:3] + (v.shape[2],))
    with _on(path):
        _, cache = A.mqa_forward(q, k, v)
        dq, dk, dv = A.mqa_backward(dout, cache)
        f = lambda: float(np.sum(A.mqa_forward(q, k, v)[0] * dout))  # noqa: E731
        for name, arr, ana in (("q", q, dq), ("k", k, dk), ("v", v, dv)):
            assert_grad_close(ana, numerical_grad(f, arr), name)


def test_core_plain_and_fast_paths_agree():
    rng = np.random.default_rng(3)
    for dtype, tol in ((np.float64, 1e-12), (np.float32, 2e-5)):
        q, k, v = (t.astype(dtype) for t in _qkv(rng, 2, 4, 12, 6, 8, 5))
        dout = rng.standard_normal((2, 4, 12, 5)).astype(dtype)
        fast_out, cache = A.mqa_forward(q, k, v)
        fast_grads = A.mqa_backward(dout, cache)
        with backend.plain():
            plain_out, cache = A.mqa_forward(q, k, v)
            plain_grads = A.mqa_backward(dout, cache)
        assert fast_out.dtype == plain_out.dtype == dtype
        np.testing.assert_allclose(fast_out, plain_out, rtol=tol, atol=tol)
        for a, b in zip(fast_grads, plain_grads):
            assert a.dtype == dtype
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("path", BACKENDS)
def test_core_softmax_is_stable_for_huge_scores(path):
    # Scores near 1e4 overflow exp() unless the row max is subtracted first.
    rng = np.random.default_rng(4)
    q, k, v = _qkv(rng, 1, 2, 3, 4, 2, 2)
    with _on(path):
        out, cache = A.mqa_forward(q * 1e4, k, v)
        grads = A.mqa_backward(np.ones_like(out), cache)
    assert np.all(np.isfinite(out)) and all(np.all(np.isfinite(g)) for g in grads)
    p = cache[3]
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=1e-12)
    # With such peaked scores, each query picks the value of its best-scoring key.
    best = np.argmax(np.einsum("nhld,npd->nhlp", q, k), axis=-1)
    np.testing.assert_allclose(out[0], v[0][best[0]], atol=1e-8)


def test_core_default_scale_is_inverse_sqrt_key_dim():
    rng = np.random.default_rng(5)
    q, k, v = _qkv(rng, 1, 2, 3, 4, 9, 2)
    out_default, _ = A.mqa_forward(q, k, v)
    out_explicit, _ = A.mqa_forward(q, k, v, scale=1 / 3)
    out_other, _ = A.mqa_forward(q, k, v, scale=1.0)
    np.testing.assert_array_equal(out_default, out_explicit)
    assert not np.allclose(out_default, out_other)


@pytest.mark.parametrize("path", BACKENDS)
def test_core_backward_reads_but_never_writes(path):
    rng = np.random.default_rng(6)
    q, k, v = _qkv(rng, 2, 2, 5, 3, 4, 3)
    dout = rng.standard_normal((2, 2, 5, 3))
    with _on(path):
        _, cache = A.mqa_forward(q, k, v)
        saved_dout, saved_cache = dout.copy(), [np.copy(c) for c in cache]
        first = A.mqa_backward(dout, cache)
        second = A.mqa_backward(dout, cache)
    np.testing.assert_array_equal(dout, saved_dout)
    for c, s in zip(cache, saved_cache):
        np.testing.assert_array_equal(c, s)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_core_rejects_mismatched_shapes():
    rng = np.random.default_rng(7)
    q, k, v = _qkv(rng, 2, 2, 5, 3, 4, 3)
    with pytest.raises(ValueError, match="k .*N, Lkv, dk"):
        A.mqa_forward(q, k[..., :3], v)
    with pytest.raises(ValueError, match="expected q"):
        A.mqa_forward(q[0], k, v)
    with pytest.raises(ValueError, match="fit together"):
        A.mqa_forward(q, k, v[:, :2])
    with pytest.raises(TypeError, match="dtype"):
        A.mqa_forward(q.astype(np.float32), k, v)
    _, cache = A.mqa_forward(q, k, v)
    with pytest.raises(ValueError, match="dout"):
        A.mqa_backward(np.zeros((2, 2, 5, 4)), cache)


# ---- reshapes and resampling ----------------------------------------------------------------
def test_split_heads_uses_timm_channel_order_and_merge_inverts_it():
    rng = np.random.default_rng(8)
    n, heads, d, h, w = 2, 3, 4, 3, 5
    t = rng.standard_normal((n, heads * d, h, w))
    s = A.split_heads(t, heads)
    assert s.shape == (n, heads, h * w, d)
    # timm: channel c = head * d + j, token l = row * W + col
    for head, j, row, col in [(0, 0, 0, 0), (1, 2, 2, 3), (2, 3, 1, 4)]:
        assert s[1, head, row * w + col, j] == t[1, head * d + j, row, col]
    np.testing.assert_array_equal(A.merge_heads(s, h, w), t)
    tok = A.to_tokens(t)
    assert tok.shape == (n, h * w, heads * d) and tok[0, 2 * w + 1, 5] == t[0, 5, 2, 1]
    np.testing.assert_array_equal(A.from_tokens(tok, h, w), t)


def test_bilinear_matrix_matches_torch_align_corners_false():
    # torch: F.interpolate([0, 1], scale_factor=2, mode='linear') = [0, .25, .75, 1]
    np.testing.assert_allclose(A.bilinear_matrix(2, 2) @ np.array([0.0, 1.0]), [0, .25, .75, 1])
    a = A.bilinear_matrix(5, 3)
    assert a.shape == (15, 5)
    np.testing.assert_allclose(a.sum(axis=1), 1.0)


@pytest.mark.parametrize("shape,stride", [((2, 3, 5, 4), (2, 2)), ((1, 2, 6, 7), (3, 2))])
def test_avg_pool_and_upsample_gradients(shape, stride):
    rng = np.random.default_rng(9)
    x = rng.standard_normal(shape)
    y, cache = A.avg_pool_forward(x, stride)
    assert y.shape == shape[:2] + (shape[2] // stride[0], shape[3] // stride[1])
    np.testing.assert_allclose(y[0, 0, 0, 0], x[0, 0, :stride[0], :stride[1]].mean())
    dy = rng.standard_normal(y.shape)
    f = lambda: float(np.sum(A.avg_pool_forward(x, stride)[0] * dy))  # noqa: E731
    assert_grad_close(A.avg_pool_backward(dy, cache), numerical_grad(f, x), "avg_pool x")

    u, cache = A.upsample_bilinear_forward(x, stride)
    assert u.shape == shape[:2] + (shape[2] * stride[0], shape[3] * stride[1])
    du = rng.standard_normal(u.shape)
    f = lambda: float(np.sum(A.upsample_bilinear_forward(x, stride)[0] * du))  # noqa: E731
    assert_grad_close(A.upsample_bilinear_backward(du, cache), numerical_grad(f, x), "upsample x")
