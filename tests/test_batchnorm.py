"""BatchNorm2d: PyTorch's maths (train and eval), its gradients, its running statistics.

Finite differences in float64 (STYLE G1-G2), inputs 3*N(0,1) + 2 as in CS231n.  Parity with
torch.nn.BatchNorm2d runs only where torch is installed.
"""
import numpy as np
import pytest

from layer_checks import PATHS, check_layer_grads, on, perturb_params
from npmobilenet.module import BackwardBeforeForward
from npmobilenet.nn import BatchNorm2d
from npmobilenet.ops.batchnorm import BNCache, batchnorm_backward, batchnorm_forward

SHAPES = [(2, 3, 4, 5), (4, 2, 3, 3), (1, 3, 2, 2), (5, 4, 1, 1), (3, 1, 2, 3)]


def _bn(C, rng, dtype=np.float64):
    bn = BatchNorm2d(C).to(dtype)
    perturb_params(bn, rng)
    return bn


def _x(shape, rng, dtype=np.float64):
    return (3 * rng.standard_normal(shape) + 2).astype(dtype)


# ---- gradients ----------------------------------------------------------------------------------
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("shape", SHAPES)
def test_gradcheck_train_mode(shape, path):
    rng = np.random.default_rng(sum(shape))
    bn = _bn(shape[1], rng)
    with on(path):
        check_layer_grads(bn, _x(shape, rng), seed=1)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("shape", SHAPES + [(1, 2, 1, 1)])
def test_gradcheck_eval_mode(shape, path):
    rng = np.random.default_rng(sum(shape) + 7)
    bn = _bn(shape[1], rng).eval()
    bn.running_mean[...] = rng.standard_normal(shape[1])
    bn.running_var[...] = rng.uniform(0.5, 3.0, shape[1])
    with on(path):
        check_layer_grads(bn, _x(shape, rng), seed=2)


def test_train_backward_matches_the_uncompacted_chain_rule():
    """Eq. (6) against the textbook staged backward (through mu, var and xhat separately)."""
    rng = np.random.default_rng(3)
    x, dy = _x((3, 2, 4, 4), rng), rng.standard_normal((3, 2, 4, 4))
    gamma, beta, eps = rng.standard_normal(2), rng.standard_normal(2), 1e-5
    _, cache = batchnorm_forward(x, gamma, beta, eps)
    dx, dgamma, dbeta = batchnorm_backward(dy, cache)
    ax, M = (0, 2, 3), 3 * 16
    mu, var = x.mean(ax, keepdims=True), x.var(ax, keepdims=True)
    xc, g = x - mu, gamma[:, None, None]
    dxhat = dy * g
    dvar = np.sum(dxhat * xc * -0.5 * (var + eps) ** -1.5, ax, keepdims=True)
    dmu = np.sum(-dxhat / np.sqrt(var + eps), ax, keepdims=True) + dvar * np.mean(-2 * xc, ax, keepdims=True)
    want = dxhat / np.sqrt(var + eps) + dvar * 2 * xc / M + dmu / M
    np.testing.assert_allclose(dx, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dbeta, dy.sum(ax), rtol=1e-12)
    np.testing.assert_allclose(dgamma, (dy * xc / np.sqrt(var + eps)).sum(ax), rtol=1e-10)


