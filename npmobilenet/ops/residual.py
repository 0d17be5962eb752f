"""The skip connection and the layer scale.

Residual (He et al., 2016): y = x + f(x).  MobileNetV2's inverted residual block adds it when the
stride is 1 and the input and output widths agree (timm's ``has_skip``); so do V3's blocks and
V4's UIB and MQA blocks.

Layer scale (Touvron et al., 2021, CaiT, Sec. 2.1): y = x * gamma per channel, gamma initialised
small (1e-5 in MobileNetV4-Hybrid), so that each block starts close to the identity mapping.

How ``Residual`` names its parameters.  In timm the skip lives INSIDE a block: the keys of an
inverted residual are ``blocks.1.0.conv_pw.weight``, not ``blocks.1.0.fn.conv_pw.weight``.  So
``Residual(fn)`` is transparent: it adds no level to the names.  ``fn`` is not registered as a
child; instead ``named_modules`` yields fn's modules under Residual's own prefix, so
``parameters()``, ``grads()``, ``state_dict()``, ``load_state_dict()``, ``train()``/``eval()`` and
``to()`` all reach fn's arrays under exactly the names fn would have on its own.  A builder can
therefore write ``Residual(block) if has_skip else block`` and the keys do not change.  (One
consequence: ``named_modules`` lists the wrapper and fn under the same name; tools that walk it
see a parameter-free ``Residual`` row next to fn's.)

Blocks that prefer the skip written inside their own forward/backward use the function pair
``residual_forward`` / ``residual_backward`` (or simply ``x + f`` and ``dy + df``).
"""
import numpy as np

from ..module import DEFAULT_DTYPE, Module, check_input
from . import _checks


def residual_forward(x, fx):
    """y = x + f(x).

    Inputs: x and fx, the same shape and dtype.  Returns (y, cache = (shape, dtype)).
    """
    _checks.float_array("residual_forward", "x", x)
    _checks.float_array("residual_forward", "fx", fx)
    if fx.shape != x.shape or fx.dtype != x.dtype:
        raise ValueError(f"residual_forward: fx is a {fx.dtype} array of shape {fx.shape} but x is a"
                         f" {x.dtype} array of shape {x.shape}; the skip needs them equal")
    return x + fx, (x.shape, x.dtype)


def residual_backward(dy, cache):
    """Gradient of y = x + f(x) with respect to its two summands.

    Returns (dx_skip, dfx), both dy: an addition passes the gradient unchanged to each summand.
    The gradient of the block's input is then dx = dx_skip + f.backward(dfx): the identity path
    and the path through f both reach x, and the chain rule sums over paths.
    """
    shape, dtype = cache
    _checks.upstream("residual_backward", dy, shape, dtype)
    return dy, dy


class Residual(Module):
    """y = x + fn(x); dx = dy + fn.backward(dy).  Transparent for names (see the module docstring):

    >>> from npmobilenet.ops.batchnorm import BatchNorm2d
    >>> list(Residual(BatchNorm2d(4)).parameters())
    ['weight', 'bias']
    """

    def __init__(self, fn):
        super().__init__()
        if not isinstance(fn, Module):
            raise TypeError(f"Residual: fn must be a Module, got {type(fn).__name__}")
        object.__setattr__(self, "fn", fn)  # not a child: that would add a ".fn" level to the names
        self.cache = None

    def named_modules(self, prefix=""):
        """This wrapper, then fn and its descendants under the SAME prefix (no extra level)."""
        yield prefix, self
        yield from self.fn.named_modules(prefix)

    def named_children(self):
        return self.fn.named_children()

    def __getattr__(self, name):
        # residual.conv_pw reaches fn's child, as it would on the timm block that owns the skip
        try:
            return super().__getattr__(name)
        except AttributeError:
            fn = self.__dict__.get("fn")
            if fn is None:
                raise
            return getattr(fn, name)

    def _label(self):
        return f"Residual({self.fn._label()})"

    def __repr__(self):
        return "Residual(\n  " + repr(self.fn).replace("\n", "\n  ") + "\n)"

    def forward(self, x):
        """x -> x + fn(x); fn's output must have x's shape (stride 1, same width)."""
        _checks.float_array(self._label, "x", x)
        fx = self.fn.forward(x)
        if fx.shape != x.shape:
            raise ValueError(f"{self._label()}: fn maps shape {x.shape} to {fx.shape}; a residual"
                             f" needs the same shape (stride 1 and in_chs == out_chs)")
        y, self.cache = residual_forward(x, fx)
        return y

    def backward(self, dy):
        """dy -> dy + fn.backward(dy) (fn's parameter grads are set by fn.backward)."""
        dx_skip, dfx = residual_backward(dy, self._need_cache(self.cache))
        return dx_skip + self.fn.backward(dfx)


def layer_scale_forward(x, gamma):
    """y = x * gamma per channel.

    Inputs: x: (N, C, H, W) float; gamma: (C,), the dtype of x.
    Returns: (y, cache = (x, gamma)).
    """
    who = "layer_scale_forward"
    _checks.float_array(who, "x", x)
    if x.ndim != 4:
        raise ValueError(f"{who}: x has shape {x.shape} ({x.ndim} dimensions); expected (N, C, H, W)")
    _checks.vector(who, "gamma", gamma, x.shape[1], x.dtype)
    return x * gamma[:, None, None], (x, gamma)


def layer_scale_backward(dy, cache):
    """Gradient of the layer scale.

    Inputs: dy: (N, C, H, W) (not modified); cache from the forward.
    Returns: (dx (N, C, H, W), dgamma (C,)).

    Derivation: y[n,c,h,w] = x[n,c,h,w] gamma[c], so dy/dx = gamma[c] elementwise and
    dy/dgamma[c] = x[n,c,h,w] for every element of channel c, summed:
        dx = dy * gamma[c],   dgamma[c] = sum_{n,h,w} dy[n,c,h,w] x[n,c,h,w]
    """
    x, gamma = cache
    _checks.upstream("layer_scale_backward", dy, x.shape, x.dtype)
    return dy * gamma[:, None, None], (dy * x).sum(axis=(0, 2, 3))


class LayerScale2d(Module):
    """timm's ``LayerScale2d``: y = x * gamma[None, :, None, None], parameter ``gamma`` (C,) = init_value."""

    def __init__(self, channels, init_value=1e-5, dtype=DEFAULT_DTYPE):
        super().__init__()
        if not isinstance(channels, (int, np.integer)) or isinstance(channels, bool) or channels < 1:
            raise ValueError(f"LayerScale2d: channels must be a positive int, got {channels!r}")
        self.channels = int(channels)
        self.gamma = self.register_parameter("gamma", np.full(self.channels, init_value, dtype))
        self.cache = None

    def _label(self):
        return f"LayerScale2d({self.channels})"

    def forward(self, x):
        check_input(self, x, channels=self.channels, dtype=self.gamma.dtype)
        y, self.cache = layer_scale_forward(x, self.gamma)
        return y

    def backward(self, dy):
        dx, dgamma = layer_scale_backward(dy, self._need_cache(self.cache))
        self._set_grad("gamma", dgamma)
        return dx
