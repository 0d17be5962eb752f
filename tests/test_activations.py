"""Activations: PyTorch's definitions, gradients away from the kinks, ATen's subgradients at them."""
import math

import numpy as np
import pytest

from layer_checks import PATHS, check_layer_grads, on
from npmobilenet.gradcheck import away_from_kinks
from npmobilenet.nn import GELU, Hardsigmoid, Hardswish, Identity, ReLU, ReLU6
from npmobilenet.ops import activations as A

ACTS = [ReLU, ReLU6, Hardsigmoid, Hardswish, GELU, Identity]


def _exact(name, v):
    """The definitions, one Python float at a time (math.erf for GELU)."""
    relu6 = lambda t: min(max(t, 0.0), 6.0)  # noqa: E731
    return {"ReLU": max(v, 0.0), "ReLU6": relu6(v), "Hardsigmoid": relu6(v + 3) / 6,
            "Hardswish": v * relu6(v + 3) / 6, "GELU": 0.5 * v * (1 + math.erf(v / math.sqrt(2))),
            "Identity": v}[name]


# ---- forward ------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("act", ACTS, ids=lambda a: a.__name__)
def test_forward_matches_definition(act, path):
    x = np.concatenate([np.linspace(-8, 8, 161), [-3, 0, 3, 6, -1e-9, 1e-9, 40, -40]])
    with on(path):
        y = act()(x)
    want = np.array([_exact(act.__name__, float(v)) for v in x])
    np.testing.assert_allclose(y, want, rtol=1e-15, atol=1e-300)


def test_hardsigmoid_is_not_keras_0_2x_plus_0_5():
    y = Hardsigmoid()(np.array([1.0]))
    assert y[0] == pytest.approx(4 / 6) and y[0] != pytest.approx(0.7)


# ---- gradients away from kinks ------------------------------------------------------------------
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("shape", [(2, 3, 4, 4), (5, 7), (3, 2, 5)])
@pytest.mark.parametrize("act", ACTS, ids=lambda a: a.__name__)
def test_gradcheck(act, shape, path):
    rng = np.random.default_rng(len(shape))
    x = away_from_kinks(4 * rng.standard_normal(shape))  # covers every linear piece
    with on(path):
        check_layer_grads(act(), x, seed=3)


# ---- subgradients at the kinks (STYLE G5, ATen) -------------------------------------------------
KINKS = [  # (activation, x, dy/dx that ATen returns)
    (ReLU, 0.0, 0.0), (ReLU, 1e-3, 1.0), (ReLU, -1e-3, 0.0),
    (ReLU6, 0.0, 0.0), (ReLU6, 6.0, 0.0), (ReLU6, 3.0, 1.0), (ReLU6, 6.001, 0.0),
    (Hardsigmoid, -3.0, 0.0), (Hardsigmoid, 3.0, 0.0), (Hardsigmoid, 0.0, 1 / 6),
    (Hardsigmoid, -2.999, 1 / 6), (Hardsigmoid, 3.001, 0.0),
    # PyTorch 2.14's ATen (after issue #147801 / PR #148049): the outer slopes at the kinks.
    # torch.ops.aten.hardswish_backward(ones, [-3., 0., 3.]) = [0, 0.5, 1] in float32 and float64.
    (Hardswish, -3.0, 0.0), (Hardswish, 3.0, 1.0), (Hardswish, 0.0, 0.5),
    (Hardswish, -2.999, -2.999 / 3 + 0.5), (Hardswish, 2.999, 2.999 / 3 + 0.5),
    (Hardswish, -3.001, 0.0), (Hardswish, 3.001, 1.0),
]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("act,x,slope", KINKS, ids=lambda v: getattr(v, "__name__", str(v)))
def test_subgradient_at_kinks(act, x, slope, dtype, path):
    m = act()
    with on(path):
        m(np.array([x], dtype))
        dx = m.backward(np.array([2.0], dtype))
    assert dx.dtype == dtype
    np.testing.assert_allclose(dx, [2.0 * slope], rtol=1e-6 if dtype == np.float32 else 1e-15)


@pytest.mark.parametrize("path", PATHS)
def test_gelu_derivative_is_cdf_plus_x_pdf(path):
    x = np.linspace(-6, 6, 49)
    with on(path):
        _, cache = A.gelu_forward(x)
        dx = A.gelu_backward(np.ones_like(x), cache)
    want = [0.5 * (1 + math.erf(v / math.sqrt(2))) + v * math.exp(-v * v / 2) / math.sqrt(2 * math.pi) for v in x]
    np.testing.assert_allclose(dx, want, rtol=1e-14, atol=1e-16)