# ---- forward maths ------------------------------------------------------------------------------
@pytest.mark.parametrize("path", PATHS)
def test_train_forward_normalises_with_biased_batch_statistics(path):
    rng = np.random.default_rng(4)
    x = _x((4, 3, 5, 2), rng)
    bn = _bn(3, rng)
    with on(path):
        y = bn(x)
    for c in range(3):
        v = x[:, c].ravel()
        mu = v.sum() / v.size
        var = ((v - mu) ** 2).sum() / v.size  # biased: divide by M, not M - 1
        want = bn.weight[c] * (x[:, c] - mu) / np.sqrt(var + 1e-5) + bn.bias[c]
        np.testing.assert_allclose(y[:, c], want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("path", PATHS)
def test_eval_forward_uses_running_statistics(path):
    rng = np.random.default_rng(5)
    bn = _bn(3, rng).eval()
    bn.running_mean[...] = [1.0, -2.0, 0.5]
    bn.running_var[...] = [4.0, 0.25, 1.0]
    x = _x((2, 3, 3, 3), rng)
    with on(path):
        y = bn(x)
    rm, rv = bn.running_mean[:, None, None], bn.running_var[:, None, None]
    want = bn.weight[:, None, None] * (x - rm) / np.sqrt(rv + 1e-5) + bn.bias[:, None, None]
    np.testing.assert_allclose(y, want, rtol=1e-13, atol=1e-13)
    np.testing.assert_array_equal(bn.running_mean, [1.0, -2.0, 0.5])  # eval never updates them


@pytest.mark.parametrize("path", PATHS)
def test_running_statistics_follow_torch_update_rule(path):
    """new = 0.9 * old + 0.1 * batch, the variance unbiased (M / (M - 1)); numbers by hand."""
    rng = np.random.default_rng(6)
    bn = BatchNorm2d(2).to(np.float64)
    batches = [_x((3, 2, 2, 2), rng) for _ in range(3)]
    want_mean, want_var = np.zeros(2), np.ones(2)
    with on(path):
        for x in batches:
            bn(x)
            for c in range(2):
                v = x[:, c].ravel()   # M = 12 values per channel
                mu = v.sum() / 12
                unbiased = ((v - mu) ** 2).sum() / 11
                want_mean[c] = 0.9 * want_mean[c] + 0.1 * mu
                want_var[c] = 0.9 * want_var[c] + 0.1 * unbiased
            np.testing.assert_allclose(bn.running_mean, want_mean, rtol=1e-13)
            np.testing.assert_allclose(bn.running_var, want_var, rtol=1e-13)


def test_momentum_weighs_the_new_batch():
    bn = BatchNorm2d(1, momentum=0.25).to(np.float64)
    x = np.array([1.0, 3.0]).reshape(2, 1, 1, 1)      # mean 2, unbiased variance 2
    bn(x)
    np.testing.assert_allclose(bn.running_mean, [0.25 * 2.0])
    np.testing.assert_allclose(bn.running_var, [0.75 * 1.0 + 0.25 * 2.0])


def test_running_buffers_are_updated_in_place():
    bn = BatchNorm2d(3)
    live = bn.buffers()["running_mean"]
    bn(np.ones((2, 3, 2, 2), np.float32))
    assert live is bn.running_mean and live[0] == np.float32(0.1)


def test_state_dict_keys_in_torch_order():
    assert list(BatchNorm2d(5).state_dict()) == ["weight", "bias", "running_mean", "running_var"]
    bn = BatchNorm2d(5)
    assert bn.weight.tolist() == [1.0] * 5 and bn.bias.tolist() == [0.0] * 5
    assert bn.running_mean.tolist() == [0.0] * 5 and bn.running_var.tolist() == [1.0] * 5


# ---- fast path == plain path --------------------------------------------------------------------
@pytest.mark.parametrize("dtype,rtol,atol", [(np.float64, 1e-12, 1e-12), (np.float32, 2e-5, 2e-5)])
@pytest.mark.parametrize("shape", [(4, 24, 7, 7), (3, 5, 1, 1), (2, 3, 9, 4)])
@pytest.mark.parametrize("training", [True, False])
def test_fast_equals_plain(shape, dtype, rtol, atol, training):
    rng = np.random.default_rng(7)
    x = _x(shape, rng, dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    gamma, beta = rng.standard_normal(shape[1]).astype(dtype), rng.standard_normal(shape[1]).astype(dtype)
    rm, rv = rng.standard_normal(shape[1]).astype(dtype), rng.uniform(0.5, 2, shape[1]).astype(dtype)
    out = {}
    for path in PATHS:
        with on(path):
            y, cache = batchnorm_forward(x, gamma, beta, 1e-5, training, rm, rv)
            out[path] = (y, cache.mean, cache.var) + batchnorm_backward(dy, cache)
    for name, a, b in zip(("y", "mean", "var", "dx", "dgamma", "dbeta"), out["fast"], out["plain"]):
        assert a.dtype == dtype, name
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol * max(1.0, float(np.abs(b).max())), err_msg=name)


def test_fast_path_accepts_non_contiguous_input():
    rng = np.random.default_rng(8)
    x = np.ascontiguousarray(_x((3, 4, 5, 2), rng).transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)
    assert not x.flags.c_contiguous
    gamma, beta = rng.standard_normal(4), rng.standard_normal(4)
    y_fast, _ = batchnorm_forward(x, gamma, beta)
    with on("plain"):
        y_plain, _ = batchnorm_forward(x, gamma, beta)
    np.testing.assert_allclose(y_fast, y_plain, rtol=1e-12, atol=1e-12)


def test_large_mean_does_not_cancel():
    """Two-pass variance: a channel at 1e4 +- 1 in float32 still normalises to unit variance."""
    rng = np.random.default_rng(9)
    x = (1e4 + rng.standard_normal((8, 2, 4, 4))).astype(np.float32)
    for path in PATHS:
        with on(path):
            y = BatchNorm2d(2)(x)
        np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1.0, rtol=1e-3, err_msg=path)


