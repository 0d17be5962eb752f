"""Inverted dropout (Srivastava et al., 2014; the "inverted" scaling as in ``torch.nn.Dropout``).

In training, each element is kept with probability 1 - p and the kept ones are scaled by
1 / (1 - p), so that E[y] = x and nothing needs rescaling at test time:

    y = x * mask,   mask_i = [u_i >= p] / (1 - p),   u_i ~ U[0, 1)                        (1)

In eval mode (and for p = 0) the layer is the identity.  MobileNets use it once, before the
classifier (timm's ``drop_rate``).
"""
import numpy as np

from ..module import Module
from . import _checks


def dropout_mask(shape, p, rng, dtype):
    """The scaled keep-mask of eq. (1): ``dtype`` array of 0 and 1/(1-p), drawn from ``rng``.

    Uniforms are always drawn in float64, so the same seed gives the same mask in either dtype.
    """
    keep = rng.random(shape) >= p
    return keep.astype(dtype) * dtype.type(1.0 / (1.0 - p))


def dropout_forward(x, mask):
    """y = x * mask.

    Inputs: x: any shape, float; mask: ``dropout_mask(x.shape, p, rng, x.dtype)``, or None for
    the identity (eval mode, p = 0).
    Returns: (y, cache = (mask, x.shape, x.dtype)).
    """
    _checks.float_array("dropout_forward", "x", x)
    if mask is None:
        return x, (None, x.shape, x.dtype)
    if not isinstance(mask, np.ndarray) or mask.shape != x.shape or mask.dtype != x.dtype:
        got = f"{mask.dtype} array of shape {mask.shape}" if isinstance(mask, np.ndarray) else type(mask).__name__
        raise ValueError(f"dropout_forward: mask must be None or a {x.dtype} array of shape {x.shape}, got {got}")
    return x * mask, (mask, x.shape, x.dtype)


def dropout_backward(dy, cache):
    """Gradient of dropout: y_i = x_i mask_i, so dx = dy * mask (the same mask as the forward).

    Inputs: dy: shape of x (not modified); cache from the forward.  Returns: dx.
    """
    mask, shape, dtype = cache
    _checks.upstream("dropout_backward", dy, shape, dtype)
    return dy if mask is None else dy * mask


class Dropout(Module):
    """``torch.nn.Dropout(p)``.  ``seed`` seeds the layer's own ``numpy.random.Generator`` (None:
    fresh entropy); every training forward draws a new mask from it, so a seed fixes the whole
    sequence of masks, not one mask.

    >>> d = Dropout(0.5, seed=0)
    >>> sorted(set(d(np.ones((4, 100), np.float32)).ravel().tolist()))
    [0.0, 2.0]
    >>> d.eval()(np.ones((2, 3), np.float32)).tolist()
    [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    """

    def __init__(self, p=0.5, seed=None):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float, np.floating)) or not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be a probability in [0, 1), got {p!r}")
        self.p = float(p)
        self.rng = np.random.default_rng(seed)
        self.cache = None

    def _label(self):
        return f"Dropout(p={self.p:g})"

    def extra_repr(self):
        return f"p={self.p:g}"

    def forward(self, x):
        """x -> x * mask (training, p > 0) or x; keeps the mask for backward."""
        _checks.float_array(self._label, "x", x)
        mask = dropout_mask(x.shape, self.p, self.rng, x.dtype) if self.training and self.p > 0 else None
        y, self.cache = dropout_forward(x, mask)
        return y

    def backward(self, dy):
        return dropout_backward(dy, self._need_cache(self.cache))
