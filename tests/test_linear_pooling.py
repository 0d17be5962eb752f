"""Linear, global average pooling and Flatten: values, gradients (float64), errors."""
import math

import numpy as np
import pytest

from layer_checks import check_layer_grads
from npmobilenet.nn import Flatten, GlobalAvgPool2d, Linear
from npmobilenet.ops import backend
from npmobilenet.ops.linear import linear_backward, linear_forward
from npmobilenet.ops.pooling import global_avg_pool_backward, global_avg_pool_forward


# ---- Linear -------------------------------------------------------------------------------------
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("n,d,m", [(3, 5, 4), (1, 7, 2), (6, 3, 9)])
def test_linear_gradcheck(n, d, m, bias):
    rng = np.random.default_rng(n * d * m)
    layer = Linear(d, m, bias=bias, rng=1).to(np.float64)
    check_layer_grads(layer, rng.standard_normal((n, d)), seed=2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,d,m", [(3, 5, 4), (16, 1280, 1000), (128, 960, 1280), (1000, 16, 40)])
def test_linear_fast_path_equals_plain(n, d, m, dtype):
    # The fast path splits the products over the threads (kernels.threads.matmul), by output
    # columns for the classifier-shaped ones: every value must still be the plain path's.
    rng = np.random.default_rng(n + d + m)
    x = rng.standard_normal((n, d)).astype(dtype)
    w = rng.standard_normal((m, d)).astype(dtype)
    b = rng.standard_normal(m).astype(dtype)
    dy = rng.standard_normal((n, m)).astype(dtype)
    y, cache = linear_forward(x, w, b)
    grads = linear_backward(dy, cache)
    with backend.plain():
        y_ref, cache_ref = linear_forward(x, w, b)
        grads_ref = linear_backward(dy, cache_ref)
    tol = dict(rtol=1e-5, atol=1e-5 * math.sqrt(max(d, n))) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    for got, want in zip((y, *grads), (y_ref, *grads_ref)):
        assert got.dtype == dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, **tol)


def test_linear_forward_is_x_wt_plus_b_with_torch_layout():
    fc = Linear(4, 3, rng=0).to(np.float64)
    assert fc.weight.shape == (3, 4) and fc.bias.shape == (3,)
    x = np.random.default_rng(1).standard_normal((2, 4))
    want = [[sum(x[n, d] * fc.weight[m, d] for d in range(4)) + fc.bias[m] for m in range(3)] for n in range(2)]
    np.testing.assert_allclose(fc(x), want, rtol=1e-13)


def test_linear_init_bound_is_torch_default():
    fc = Linear(400, 50, rng=0)
    bound = 1 / math.sqrt(400)
    assert np.abs(fc.weight).max() <= bound and np.abs(fc.weight).max() > 0.95 * bound
    assert np.abs(fc.bias).max() <= bound
    assert list(fc.parameters()) == ["weight", "bias"] and list(Linear(3, 2, bias=False).parameters()) == ["weight"]


def test_linear_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    fc = Linear(6, 4, rng=4).to(np.float64)
    ref = torch.nn.Linear(6, 4).double()
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in fc.state_dict().items()})
    x, dy = rng.standard_normal((5, 6)), rng.standard_normal((5, 4))
    xt = torch.from_numpy(x).requires_grad_(True)
    ref(xt).backward(torch.from_numpy(dy))
    np.testing.assert_allclose(fc(x), ref(xt).detach().numpy(), rtol=1e-13)
    np.testing.assert_allclose(fc.backward(dy), xt.grad.numpy(), rtol=1e-13)
    np.testing.assert_allclose(fc.grads()["weight"], ref.weight.grad.numpy(), rtol=1e-13)
    np.testing.assert_allclose(fc.grads()["bias"], ref.bias.grad.numpy(), rtol=1e-13)


@pytest.mark.parametrize("x,exc,words", [
    (np.zeros((2, 3, 1, 1), np.float32), ValueError, "expected \\(N, features\\)"),
    (np.zeros((2, 5), np.float32), ValueError, "5 channels"),
    (np.zeros((2, 4), np.int32), TypeError, "int32"),
    (np.zeros((2, 4), np.float64), TypeError, "parameters are float32"),
])
def test_linear_bad_input(x, exc, words):
    with pytest.raises(exc, match=words) as e:
        Linear(4, 3)(x)
    assert "Linear(4->3)" in str(e.value)


def test_linear_pure_functions_validate():
    with pytest.raises(ValueError, match="w has shape \\(3, 5\\)"):
        linear_forward(np.zeros((2, 4)), np.zeros((3, 5)))
    with pytest.raises(TypeError, match="w has dtype float32 but x has dtype float64"):
        linear_forward(np.zeros((2, 4)), np.zeros((3, 4), np.float32))
    _, cache = linear_forward(np.zeros((2, 4)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="dy must be a float64 array of shape \\(2, 3\\)"):
        linear_backward(np.zeros((3, 2)), cache)
    with pytest.raises(ValueError, match="positive int"):
        Linear(0, 3)


# ---- GlobalAvgPool2d and Flatten ----------------------------------------------------------------
@pytest.mark.parametrize("flatten", [False, True])
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 4, 1, 1), (3, 2, 7, 1)])
def test_pool_gradcheck(shape, flatten):
    rng = np.random.default_rng(sum(shape))
    check_layer_grads(GlobalAvgPool2d(flatten), rng.standard_normal(shape), seed=4)


def test_pool_values_and_shapes():
    x = np.arange(2 * 3 * 2 * 2, dtype=np.float32).reshape(2, 3, 2, 2)
    y = GlobalAvgPool2d()(x)
    assert y.shape == (2, 3, 1, 1) and y.dtype == np.float32
    np.testing.assert_array_equal(y.ravel(), [x[n, c].mean() for n in range(2) for c in range(3)])
    assert GlobalAvgPool2d(flatten=True)(x).shape == (2, 3)


def test_pool_backward_spreads_evenly_into_a_writable_array():
    _, cache = global_avg_pool_forward(np.zeros((1, 2, 3, 4)))
    dx = global_avg_pool_backward(np.array([[[[12.0]], [[24.0]]]]), cache)
    np.testing.assert_array_equal(dx[0, 0], np.ones((3, 4)))
    np.testing.assert_array_equal(dx[0, 1], 2 * np.ones((3, 4)))
    assert dx.flags.writeable and dx.flags.c_contiguous


def test_flatten_roundtrip():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 6, 1, 1))
    f = Flatten()
    y = f(x)
    assert y.shape == (4, 6)
    dy = rng.standard_normal((4, 6))
    np.testing.assert_array_equal(f.backward(dy), dy.reshape(4, 6, 1, 1))
    check_layer_grads(Flatten(), rng.standard_normal((2, 3, 2, 2)), seed=6)


def test_pool_and_flatten_errors():
    with pytest.raises(ValueError, match="GlobalAvgPool2d: input x has shape \\(2, 3\\)"):
        GlobalAvgPool2d()(np.zeros((2, 3), np.float32))
    with pytest.raises(TypeError, match="Flatten: x has dtype int64"):
        Flatten()(np.zeros((2, 3), np.int64))
    p = GlobalAvgPool2d(flatten=True)
    p(np.zeros((2, 3, 4, 4), np.float32))
    with pytest.raises(ValueError, match="dy must be a float32 array of shape \\(2, 3\\)"):
        p.backward(np.zeros((2, 3, 1, 1), np.float32))