# ---- errors -------------------------------------------------------------------------------------
def test_single_value_per_channel_in_training_raises():
    with pytest.raises(ValueError, match="N\\*H\\*W >= 2"):
        BatchNorm2d(3)(np.zeros((1, 3, 1, 1), np.float32))
    BatchNorm2d(3).eval()(np.zeros((1, 3, 1, 1), np.float32))  # eval mode is fine


@pytest.mark.parametrize("x,exc,words", [
    (np.zeros((2, 3, 4), np.float32), ValueError, "3 dimensions"),
    (np.zeros((2, 4, 3, 3), np.float32), ValueError, "4 channels"),
    (np.zeros((2, 3, 3, 3), np.int64), TypeError, "int64"),
    (np.zeros((2, 3, 3, 3), np.float64), TypeError, "float64 but the parameters are float32"),
    ([[1.0]], TypeError, "numpy.ndarray"),
])
def test_bad_input_raises_naming_the_layer(x, exc, words):
    with pytest.raises(exc, match="BatchNorm2d\\(3\\).*input x") as e:
        BatchNorm2d(3)(x)
    assert words in str(e.value)


@pytest.mark.parametrize("kw,words", [
    (dict(num_features=0), "num_features"), (dict(num_features=3, eps=0), "eps"),
    (dict(num_features=3, momentum=None), "momentum"), (dict(num_features=3, momentum=1.5), "momentum"),
])
def test_bad_constructor_arguments(kw, words):
    with pytest.raises(ValueError, match=words):
        BatchNorm2d(**kw)


def test_pure_functions_validate_their_arguments():
    x = np.zeros((2, 3, 2, 2))
    with pytest.raises(ValueError, match="gamma must be a float64 array of shape \\(3,\\)"):
        batchnorm_forward(x, np.ones(2), np.zeros(3))
    with pytest.raises(ValueError, match="running_mean and running_var"):
        batchnorm_forward(x, np.ones(3), np.zeros(3), training=False)
    _, cache = batchnorm_forward(x, np.ones(3), np.zeros(3))
    with pytest.raises(ValueError, match="dy must be a float64 array of shape \\(2, 3, 2, 2\\)"):
        batchnorm_backward(np.zeros((2, 3, 2, 1)), cache)
    with pytest.raises(TypeError, match="BNCache"):
        batchnorm_backward(x, (1, 2))
    assert isinstance(cache, BNCache)


def test_backward_before_forward_raises():
    with pytest.raises(BackwardBeforeForward, match="BatchNorm2d"):
        BatchNorm2d(2).backward(np.zeros((1, 2, 2, 2), np.float32))


# ---- parity with PyTorch -----------------------------------------------------------------------
@pytest.mark.parametrize("path", PATHS)
def test_matches_torch(path):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(10)
    shape = (4, 3, 5, 5)
    ours = _bn(3, rng)
    ref = torch.nn.BatchNorm2d(3).double()
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(ours.weight))
        ref.bias.copy_(torch.from_numpy(ours.bias))
    with on(path):
        for step in range(3):       # train: outputs, grads and the running estimates
            x, dy = _x(shape, rng), rng.standard_normal(shape)
            xt = torch.from_numpy(x).requires_grad_(True)
            yt = ref(xt)
            yt.backward(torch.from_numpy(dy))
            np.testing.assert_allclose(ours(x), yt.detach().numpy(), rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(ours.backward(dy), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(ours.grads()["weight"], ref.weight.grad.numpy(), rtol=1e-10)
            np.testing.assert_allclose(ours.grads()["bias"], ref.bias.grad.numpy(), rtol=1e-10)
            np.testing.assert_allclose(ours.running_mean, ref.running_mean.numpy(), rtol=1e-13)
            np.testing.assert_allclose(ours.running_var, ref.running_var.numpy(), rtol=1e-13)
            ref.zero_grad()
        ours.eval(), ref.eval()      # eval: the running estimates are used
        x, dy = _x(shape, rng), rng.standard_normal(shape)
        xt = torch.from_numpy(x).requires_grad_(True)
        yt = ref(xt)
        yt.backward(torch.from_numpy(dy))
        np.testing.assert_allclose(ours(x), yt.detach().numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(ours.backward(dy), xt.grad.numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(ours.grads()["weight"], ref.weight.grad.numpy(), rtol=1e-10)