# float32: for x << 0, 1 + erf(x / sqrt 2) cancels in the plain path (as in PyTorch's float32
# kernel), an absolute error of ~1e-7 where y ~ 1e-7; the fused kernel works in float64 internally.
@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-14), (np.float32, 2e-6)])
def test_gelu_fast_equals_plain(dtype, rtol):
    rng = np.random.default_rng(4)
    x, dy = (3 * rng.standard_normal((3, 4, 5, 5))).astype(dtype), rng.standard_normal((3, 4, 5, 5)).astype(dtype)
    out = {}
    for path in PATHS:
        with on(path):
            y, cache = A.gelu_forward(x)
            out[path] = (y, A.gelu_backward(dy, cache))
    for a, b in zip(out["fast"], out["plain"]):
        assert a.dtype == b.dtype == dtype
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * 1e-3 if dtype == np.float64 else 1e-6)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_hardswish_backward_fast_equals_plain_bit_for_bit(dtype):
    rng = np.random.default_rng(6)
    x = np.concatenate([4 * rng.standard_normal(3000), [-3, 3, 0, -6, 6]]).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    out = {}
    for path in PATHS:
        with on(path):
            out[path] = A.hardswish_backward(dy, A.hardswish_forward(x)[1])
    assert out["fast"].dtype == out["plain"].dtype == dtype
    np.testing.assert_array_equal(out["fast"], out["plain"])


# ---- what forward keeps -------------------------------------------------------------------------
def test_piecewise_linear_activations_keep_only_a_mask():
    x = np.linspace(-5, 8, 30, dtype=np.float32)
    for act in (ReLU, ReLU6, Hardsigmoid):
        m = act()
        m(x)
        mask, dtype = m.cache
        assert mask.dtype == np.bool_ and mask.shape == x.shape and dtype == np.float32


def test_nan_propagates_like_torch():
    x = np.array([np.nan, 1.0])
    for act in ACTS:
        assert np.isnan(act()(x)[0]), act.__name__


# ---- errors -------------------------------------------------------------------------------------
@pytest.mark.parametrize("act", ACTS, ids=lambda a: a.__name__)
def test_non_float_input_raises_naming_the_layer(act):
    with pytest.raises(TypeError, match=f"{act.__name__}: x has dtype int64"):
        act()(np.arange(4))


@pytest.mark.parametrize("act", ACTS, ids=lambda a: a.__name__)
def test_dy_of_the_wrong_shape_or_dtype_raises(act):
    m = act()
    m(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match="dy must be a float32 array of shape \\(2, 3\\)"):
        m.backward(np.ones((3, 2), np.float32))
    with pytest.raises(ValueError, match="dy must be a float32 array"):
        m.backward(np.ones((2, 3), np.float64))


# ---- parity with PyTorch, kinks included ---------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matches_torch_including_kinks(dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    x = np.concatenate([4 * rng.standard_normal(200), [-3, 0, 3, 6, -6, 2.9999, -3.0001]]).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    refs = {ReLU: torch.nn.ReLU(), ReLU6: torch.nn.ReLU6(), Hardsigmoid: torch.nn.Hardsigmoid(),
            Hardswish: torch.nn.Hardswish(), GELU: torch.nn.GELU(), Identity: torch.nn.Identity()}
    for act, ref in refs.items():
        xt = torch.from_numpy(x.copy()).requires_grad_(True)
        yt = ref(xt)
        yt.backward(torch.from_numpy(dy))
        m = act()
        tol = dict(rtol=1e-14, atol=1e-15) if dtype == np.float64 else dict(rtol=2e-6, atol=1e-7)
        if act is GELU and dtype == np.float32:
            tol["atol"] = 2e-6      # torch's float32 1 + erf cancels for x << 0 (see above)
        np.testing.assert_allclose(m(x), yt.detach().numpy(), err_msg=act.__name__, **tol)
        if act is Hardsigmoid and dtype == np.float64:
            # ATen's float64 hardsigmoid_backward multiplies by float(1/6) = 0.1666666716...;
            # ours by the float64 1/6, so the two differ by 3e-8 relative.
            tol["rtol"] = 1e-7
        np.testing.assert_allclose(m.backward(dy), xt.grad.numpy(), err_msg=act.__name__, **tol)
