"""The contract every layer keeps (STYLE 9): backward never mutates dy, x or the cache; two backward
calls give identical gradients (overwritten, not accumulated); backward before forward raises;
float32 stays float32 end to end.  Checked on every layer of ops/ except conv and attention."""
import re

import numpy as np
import pytest

from npmobilenet.gradcheck import away_from_kinks
from npmobilenet.module import BackwardBeforeForward
from npmobilenet.nn import (GELU, BatchNorm2d, Dropout, Flatten, GlobalAvgPool2d, Hardsigmoid, Hardswish,
                            Identity, LayerScale2d, Linear, ReLU, ReLU6, Residual, SqueezeExcite)

LAYERS = {  # name: (factory, input shape)
    "BatchNorm2d-train": (lambda: BatchNorm2d(3), (2, 3, 4, 4)),
    "BatchNorm2d-eval": (lambda: BatchNorm2d(3).eval(), (2, 3, 4, 4)),
    "ReLU": (ReLU, (2, 3, 4, 4)),
    "ReLU6": (ReLU6, (2, 3, 4, 4)),
    "Hardsigmoid": (Hardsigmoid, (2, 3, 4, 4)),
    "Hardswish": (Hardswish, (2, 3, 4, 4)),
    "GELU": (GELU, (2, 3, 4, 4)),
    "Identity": (Identity, (2, 3, 4, 4)),
    "Linear": (lambda: Linear(5, 4, rng=0), (3, 5)),
    "GlobalAvgPool2d": (GlobalAvgPool2d, (2, 3, 4, 4)),
    "GlobalAvgPool2d-flatten": (lambda: GlobalAvgPool2d(flatten=True), (2, 3, 4, 4)),
    "Flatten": (Flatten, (2, 3, 1, 1)),
    "Dropout": (lambda: Dropout(0.5, seed=0), (4, 6)),
    "SqueezeExcite": (lambda: SqueezeExcite(3, 2, rng=0), (2, 3, 4, 4)),
    "Residual": (lambda: Residual(BatchNorm2d(3)), (2, 3, 4, 4)),
    "LayerScale2d": (lambda: LayerScale2d(3, 0.5), (2, 3, 4, 4)),
}


def _arrays(obj):
    """Every ndarray inside a (nested) cache."""
    if isinstance(obj, np.ndarray):
        return [obj]
    if isinstance(obj, (tuple, list)):
        return [a for item in obj for a in _arrays(item)]
    return []


def _setup(name, dtype=np.float32):
    factory, shape = LAYERS[name]
    rng = np.random.default_rng(0)
    layer = factory()
    x = away_from_kinks(3 * rng.standard_normal(shape)).astype(dtype)
    return layer, x


@pytest.mark.parametrize("name", LAYERS)
def test_backward_leaves_dy_x_and_cache_untouched(name):
    layer, x = _setup(name)
    x_before = x.copy()
    y = layer(x)
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(y.dtype)
    dy_before = dy.copy()
    caches = [m.cache for m in layer.modules() if getattr(m, "cache", None) is not None]
    snapshot = [a.copy() for c in caches for a in _arrays(c)]
    layer.backward(dy)
    np.testing.assert_array_equal(dy, dy_before)
    np.testing.assert_array_equal(x, x_before)
    for a, b in zip([a for c in caches for a in _arrays(c)], snapshot):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", LAYERS)
def test_two_backward_calls_give_identical_gradients(name):
    layer, x = _setup(name)
    y = layer(x)
    dy = np.random.default_rng(2).standard_normal(y.shape).astype(y.dtype)
    dx1 = np.array(layer.backward(dy), copy=True)
    g1 = {k: g.copy() for k, g in layer.grads().items()}
    dx2 = layer.backward(dy)
    np.testing.assert_array_equal(dx1, dx2)
    for k, g in layer.grads().items():
        np.testing.assert_array_equal(g, g1[k], err_msg=k)


@pytest.mark.parametrize("name", LAYERS)
def test_backward_before_forward_raises(name):
    layer, x = _setup(name)
    with pytest.raises(BackwardBeforeForward, match="call forward"):
        layer.backward(np.zeros_like(x))


@pytest.mark.parametrize("name", LAYERS)
def test_float32_stays_float32(name):
    layer, x = _setup(name, np.float32)
    y = layer(x)
    dx = layer.backward(np.ones_like(y))
    assert y.dtype == np.float32 and dx.dtype == np.float32
    for k, g in layer.grads().items():
        assert g.dtype == np.float32, k
    for k, b in layer.buffers().items():
        assert b.dtype == np.float32, k


@pytest.mark.parametrize("name", LAYERS)
def test_float64_end_to_end_after_to(name):
    layer, x = _setup(name, np.float64)
    layer.to(np.float64)
    y = layer(x)
    assert y.dtype == np.float64 and layer.backward(np.ones_like(y)).dtype == np.float64


@pytest.mark.parametrize("name", [n for n in LAYERS if LAYERS[n][0]().parameters()])
def test_input_dtype_must_match_parameters(name):
    layer, x = _setup(name, np.float64)                # parameters stay float32
    with pytest.raises(TypeError, match="float64 but the parameters are float32"):
        layer(x)


@pytest.mark.parametrize("name", LAYERS)
def test_non_float_input_raises(name):
    layer, x = _setup(name)
    # the message opens with the layer's own label (made only when there is an error to report)
    with pytest.raises(TypeError, match="^" + re.escape(layer._label()) + ": .*int64"):
        layer(x.astype(np.int64))
