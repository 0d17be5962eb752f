"""Global average pooling and flattening: the step from the last feature map to the classifier.

    y[n, c] = (1 / (H W)) sum_{h, w} x[n, c, h, w]                                          (1)

timm's MobileNets pool to (N, C, 1, 1) (``SelectAdaptivePool2d``), then V3/V4 apply ``conv_head``
on the 1x1 map and flatten; V1/V2 flatten straight away (``GlobalAvgPool2d(flatten=True)``).
"""
import numpy as np

from ..module import Module, check_input
from . import _checks


def global_avg_pool_forward(x, flatten=False):
    """Mean over the spatial axes, eq. (1).

    Inputs:
    - x: (N, C, H, W) float32 or float64
    - flatten: False keeps the spatial axes as 1x1

    Returns a tuple of:
    - y: (N, C, 1, 1), or (N, C) when flatten is True
    - cache: (x.shape, x.dtype, y.shape)
    """
    _checks.float_array("global_avg_pool_forward", "x", x)
    if x.ndim != 4:
        raise ValueError(f"global_avg_pool_forward: x has shape {x.shape} ({x.ndim} dimensions);"
                         f" expected (N, C, H, W)")
    y = x.mean(axis=(2, 3), keepdims=not flatten)
    return y, (x.shape, x.dtype, y.shape)


def global_avg_pool_backward(dy, cache):
    """Gradient of the global average pool.

    Inputs: dy: (N, C, 1, 1) or (N, C), the shape of y (not modified); cache from the forward.
    Returns: dx: (N, C, H, W).

    Derivation: from (1), dy[n, c]/dx[n, c, h, w] = 1 / (H W) for every (h, w), and x[n, c] feeds
    no other output, so dx[n, c, h, w] = dy[n, c] / (H W): the gradient is spread evenly.
    """
    x_shape, dtype, y_shape = cache
    _checks.upstream("global_avg_pool_backward", dy, y_shape, dtype)
    N, C, H, W = x_shape
    dx = np.empty(x_shape, dtype)
    dx[...] = dy.reshape(N, C, 1, 1) / (H * W)  # a real array, not a read-only broadcast view
    return dx


def flatten_forward(x):
    """(N, d1, d2, ...) -> (N, d1*d2*...), a view.  Returns (y, cache = x.shape, x.dtype)."""
    _checks.float_array("flatten_forward", "x", x)
    if x.ndim < 1:
        raise ValueError("flatten_forward: x is a scalar; expected (N, ...)")
    return x.reshape(x.shape[0], -1), (x.shape, x.dtype)


def flatten_backward(dy, cache):
    """A reshape moves no values, so dx is dy reshaped back to x's shape."""
    x_shape, dtype = cache
    _checks.upstream("flatten_backward", dy, (x_shape[0], int(np.prod(x_shape[1:], dtype=np.int64))), dtype)
    return dy.reshape(x_shape)


class GlobalAvgPool2d(Module):
    """(N, C, H, W) -> (N, C, 1, 1) mean over H and W; (N, C) with ``flatten=True``.  No parameters.

    >>> GlobalAvgPool2d(flatten=True)(np.ones((2, 8, 7, 7), np.float32)).shape
    (2, 8)
    """

    def __init__(self, flatten=False):
        super().__init__()
        self.flatten = bool(flatten)
        self.cache = None

    def extra_repr(self):
        return "flatten=True" if self.flatten else ""

    def forward(self, x):
        check_input(self, x)
        y, self.cache = global_avg_pool_forward(x, self.flatten)
        return y

    def backward(self, dy):
        return global_avg_pool_backward(dy, self._need_cache(self.cache))


class Flatten(Module):
    """``torch.nn.Flatten()``: (N, C, 1, 1) -> (N, C) (in general (N, ...) -> (N, prod(...)))."""

    def __init__(self):
        super().__init__()
        self.cache = None

    def forward(self, x):
        _checks.float_array(self._label, "x", x)
        y, self.cache = flatten_forward(x)
        return y

    def backward(self, dy):
        return flatten_backward(dy, self._need_cache(self.cache))
