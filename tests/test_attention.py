"""Mobile MQA: the attention core (ops/attention.py) and the MobileAttention block.

Finite-difference checks run in float64 (STYLE G1-G2); parity with timm 1.0.31 runs only where
torch and timm are installed.
"""
import contextlib

import numpy as np
import pytest

from npmobilenet import count
from npmobilenet.blocks.mobile_attention import MobileAttention, MultiQueryAttention2d
from npmobilenet.gradcheck import assert_grad_close, gradcheck, numerical_grad
from npmobilenet.module import BackwardBeforeForward
from npmobilenet.ops import attention as A
from npmobilenet.ops import backend

BACKENDS = ["fast", "plain"]


def _on(path):
    """Context that selects the backend path by name."""
    return backend.plain() if path == "plain" else contextlib.nullcontext()


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


# ---- the MobileAttention block ----------------------------------------------------------------

# timm 1.0.31, mobilenetv4_hybrid_medium: state_dict of blocks.2.4 (C 160, h 4, d 64, kv_stride 2)
# and of blocks.3.8 (C 256, h 4, d 64, kv_stride 1), in timm's order (num_batches_tracked omitted).
TIMM_KEYS_KV2 = [
    ("norm.weight", (160,)), ("norm.bias", (160,)), ("norm.running_mean", (160,)),
    ("norm.running_var", (160,)), ("attn.query.proj.weight", (256, 160, 1, 1)),
    ("attn.key.down_conv.weight", (160, 1, 3, 3)), ("attn.key.norm.weight", (160,)),
    ("attn.key.norm.bias", (160,)), ("attn.key.norm.running_mean", (160,)),
    ("attn.key.norm.running_var", (160,)), ("attn.key.proj.weight", (64, 160, 1, 1)),
    ("attn.value.down_conv.weight", (160, 1, 3, 3)), ("attn.value.norm.weight", (160,)),
    ("attn.value.norm.bias", (160,)), ("attn.value.norm.running_mean", (160,)),
    ("attn.value.norm.running_var", (160,)), ("attn.value.proj.weight", (64, 160, 1, 1)),
    ("attn.output.proj.weight", (160, 256, 1, 1)), ("layer_scale.gamma", (160,)),
]
TIMM_KEYS_KV1 = [
    ("norm.weight", (256,)), ("norm.bias", (256,)), ("norm.running_mean", (256,)),
    ("norm.running_var", (256,)), ("attn.query.proj.weight", (256, 256, 1, 1)),
    ("attn.key.proj.weight", (64, 256, 1, 1)), ("attn.value.proj.weight", (64, 256, 1, 1)),
    ("attn.output.proj.weight", (256, 256, 1, 1)), ("layer_scale.gamma", (256,)),
]


def _hybrid_m_mqa(c, kv_stride, **kw):
    return MobileAttention(c, c, num_heads=4, key_dim=64, value_dim=64, kv_stride=kv_stride,
                           use_multi_query=True, rng=0, **kw)


@pytest.mark.parametrize("c,kv_stride,keys,params", [
    # params: reference_specs §6.2, "Hybrid-M stage-3 MQA = 106,400; stage-4 MQA = 164,608"
    (160, 2, TIMM_KEYS_KV2, 106_400), (256, 1, TIMM_KEYS_KV1, 164_608)])
def test_state_dict_keys_and_shapes_are_timms(c, kv_stride, keys, params):
    block = _hybrid_m_mqa(c, kv_stride)
    assert [(k, v.shape) for k, v in block.state_dict().items()] == keys
    assert block.num_parameters() == params
    assert set(block.grads()) == set(block.parameters())
    np.testing.assert_array_equal(block.layer_scale.gamma, np.float32(1e-5))   # timm hybrid init
    assert block.has_skip


def test_optional_paths_add_timms_keys():
    block = MobileAttention(8, 12, num_heads=2, key_dim=4, value_dim=4, use_multi_query=True,
                            query_strides=2, use_cpe=True, layer_scale_init_value=None, rng=0)
    assert list(block.state_dict()) == [
        "conv_cpe_dw.weight", "conv_cpe_dw.bias", "norm.weight", "norm.bias", "norm.running_mean",
        "norm.running_var", "attn.query.norm.weight", "attn.query.norm.bias",
        "attn.query.norm.running_mean", "attn.query.norm.running_var", "attn.query.proj.weight",
        "attn.key.proj.weight", "attn.value.proj.weight", "attn.output.proj.weight"]
    assert not block.has_skip  # 8 -> 12 channels


