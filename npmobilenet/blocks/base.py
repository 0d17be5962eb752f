"""What every MobileNet block shares: a chain of named layers, run in order, and timm's optional skip.

A block is its layers composed, nothing more::

    forward:   y = f_n(... f_2(f_1(x)))            [+ x   when has_skip]
    backward:  dx = f_1'(f_2'(... f_n'(dy)))       [+ dy  when has_skip]

The skip's gradient is the upstream gradient itself (d(x + f(x))/dx = I + f'(x)), added after the
chain has run backward.  Children are named as in timm's block (``conv_dw``, ``bn1`` ...), so the
parameter names are timm's ``state_dict`` keys.  timm folds each activation into the BN module
before it (``BatchNormAct2d``); here it is a separate, parameter-free child (``act1`` ...), which
changes no key.
"""
import numpy as np

from ..module import Sequential, check_input
from ..ops.activations import GELU, Hardswish, Identity, ReLU, ReLU6

ACTIVATIONS = {"relu": ReLU, "relu6": ReLU6, "hard_swish": Hardswish, "gelu": GELU, "identity": Identity}


def make_act(name):
    """A fresh activation module from its name (``relu``, ``relu6``, ``hard_swish``, ``gelu``)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def as_rng(rng):
    """A seed, None or a Generator -> a Generator (shared by every layer of a block, in order)."""
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


class ChainBlock(Sequential):
    """Named layers run in order, plus the residual when ``has_skip`` (stride 1 and in == out)."""

    def __init__(self, layers, in_chs, out_chs, has_skip):
        super().__init__(layers)
        self.in_chs, self.out_chs, self.has_skip = int(in_chs), int(out_chs), bool(has_skip)
        self.cache = None

    def _label(self):
        return f"{type(self).__name__}({self.in_chs}->{self.out_chs})"

    def extra_repr(self):
        return f"{self.in_chs}->{self.out_chs}" + (", skip" if self.has_skip else "")

    def forward(self, x):
        """x (N, in_chs, H, W) -> y (N, out_chs, H', W'); y += x when has_skip."""
        check_input(self, x, channels=self.in_chs, dtype=self.dtype)
        y = super().forward(x)
        self.cache = x.shape  # backward needs nothing of x itself; the layers keep their own caches
        return y + x if self.has_skip else y

    def backward(self, dy):
        """dy (N, out_chs, H', W') -> dx (N, in_chs, H, W): the chain in reverse, + dy for the skip."""
        self._need_cache(self.cache)
        dx = super().backward(dy)
        return dx + dy if self.has_skip else dx
