"""2-D convolution for every case a MobileNet uses: standard, pointwise (1x1), grouped, depthwise.

One op covers them all through the group count ``G`` (timm's ``groups``): the ``C`` input channels
and ``O`` output channels are split into ``G`` groups of ``Cg = C/G`` and ``Og = O/G``, and output
channel ``o`` (in group ``g = o // Og``) sees only the input channels of its group:

    y[n, o, oh, ow] = b[o] + sum_{c < Cg} sum_{i < kh, j < kw}
                      w[o, c, i, j] * x_pad[n, g*Cg + c, oh*sh + i, ow*sw + j]          (1)

``x_pad`` is ``x`` with ``ph``/``pw`` zeros on each side.  The output size is
``Ho = floor((H + 2 ph - kh) / sh) + 1`` (Dumoulin & Visin, 2016, "A guide to convolution
arithmetic", relationship 6), so 224 -> 112 and 7 -> 4 for a 3x3, stride-2, padding-1 conv.
``groups == 1`` is a standard conv, ``groups == C`` with ``O = m*C`` is depthwise with channel
multiplier ``m`` (Howard et al., 2017, "MobileNets", Sec. 3.1, eq. 3).

im2col (Chellapilla et al., 2006) turns (1) into one matrix product per group:

    X_col[n, g] : (Cg*kh*kw, Ho*Wo)    the windows, one column per output pixel
    W[g]        : (Og, Cg*kh*kw)       the filters, one row per output channel
    Y[n, g]     = W[g] @ X_col[n, g]   : (Og, Ho*Wo)                                    (2)

Two paths compute (1), selected by ``npmobilenet.ops.backend.fast()``:

* plain NumPy (``_forward_plain`` / ``_backward_plain``): im2col by a strided window view, one
  batched ``matmul`` over all groups at once (depthwise included: no Python loop over channels),
  col2im as a loop over the ``kh*kw`` kernel offsets.  This is the path the lessons read.
* fast (``_forward_fast`` / ``_backward_fast``): a 1x1 conv is a matmul on ``x`` itself (no
  im2col), shaped by ``kernels/pointwise.py`` (one product for the whole batch on 1x1 maps, and
  dW without an (N, O, C) stack of per-image products); depthwise runs as direct Numba loops
  (``kernels/depthwise.py``, with ``depthwise_s1.py`` for stride 1 on large maps,
  ``depthwise_s2.py`` for stride 2 and ``depthwise_small.py`` for tiny maps); so
  does the stem's forward (3x3, stride 2, at most 4 input channels: ``kernels/stem.py``);
  everything else is a Numba im2col / col2im (``kernels/im2col.py``) around BLAS matmuls, a few
  images at a time so the columns stay in cache, the chunks of images spread over the threads.
  The kernels read the input through *phase planes* (``kernels/phases.py``; at stride 1 in place
  at the input's own pitch, at stride 2 split by vector shuffles): each way every kernel tap is
  one unit-stride loop over a whole plane (written as explicit vector steps, ``kernels/simd.py``,
  for 3x3 at stride 1 and for stride 2).

The backward pass recomputes ``X_col`` from the cached ``x`` rather than keeping it: it is
``kh*kw`` times larger than ``x``.
"""
from __future__ import annotations

import math
from collections import namedtuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..module import DEFAULT_DTYPE, Module, check_input
from ..kernels import buffers
from . import _checks, backend

ConvCache = namedtuple("ConvCache", "x w has_bias stride padding groups")
ConvCache.__doc__ = """What backward needs: the input and weights (read, never written) and the geometry."""


# ---- argument handling ------------------------------------------------------------------------
def _pair(v, who, arg, minimum):
    """An int or a pair of ints -> a pair of ints >= minimum, or a clear error."""
    pair = (v, v) if isinstance(v, (int, np.integer)) else tuple(v) if isinstance(v, (tuple, list)) else None
    if pair is None or len(pair) != 2 or not all(isinstance(a, (int, np.integer)) for a in pair):
        raise TypeError(f"{who}: {arg} must be an int or a pair of ints, got {v!r}")
    if min(pair) < minimum:
        raise ValueError(f"{who}: {arg} must be >= {minimum}, got {v!r}")
    return int(pair[0]), int(pair[1])