def _randomize(block, rng):
    """Parameters away from their exact-constant inits (BN ones/zeros, gamma 1e-5) and random
    running statistics, so that every path carries an O(1) signal and eval BN is not trivial."""
    for name, p in block.parameters().items():
        if name.endswith("gamma") or name.endswith("norm.weight"):
            p[...] = rng.uniform(0.5, 1.5, p.shape) * rng.choice([-1.0, 1.0], p.shape)
        elif name.endswith("bias"):
            p[...] = 0.5 * rng.standard_normal(p.shape)
        else:
            p[...] *= rng.uniform(0.8, 1.6, p.shape)
    for name, b in block.buffers().items():
        b[...] = (rng.uniform(0.5, 2.0, b.shape) if name.endswith("running_var")
                  else 0.5 * rng.standard_normal(b.shape))
    return block


BLOCK_CASES = [  # (in, out, heads, key_dim, value_dim, kv_stride, (N, H, W), extra kwargs)
    (4, 4, 1, 3, 2, 1, (2, 3, 3), {}),
    (4, 4, 2, 2, 3, 2, (2, 5, 4), {}),
    (6, 6, 4, 2, 2, 2, (2, 4, 4), {}),
    (4, 6, 2, 3, 2, 2, (2, 3, 5), {}),                                # no skip (4 -> 6)
    (4, 4, 2, 2, 2, 2, (2, 5, 5), {"use_cpe": True}),
    (4, 4, 2, 2, 3, 1, (2, 4, 6), {"query_strides": 2}),
    (4, 4, 4, 2, 2, 2, (2, 3, 4), {"layer_scale_init_value": None, "noskip": True}),
]


def _block(case, dtype=np.float64, seed=0):
    cin, cout, heads, dk, dv, kv, _, kw = case
    block = MobileAttention(cin, cout, num_heads=heads, key_dim=dk, value_dim=dv, kv_stride=kv,
                            use_multi_query=True, rng=seed, dtype=dtype, **kw)
    return _randomize(block, np.random.default_rng(seed + 1))


def _input(case, rng, dtype=np.float64):
    n, h, w = case[6]
    return (3 * rng.standard_normal((n, case[0], h, w)) + 2).astype(dtype)   # STYLE G1: BN input


# Provably zero gradients.  The key path's last BN bias b adds the same vector W_proj b to every
# key, so every score row S[h, l, :] shifts by the constant q[h, l] . W_proj b, which softmax
# ignores.  In the backward: sum_p dS[h, l, p] = sum_p P (dP - <dP, P>) = 0, hence
# sum_p dk[p, :] = 0 and d(key.norm.bias) = W_proj^T sum_p dk[p, :] = 0.  Its finite difference
# is pure rounding noise (~1e-11), so the per-tensor relative rule cannot apply; instead it must be
# zero to rounding relative to the whole gradient (a wrong softmax backward makes it O(1)).
ZERO_GRAD = {"attn.key.norm.bias"}


# Every case, train and eval, is checked elementwise on the plain path (the reference; steady speed
# for tiny tensors).  The default fast path gets the directional check (STYLE G3) on every case,
# and test_block_plain_and_fast_paths_agree ties the two paths together elementwise.
GRAD_RUNS = [(c, "plain", m) for c in BLOCK_CASES for m in ("train", "eval")]


@pytest.mark.parametrize("case,path,mode", GRAD_RUNS, ids=lambda c: c if isinstance(c, str)
                         else f"{c[0]}-{c[1]}h{c[2]}kv{c[5]}{c[6]}".replace(" ", ""))
def test_block_gradients_match_finite_differences(case, path, mode):
    block = _block(case).train(mode == "train")
    x = _input(case, np.random.default_rng(2))
    assert sum(p.size for p in block.parameters().values()) <= 2000 and x.size <= 2000
    with _on(path):
        report = gradcheck(block, x, mode="elementwise", seed=3)
    assert [r["name"] for r in report.rows] == ["input"] + list(block.parameters())
    failed = [r["name"] for r in report.rows if not r["passed"] and r["name"] not in ZERO_GRAD]
    assert not failed, f"{failed}\n{report}"
    total = np.sqrt(sum(r["grad_norm"] ** 2 for r in report.rows))
    for r in report.rows:
        if r["name"] in ZERO_GRAD:
            assert r["grad_norm"] <= 1e-12 * total, f"{r['name']} should be 0\n{report}"
            dy = np.random.default_rng(9).standard_normal(block.forward(x).shape)
            with _on(path):
                num = numerical_grad(lambda: float(np.sum(block.forward(x) * dy)),
                                     block.parameters()[r["name"]])
            assert np.abs(num).max() <= 1e-8 * total, f"{r['name']}: numeric {num}"


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("case", BLOCK_CASES, ids=lambda c: f"{c[0]}-{c[1]}h{c[2]}kv{c[5]}{c[6]}".replace(" ", ""))
def test_block_fast_path_passes_the_directional_check(case, mode):
    block = _block(case).train(mode == "train")
    x = _input(case, np.random.default_rng(2))
    report = gradcheck(block, x, mode="directional", seed=4, directions=2)
    assert len(report.rows) == 2 * (2 + len(block.parameters()))
    report.assert_passed()


