"""Squeeze-and-Excitation (Hu et al., 2018), in MobileNetV3's form (Howard et al., 2019, Sec. 5.3):

    p = mean_{h,w} x                     (N, C, 1, 1)   squeeze: global average pool
    z = W_r p + b_r                      (N, S, 1, 1)   1x1 conv C -> S, with bias (conv_reduce)
    a = relu(z)                                          always ReLU, even in hard-swish blocks
    e = W_e a + b_e                      (N, C, 1, 1)   1x1 conv S -> C, with bias (conv_expand)
    s = hardsigmoid(e)                                   the gate, in [0, 1]
    y = x * s                            (N, C, H, W)   excite: rescale each channel          (1)

The module mirrors timm's ``SqueezeExcite`` child for child (``conv_reduce``, ``act1``,
``conv_expand``, ``gate``), so its keys are timm's: ``conv_reduce.weight`` (S, C, 1, 1),
``conv_reduce.bias`` (S,), ``conv_expand.weight`` (C, S, 1, 1), ``conv_expand.bias`` (C,).
The squeeze width S is the caller's choice (V3: ``make_divisible(C / 4)`` of the expanded width).
"""
import numpy as np

from ..kernels import buffers, elementwise as K
from ..kernels.threads import run_chunks
from ..module import DEFAULT_DTYPE, Module, check_input
from . import _checks, backend
from .activations import Hardsigmoid, ReLU
from .conv import Conv2d
from .pooling import global_avg_pool_backward, global_avg_pool_forward


def channel_scale_forward(x, s):
    """The excite step, eq. (1): y = x * s with s broadcast over H and W.

    Inputs: x: (N, C, H, W) float; s: (N, C, 1, 1), the dtype of x.
    Returns: (y (N, C, H, W), cache = (x, s)).
    """
    who = "channel_scale_forward"
    _checks.float_array(who, "x", x)
    _checks.float_array(who, "s", s)
    if x.ndim != 4 or s.shape != x.shape[:2] + (1, 1):
        raise ValueError(f"{who}: x has shape {x.shape} and s has shape {s.shape};"
                         f" expected (N, C, H, W) and (N, C, 1, 1)")
    _checks.same_dtype(who, "s", s, x.dtype)
    return x * s, (x, s)


def channel_scale_backward(dy, cache):
    """Gradient of y = x * s with respect to both factors.

    Inputs: dy: (N, C, H, W) (not modified); cache from the forward.
    Returns: (dx (N, C, H, W), ds (N, C, 1, 1)).

    y[n,c,h,w] = x[n,c,h,w] s[n,c]: dy/dx = s[n,c] elementwise, and s[n,c] multiplies every
    pixel of its channel, so its gradient sums over them:
        dx = dy * s,    ds[n,c] = sum_{h,w} dy[n,c,h,w] x[n,c,h,w]
    """
    x, s = cache
    _checks.upstream("channel_scale_backward", dy, x.shape, x.dtype)
    return dy * s, (dy * x).sum(axis=(2, 3), keepdims=True)


class SqueezeExcite(Module):
    """timm's ``SqueezeExcite`` with MobileNetV3's settings: ReLU inside, hard-sigmoid gate.

    ``rng`` (a seed or a Generator) initialises both 1x1 convs as torch does.

    >>> se = SqueezeExcite(72, 24, rng=0)
    >>> [(k, v.shape) for k, v in se.parameters().items()]
    [('conv_reduce.weight', (24, 72, 1, 1)), ('conv_reduce.bias', (24,)), ('conv_expand.weight', (72, 24, 1, 1)), ('conv_expand.bias', (72,))]
    """

    def __init__(self, channels, rd_channels, rng=None, dtype=DEFAULT_DTYPE):
        super().__init__()
        for arg, v in (("channels", channels), ("rd_channels", rd_channels)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"SqueezeExcite: {arg} must be a positive int, got {v!r}")
        self.channels, self.rd_channels = int(channels), int(rd_channels)
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        self.conv_reduce = Conv2d(channels, rd_channels, 1, bias=True, rng=rng, dtype=dtype)
        self.act1 = ReLU()
        self.conv_expand = Conv2d(rd_channels, channels, 1, bias=True, rng=rng, dtype=dtype)
        self.gate = Hardsigmoid()
        self.cache = None

    def _label(self):
        return f"SqueezeExcite({self.channels}->{self.rd_channels})"

    def forward(self, x):
        """x (N, C, H, W) -> x * s, s = gate(conv_expand(relu(conv_reduce(mean_hw x))))."""
        check_input(self, x, channels=self.channels, dtype=self.conv_reduce.weight.dtype)
        p, pool_cache = global_avg_pool_forward(x)
        s = self.gate(self.conv_expand(self.act1(self.conv_reduce(p))))
        if backend.fast():
            x = np.ascontiguousarray(x)
            y = buffers.empty(x.shape, x.dtype)
            run_chunks(K.channel_scale, x.shape[0] * x.shape[1], _planes(x), s.reshape(-1), _planes(y), work=x.size)
            scale_cache = (x, s)
        else:
            y, scale_cache = channel_scale_forward(x, s)
        self.cache = (pool_cache, scale_cache)
        return y

    def backward(self, dy):
        """dy (N, C, H, W) -> dx; sets the grads of conv_reduce and conv_expand.

        x reaches y along two paths, directly as the factor in y = x * s, and through the squeeze
        p = mean x that computes s; the chain rule adds them:

            dx = dy * s  +  dp / (H W)      broadcast over (h, w)

        where ds[n,c] = sum_{h,w} dy x (channel_scale_backward), de = ds * hardsigmoid'(e),
        then back through conv_expand, relu and conv_reduce to dp (N, C, 1, 1), and finally
        d(mean)/dx = 1 / (H W) for every pixel (global_avg_pool_backward).
        """
        pool_cache, scale_cache = self._need_cache(self.cache)
        if not backend.fast():
            dx_direct, ds = channel_scale_backward(dy, scale_cache)
            dp = self.conv_reduce.backward(self.act1.backward(self.conv_expand.backward(self.gate.backward(ds))))
            return dx_direct + global_avg_pool_backward(dp, pool_cache)
        # Fast path: the same sums in two passes over the planes instead of five (kernels/elementwise.py):
        # ds = sum_hw dy x, then, once dp is known, dx = dy * s + dp / (H W).
        x, s = scale_cache
        _checks.upstream("channel_scale_backward", dy, x.shape, x.dtype)
        dy = np.ascontiguousarray(dy)
        ds = np.empty(s.shape, np.float64)
        run_chunks(K.plane_dot, ds.size, _planes(dy), _planes(x), ds.reshape(-1), work=x.size)
        dp = self.conv_reduce.backward(self.act1.backward(self.conv_expand.backward(
            self.gate.backward(ds.astype(x.dtype)))))
        N, C, H, W = x.shape
        dx = buffers.empty(x.shape, x.dtype)
        add = (dp / (H * W)).astype(x.dtype, copy=False)
        run_chunks(K.scale_add, N * C, _planes(dy), s.reshape(-1), add.reshape(-1), _planes(dx), work=x.size)
        return dx


def _planes(a):
    """(N, C, H, W) -> its N*C image planes, (N*C, H*W), as a view (the per-plane kernels' layout)."""
    return a.reshape(a.shape[0] * a.shape[1], -1)