def _out_hw(x_shape, kernel, stride, padding, who):
    """(Ho, Wo) = floor((H + 2p - k) / s) + 1 per axis; the padded input must hold the kernel."""
    out = []
    for axis, size, k, s, p in zip(("height", "width"), x_shape[2:], kernel, stride, padding):
        if size + 2 * p < k:
            raise ValueError(f"{_checks.name(who)}: input x has {axis} {size} (shape {tuple(x_shape)}); with padding {p}"
                             f" that is {size + 2 * p}, smaller than the kernel {axis} {k}")
        out.append((size + 2 * p - k) // s + 1)
    return tuple(out)


def _validate(x, w, b, stride, padding, groups, who="conv2d_forward"):
    """Check every argument of ``conv2d_forward``; return normalised (stride, padding, groups, out_hw)."""
    for arg, a in (("x", x), ("w", w)):
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{who}: {arg} must be a numpy.ndarray, got {type(a).__name__}")
        if not np.issubdtype(a.dtype, np.floating):
            raise TypeError(f"{who}: {arg} has dtype {a.dtype}; expected float32 or float64")
        if a.ndim != 4:
            want = "(N, C, H, W)" if arg == "x" else "(out_channels, in_channels/groups, kh, kw)"
            raise ValueError(f"{who}: {arg} has shape {a.shape} ({a.ndim} dimensions); expected {want}")
    if w.dtype != x.dtype:
        raise TypeError(f"{who}: x has dtype {x.dtype} but w has dtype {w.dtype}; expected the same dtype")
    if x.size == 0 or w.size == 0:
        arg, a = ("x", x) if x.size == 0 else ("w", w)
        raise ValueError(f"{who}: {arg} has shape {a.shape}, no values; expected at least 1 in every dimension")
    if not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"{who}: groups must be a positive int, got {groups!r}")
    if w.shape[0] % groups:
        raise ValueError(f"{who}: w has {w.shape[0]} output channels, not divisible by groups={groups}")
    if x.shape[1] != w.shape[1] * groups:
        raise ValueError(f"{who}: x has {x.shape[1]} channels (shape {x.shape}); expected"
                         f" w.shape[1] * groups = {w.shape[1]} * {groups} = {w.shape[1] * groups}")
    if b is not None:
        if not isinstance(b, np.ndarray) or b.shape != (w.shape[0],) or b.dtype != w.dtype:
            got = f"{b.dtype} array of shape {b.shape}" if isinstance(b, np.ndarray) else type(b).__name__
            raise ValueError(f"{who}: b must be None or a {w.dtype} array of shape ({w.shape[0]},), got {got}")
    stride = _pair(stride, who, "stride", 1)
    padding = _pair((w.shape[2] // 2, w.shape[3] // 2) if padding is None else padding, who, "padding", 0)
    return stride, padding, int(groups), _out_hw(x.shape, w.shape[2:], stride, padding, who)


# ---- the pure functions -----------------------------------------------------------------------
def conv2d_forward(x, w, b=None, stride=1, padding=None, groups=1):
    """Grouped 2-D convolution, eq. (1).

    Inputs:
    - x: (N, C, H, W) float32 or float64
    - w: (O, C/groups, kh, kw), same dtype as x
    - b: (O,) or None
    - stride, padding: int or (vertical, horizontal) pair; padding None means (kh//2, kw//2)
    - groups: G, dividing C and O (G = C is depthwise)

    Returns a tuple of:
    - y: (N, O, Ho, Wo), Ho = floor((H + 2*ph - kh) / sh) + 1, dtype of x
    - cache: a ``ConvCache`` for ``conv2d_backward``
    """
    stride, padding, groups, out_hw = _validate(x, w, b, stride, padding, groups)
    return _forward(x, w, b, stride, padding, groups, out_hw)


def conv2d_backward(dy, cache, input_grad=True):
    """Gradients of ``conv2d_forward`` with respect to x, w and b.

    Inputs:
    - dy: (N, O, Ho, Wo), the upstream gradient dL/dy (not modified)
    - cache: the ``ConvCache`` from the forward call (not modified)
    - input_grad: False skips dx (PyTorch's ``requires_grad=False`` input: the image fed to the
      stem needs no gradient, and dx is half of that layer's backward)

    Returns a tuple of:
    - dx: (N, C, H, W), or None when ``input_grad`` is False
    - dw: (O, C/G, kh, kw)
    - db: (O,), or None when the forward had no bias

    Derivation, per image n and group g, from the matrix form (2) Y = W X_col + b 1^T, with
    dY : (Og, Ho*Wo) the matching slice of dy:

        dW[g]     = sum_n dY[n, g] @ X_col[n, g]^T       (Og, Cg*kh*kw)   since dY_ol/dW_ok = X_kl
        dX_col    = W[g]^T @ dY[n, g]                     (Cg*kh*kw, Ho*Wo) since dY_ol/dX_kl = W_ok
        dx        = col2im(dX_col)                        (N, C, H, W)
        db[o]     = sum_{n, oh, ow} dy[n, o, oh, ow]      (O,)             since dy/db = 1

    ``col2im`` is the adjoint of ``im2col``: im2col copies each input pixel into every window that
    contains it, so by the chain rule the pixel's gradient is the sum of the gradients of all its
    copies.  Entries read from the zero padding are dropped (the padding is not an input).
    """
    _check_dy(dy, cache, "conv2d_backward")
    if backend.fast():
        dx, dw = _backward_fast(dy, cache, input_grad=input_grad)
    else:
        dx, dw = _backward_plain(dy, cache, input_grad)
    db = dy.sum(axis=(0, 2, 3)) if cache.has_bias else None
    return (dx if input_grad else None), dw, db


def _check_dy(dy, cache, who):
    if not isinstance(cache, ConvCache):
        raise TypeError(f"{_checks.name(who)}: cache must be the ConvCache returned by conv2d_forward,"
                        f" got {type(cache).__name__}")
    x, w = cache.x, cache.w
    want = (x.shape[0], w.shape[0]) + _out_hw(x.shape, w.shape[2:], cache.stride, cache.padding, who)
    if not isinstance(dy, np.ndarray) or dy.shape != want or dy.dtype != x.dtype:
        got = f"{dy.dtype} array of shape {dy.shape}" if isinstance(dy, np.ndarray) else type(dy).__name__
        raise ValueError(f"{_checks.name(who)}: dy must be a {x.dtype} array of shape {want}"
                         f" (the forward output's), got {got}")


def _forward(x, w, b, stride, padding, groups, out_hw):
    if backend.fast():
        y = _forward_fast(x, w, stride, padding, groups, out_hw)
    else:
        y = _forward_plain(x, w, stride, padding, groups)
    if b is not None:
        y += b[None, :, None, None]
    return y, ConvCache(x, w, b is not None, stride, padding, groups)


# ---- plain NumPy ------------------------------------------------------------------------------
def _im2col_plain(x, kernel, stride, padding, groups):
    """x (N, C, H, W) -> X_col (N, G, Cg*kh*kw, Ho*Wo), eq. (2), via a strided window view."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    win = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]  # (N, C, Ho, Wo, kh, kw)
    N, C, Ho, Wo = win.shape[:4]
    return win.transpose(0, 1, 4, 5, 2, 3).reshape(N, groups, C // groups * kh * kw, Ho * Wo)


def _col2im_plain(dcols, x_shape, kernel, stride, padding):
    """The adjoint of ``_im2col_plain``: dcols (N, C, kh, kw, Ho, Wo) -> dx (N, C, H, W)."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    N, C, H, W = x_shape
    Ho, Wo = dcols.shape[-2:]
    dxp = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=dcols.dtype)
    for i in range(kh):          # kernel offset (i, j) read x_pad[oh*sh + i, ow*sw + j] ...
        for j in range(kw):      # ... so its gradient goes back there; one offset never repeats a pixel
            dxp[:, :, i:i + sh * Ho:sh, j:j + sw * Wo:sw] += dcols[:, :, i, j]
    return np.ascontiguousarray(dxp[:, :, ph:ph + H, pw:pw + W])


def _forward_plain(x, w, stride, padding, groups):
    N, O, G = x.shape[0], w.shape[0], groups
    cols = _im2col_plain(x, w.shape[2:], stride, padding, G)        # (N, G, K, L)
    y = w.reshape(G, O // G, -1) @ cols                              # (G, Og, K) @ (N, G, K, L)
    return y.reshape(N, O, *_out_hw(x.shape, w.shape[2:], stride, padding, ""))


def _backward_plain(dy, cache, input_grad=True):
    x, w, _, stride, padding, G = cache
    N, O, Ho, Wo = dy.shape
    cols = _im2col_plain(x, w.shape[2:], stride, padding, G)        # (N, G, K, L), recomputed
    dY = dy.reshape(N, G, O // G, Ho * Wo)                          # (N, G, Og, L)
    dw = (dY @ cols.swapaxes(-1, -2)).sum(axis=0)                   # (G, Og, K)
    if not input_grad:
        return None, dw.reshape(w.shape)
    dcols = w.reshape(G, O // G, -1).swapaxes(-1, -2) @ dY          # (N, G, K, L)
    dx = _col2im_plain(dcols.reshape(N, x.shape[1], *w.shape[2:], Ho, Wo), x.shape,
                       w.shape[2:], stride, padding)
    return dx, dw.reshape(w.shape)


# ---- fast: BLAS + Numba -----------------------------------------------------------------------
def _kind(x_shape, w_shape, stride, padding, groups, method="auto"):
    """Which fast algorithm: "pointwise" (1x1, no padding), "stem" (the direct loops of
    ``kernels/stem.py``, forward only), "depthwise" (direct loops) or "im2col"."""
    from ..kernels import stem
    if w_shape[2:] == (1, 1) and padding == (0, 0):
        return "pointwise"
    if method == "auto" and stem.applies(x_shape, w_shape, stride, padding, groups):
        return "stem"
    if method == "auto" and groups == x_shape[1] and w_shape[1] == 1:
        return "depthwise"
    return "im2col"


def _forward_fast(x, w, stride, padding, groups, out_hw, method="auto"):
    """``method="im2col"`` forces the im2col kernels even for depthwise and the stem (the tests
    compare both)."""
    from ..kernels import depthwise as dwk, im2col as i2c, pointwise, stem   # imported on first use: JIT-compiled
    N, C = x.shape[:2]
    O, G, (Ho, Wo) = w.shape[0], groups, out_hw
    Wg = w.reshape(G, O // G, -1)                              # (G, Og, K)
    kind = _kind(x.shape, w.shape, stride, padding, G, method)
    if kind == "stem":
        return stem.forward_fast(x, w)
    if kind == "depthwise":
        return dwk.depthwise_forward_fast(x, w, stride, padding, out_hw)
    if kind == "pointwise":      # a 1x1 conv is a matmul on the (strided) pixels: no copy at stride 1
        xs = np.ascontiguousarray(x[:, :, ::stride[0], ::stride[1]])
        if G == 1:
            return pointwise.forward(xs.reshape(N, C, Ho * Wo), Wg[0]).reshape(N, O, Ho, Wo)
        return np.matmul(Wg, xs.reshape(N, G, C // G, Ho * Wo)).reshape(N, O, Ho, Wo)
    return i2c.conv_forward(x, Wg, w.shape[2:], stride, padding, out_hw)


def _backward_fast(dy, cache, method="auto", input_grad=True):
    from ..kernels import depthwise as dwk, im2col as i2c, pointwise
    x, w, _, stride, padding, G = cache
    N, C = x.shape[:2]
    O, Ho, Wo = dy.shape[1:]
    Wg = w.reshape(G, O // G, -1)                              # (G, Og, K)
    kind = _kind(x.shape, w.shape, stride, padding, G, method)
    if kind == "stem":                           # its backward is im2col's (kernels/stem.py)
        kind = "im2col"
    if not input_grad and kind == "im2col":      # the stem's case; the others compute dx anyway
        return None, i2c.conv_backward(dy, x, Wg, w.shape[2:], stride, padding, input_grad=False)[1].reshape(w.shape)
    if kind == "depthwise":
        return dwk.depthwise_backward_fast(dy, x, w, stride, padding)
    if kind == "pointwise":
        xs = np.ascontiguousarray(x[:, :, ::stride[0], ::stride[1]]).reshape(N, G, C // G, -1)
        dY = np.ascontiguousarray(dy).reshape(N, G, O // G, Ho * Wo)
        if G == 1:
            dxs, dw = pointwise.backward(dY[:, 0], xs[:, 0], Wg[0])
            dxs = dxs.reshape(N, C, Ho, Wo)
        else:
            dw = np.matmul(dY, xs.swapaxes(-1, -2)).sum(axis=0)    # (G, Og, Cg)
            dxs = np.matmul(Wg.swapaxes(-1, -2), dY).reshape(N, C, Ho, Wo)
        if stride == (1, 1):
            return dxs, dw.reshape(w.shape)
        dx = np.zeros(x.shape, x.dtype)    # pixels a strided 1x1 conv skips get no gradient
        dx[:, :, ::stride[0], ::stride[1]] = dxs
        return dx, dw.reshape(w.shape)
    dx, dw = i2c.conv_backward(dy, x, Wg, w.shape[2:], stride, padding)
    return dx, dw.reshape(w.shape)


# ---- the module -------------------------------------------------------------------------------
class Conv2d(Module):
    """``torch.nn.Conv2d`` for NCHW numpy arrays: parameters ``weight`` (O, C/groups, kh, kw), ``bias`` (O,).

    Initialised as torch does (``kaiming_uniform_(a=sqrt(5))``): weight and bias uniform in
    ``±1/sqrt(fan_in)``, ``fan_in = C/groups * kh * kw``.  ``rng`` is a seed or a
    ``numpy.random.Generator``; None draws from a fresh, unseeded generator.

    >>> conv = Conv2d(3, 16, 3, stride=2, rng=0)
    >>> conv
    Conv2d(3->16, k=3, s=2)
    >>> conv(np.zeros((2, 3, 224, 224), np.float32)).shape
    (2, 16, 112, 112)
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=None, groups=1,
                 bias=False, rng=None, dtype=DEFAULT_DTYPE):
        super().__init__()
        who = f"Conv2d({in_channels}->{out_channels})"
        for arg, v in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{who}: {arg} must be a positive int, got {v!r}")
        for arg, v in (("in_channels", in_channels), ("out_channels", out_channels)):
            if v % groups:
                raise ValueError(f"{who}: {arg}={v} is not divisible by groups={groups}")
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        self.kernel_size = _pair(kernel_size, who, "kernel_size", 1)
        self.stride = _pair(stride, who, "stride", 1)
        self.padding = _pair((self.kernel_size[0] // 2, self.kernel_size[1] // 2) if padding is None
                             else padding, who, "padding", 0)
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        bound = 1.0 / math.sqrt(in_channels // groups * self.kernel_size[0] * self.kernel_size[1])
        shape = (out_channels, in_channels // groups) + self.kernel_size
        self.weight = self.register_parameter("weight", rng.uniform(-bound, bound, shape).astype(dtype))
        if bias:
            self.bias = self.register_parameter("bias", rng.uniform(-bound, bound, out_channels).astype(dtype))
        self.cache = None

    def extra_repr(self):
        k, s = self.kernel_size, self.stride
        ks = str(k[0]) if k[0] == k[1] else f"{k[0]}x{k[1]}"
        ss = str(s[0]) if s[0] == s[1] else f"{s[0]}x{s[1]}"
        g = "" if self.groups == 1 else f", groups={self.groups}"
        b = ", bias" if "bias" in self._params else ""
        return f"{self.in_channels}->{self.out_channels}, k={ks}, s={ss}{g}{b}"

    def _label(self):
        return f"Conv2d({self.extra_repr()})"

    def forward(self, x):
        """x (N, C, H, W) -> y (N, O, Ho, Wo); keeps (x, weight) for backward."""
        check_input(self, x, channels=self.in_channels, dtype=self.weight.dtype)
        out_hw = _out_hw(x.shape, self.kernel_size, self.stride, self.padding, self._label)
        b = self.bias if "bias" in self._params else None
        y, self.cache = _forward(x, self.weight, b, self.stride, self.padding, self.groups, out_hw)
        return y

    def backward(self, dy, input_grad=True):
        """dy (N, O, Ho, Wo) -> dx (N, C, H, W); overwrites the ``weight`` (and ``bias``) grads.
        ``input_grad=False``: the weight grads alone, returns None (an input that needs no gradient)."""
        _check_dy(dy, self._need_cache(self.cache), lambda: f"{self._label()}.backward")
        dx, dw, db = conv2d_backward(dy, self.cache, input_grad)
        self._set_grad("weight", dw)
        if db is not None:
            self._set_grad("bias", db)
        return dx