@pytest.mark.parametrize("case", BLOCK_CASES[1:3] + BLOCK_CASES[4:6])
def test_block_plain_and_fast_paths_agree(case):
    block = _block(case)
    x = _input(case, np.random.default_rng(4))
    dy = np.random.default_rng(5).standard_normal(block.forward(x).shape)
    results = []
    for ctx in (_on("fast"), _on("plain")):
        with ctx:
            y = block.forward(x)
            dx = block.backward(dy)
            results.append([y, dx] + [g.copy() for g in block.grads().values()])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("case", [BLOCK_CASES[1], BLOCK_CASES[4]])
def test_block_backward_leaves_dy_alone_and_repeats_exactly(case):
    block = _block(case)
    x = _input(case, np.random.default_rng(6))
    y = block.forward(x)
    dy = np.random.default_rng(7).standard_normal(y.shape)
    saved = dy.copy()
    dx1 = block.backward(dy)
    g1 = {k: g.copy() for k, g in block.grads().items()}
    dx2 = block.backward(dy)
    np.testing.assert_array_equal(dy, saved)
    np.testing.assert_array_equal(dx1, dx2)
    for k, g in block.grads().items():
        np.testing.assert_array_equal(g, g1[k], err_msg=k)


def test_backward_before_forward_raises():
    block = _block(BLOCK_CASES[1])
    with pytest.raises(BackwardBeforeForward, match="MobileAttention"):
        block.backward(np.zeros((2, 4, 5, 4)))
    with pytest.raises(BackwardBeforeForward, match="MultiQueryAttention2d"):
        block.attn.backward(np.zeros((2, 4, 5, 4)))


def test_float32_forward_and_backward_track_float64():
    case = BLOCK_CASES[2]
    b64, b32 = _block(case), _block(case, dtype=np.float32)
    x = _input(case, np.random.default_rng(8))
    y64, y32 = b64.forward(x), b32.forward(x.astype(np.float32))
    assert y32.dtype == np.float32 and b32.backward(y32).dtype == np.float32
    np.testing.assert_allclose(y32, y64, rtol=1e-4, atol=1e-4 * np.abs(y64).max())


def test_bad_arguments_name_the_layer():
    block = _block(BLOCK_CASES[1])
    with pytest.raises(ValueError, match="MobileAttention.*3 channels.*expected 4"):
        block.forward(np.zeros((2, 3, 5, 4)))
    with pytest.raises(TypeError, match="MobileAttention.*float32"):
        block.forward(np.zeros((2, 4, 5, 4), np.float32))
    with pytest.raises(ValueError, match="use_multi_query=True"):
        MobileAttention(4, 4, num_heads=2, key_dim=2, value_dim=2)
    with pytest.raises(ValueError, match="padding"):
        MultiQueryAttention2d(4, num_heads=2, kv_stride=2, padding="same")
    with pytest.raises(ValueError, match="attn_drop"):
        MultiQueryAttention2d(4, num_heads=2, attn_drop=0.1)


def test_timm_defaults_for_head_dims_and_heads():
    attn = MultiQueryAttention2d(12, num_heads=3)
    assert (attn.key_dim, attn.value_dim, attn.scale) == (4, 4, 0.5)
    block = MobileAttention(12, 12, num_heads=None, key_dim=4, value_dim=4, use_multi_query=True)
    assert block.attn.num_heads == 3
    assert MobileAttention(8, 8, stride=2, use_multi_query=True).has_skip is False


def _hybrid_m_madds(c, h, d, v, size):
    """reference_specs §6.2: L·C·h·d (q) + 2·[Lkv·9C (dw) + Lkv·C·d (proj)] + h·L·Lkv·2d (attention)
    + L·h·d·C (out); the dw term only when v > 1.  L = size², Lkv = ceil(size / v)²."""
    L, Lkv = size * size, (-(-size // v)) ** 2
    dw = Lkv * 9 * c if v > 1 else 0
    return L * c * h * d + 2 * (dw + Lkv * c * d) + h * L * Lkv * 2 * d + L * h * d * c


@pytest.mark.parametrize("c,v,size", [(160, 2, 16), (160, 2, 15), (256, 1, 8), (256, 1, 7)])
def test_madds_follow_the_reference_formula(c, v, size):
    block = _hybrid_m_mqa(c, v)
    assert block.madds((1, c, size, size)) == _hybrid_m_madds(c, 4, 64, v, size)
    assert block.madds((3, c, size, size)) == 3 * _hybrid_m_madds(c, 4, 64, v, size)
    lkv = (-(-size // v)) ** 2
    assert block.attn.attention_madds((2, c, size, size)) == 2 * 4 * size * size * lkv * 128
    assert not hasattr(block, "attention_madds")   # counted once, on the child, by count.summary


def test_summary_counts_the_block_once():
    c, size = 16, 6
    block = MobileAttention(c, c, num_heads=2, key_dim=4, value_dim=4, kv_stride=2,
                            use_multi_query=True, rng=0)
    s = count.summary(block, (c, size, size))
    assert s.total_madds == block.madds((1, c, size, size))
    assert s.total_params == block.num_parameters()


# ---- parity with timm 1.0.31 (a development check: needs torch and timm; skipped without them) ---
PARITY_CASES = BLOCK_CASES + [
    (160, 160, 4, 64, 64, 2, (2, 16, 16), {}),   # Hybrid-M 1/16-stage MQA
    (192, 192, 8, 48, 48, 2, (1, 11, 13), {}),   # Hybrid-L 1/16-stage MQA, odd sizes
    (256, 256, 4, 64, 64, 1, (2, 8, 8), {}),     # Hybrid-M 1/32-stage MQA
    (8, 12, 2, 4, 6, 2, (2, 7, 6), {"query_strides": (2, 3), "use_cpe": True, "dw_kernel_size": 5}),
]


def _timm_pair(case, torch):
    """Our block and timm's, same config and same (randomised) weights, both float64."""
    from timm.models._efficientnet_blocks import MobileAttention as TimmMobileAttention
    cin, cout, heads, dk, dv, kv, _, kw = case
    ours = _block(case)
    theirs = TimmMobileAttention(cin, cout, num_heads=heads, key_dim=dk, value_dim=dv, kv_stride=kv,
                                 use_multi_query=True, **kw).double()
    missing, unexpected = theirs.load_state_dict(
        {k: torch.from_numpy(v) for k, v in ours.state_dict().items()}, strict=False)
    assert unexpected == [] and all(k.endswith("num_batches_tracked") for k in missing)
    assert list(ours.state_dict()) == [k for k in theirs.state_dict() if "num_batches" not in k]
    return ours, theirs


@pytest.mark.parametrize("case", PARITY_CASES, ids=lambda c: f"{c[0]}-{c[1]}h{c[2]}kv{c[5]}{c[6]}".replace(" ", ""))
def test_parity_with_timm(case):
    torch = pytest.importorskip("torch")
    pytest.importorskip("timm")
    ours, theirs = _timm_pair(case, torch)
    rng = np.random.default_rng(10)
    x = _input(case, rng)

    def close(mine, ref, what, scale=None):
        """rtol 1e-10, with an absolute floor 1e-12 * scale (default: the largest |ref|).  For
        gradients the scale is the largest gradient of the whole block: some gradients are exactly
        0 (the key BN bias, see ZERO_GRAD; a bias before a train-mode BN), and both libraries then
        return rounding noise of ~1e-15 that no relative rule can compare."""
        ref = ref.detach().numpy() if hasattr(ref, "detach") else ref
        scale = np.abs(ref).max() if scale is None else scale
        np.testing.assert_allclose(mine, ref, rtol=1e-10, atol=1e-12 * scale, err_msg=what)

    # eval: outputs
    ours.eval(), theirs.eval()
    close(ours.forward(x), theirs(torch.from_numpy(x)), "eval output")
    # train: outputs, input and parameter gradients, updated running statistics
    ours.train(), theirs.train()
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    yt = theirs(xt)
    y = ours.forward(x)
    close(y, yt, "train output")
    dy = rng.standard_normal(y.shape)
    yt.backward(torch.from_numpy(dy))
    theirs_grads = {k: p.grad.numpy() for k, p in theirs.named_parameters()}
    scale = max(np.abs(g).max() for g in list(theirs_grads.values()) + [xt.grad.numpy()])
    close(ours.backward(dy), xt.grad, "input gradient", scale)
    assert set(ours.grads()) == set(theirs_grads)
    for name, g in ours.grads().items():
        close(g, theirs_grads[name], f"gradient of {name}", scale)
    theirs_state = theirs.state_dict()
    for name, b in ours.buffers().items():
        close(b, theirs_state[name], f"buffer {name}")
