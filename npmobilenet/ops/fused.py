"""Fast path: a BatchNorm2d and the activation right after it, run as one layer by ``Sequential``.

Every MobileNet block is a chain conv -> BN -> activation (timm fuses the last two in its
``BatchNormAct2d``).  Run apart, BN writes its output z to memory and the activation reads it
back, and in backward the activation writes dz and BN reads it back twice; those passes cost 20 %
of a MobileNetV4 forward at batch 16 and do not get faster with a second core, being memory
bound.  ``kernels/bn_act.py`` does both layers in one pass each way.  The fused functions here
leave in each module a cache its own backward reads (BN's keeps its input x and the statistics
instead of a written xhat, as its eval path does), so a fused forward may be followed by the
modules' own backward and the other way round.  The forward gives bit-for-bit the layers'
results; the backward's per-channel sums (float64) may be vectorised in another order, so its
results agree to float rounding (the tests check both).

Inference (``npmobilenet.no_grad()``): nothing is kept for backward, so an eval-mode conv, the
batch norm after it and its activation become one layer (``triple`` / ``inference``): the conv's
product runs a chunk of images at a time (``kernels/pointwise.py``, ``kernels/im2col.py``,
``kernels/stem.py``) and each chunk is normalised and activated in place right after, while it is
still in cache, instead of in a later pass through memory (``kernels/bn_act.eval_inplace``).  Same
arithmetic in the same order: the outputs are bit for bit those of the separate layers.  Depthwise
convs are left out: their BN and activation run fused as above (measured: applying them inside
the depthwise loops gained nothing on MobileNetV4-Conv-S or V3-Small, and a helper called from
those loops, which are compiled with ``fastmath``, is compiled, and cached, with their flags).

``Sequential`` asks ``pair(a, b)`` for each two neighbours on the fast path.  It says yes only for
the classes' own, unmodified methods, so anything that wraps a module's forward or backward (the
summary's shape recorder, the profiler, a test's patch) sees every layer called on its own.
"""
import numpy as np

from ..kernels import bn_act as K
from ..kernels import buffers
from ..kernels.threads import run_chunks
from . import backend
from .activations import Hardswish, Identity, ReLU, ReLU6
from .batchnorm import BNCache, BatchNorm2d, _as3d, batchnorm_running_update
from .conv import Conv2d, _out_hw

_MASK_KIND = {ReLU: 0, ReLU6: 1}
_PLAIN_METHODS = {"forward", "backward"}


def _untouched(m):
    """m runs its class's own forward and backward (nothing patched on the instance or the class)."""
    cls = type(m)
    base = cls if cls in _ORIGINAL else cls.__mro__[1]
    return (not (_PLAIN_METHODS & m.__dict__.keys())
            and cls.forward is _ORIGINAL[base][0] and cls.backward is _ORIGINAL[base][1])


def pair(bn, act):
    """True if ``bn`` then ``act`` can run fused: a plain BatchNorm2d and ReLU, ReLU6 or Hardswish."""
    return (backend.fast() and type(bn) is BatchNorm2d and type(act) in (ReLU, ReLU6, Hardswish)
            and _untouched(bn) and _untouched(act))


def forward(bn, act, x):
    """act(bn(x)), leaving bn.cache and act.cache as the two forwards would, and BN's running
    statistics updated in training mode."""
    from ..module import check_input
    check_input(bn, x, channels=bn.num_features, dtype=bn.weight.dtype)
    N, C = x.shape[:2]
    x3 = _as3d(x)
    y = buffers.empty(x.shape, x.dtype)
    mask_kind = _MASK_KIND.get(type(act))
    aux = buffers.empty(x.shape, np.bool_ if mask_kind is not None else x.dtype)   # mask, or z
    y3, aux3 = y.reshape(N, C, -1), aux.reshape(N, C, -1)
    gamma, beta = bn.weight, bn.bias
    if bn.training:
        if x.size // max(C, 1) < 2:
            bn.forward(x)                    # raises the layer's own clear error
        mean, var, stats = np.empty(C, x.dtype), np.empty(C, x.dtype), np.empty((2, C), np.float64)
        if mask_kind is not None:
            run_chunks(K.mask_train_forward, C, x3, gamma, beta, bn.eps, mask_kind, y3, aux3, mean, var, stats,
                       work=3 * x.size)
        else:
            run_chunks(K.hswish_train_forward, C, x3, gamma, beta, bn.eps, y3, aux3, mean, var, stats,
                       work=3 * x.size)
        invstd = 1.0 / np.sqrt(var + bn.eps)
        # x (the conv's output, referenced) instead of a written xhat: see kernels/bn_act.py
        bn.cache = BNCache(None, gamma, invstd, True, mean, var, x3.reshape(x.shape), stats)
        new_mean, new_var = batchnorm_running_update(bn.running_mean, bn.running_var, mean, var,
                                                     x.size // C, bn.momentum)
        np.copyto(bn.running_mean, new_mean)
        np.copyto(bn.running_var, new_var)
    else:
        mean, var = bn.running_mean, bn.running_var
        invstd = 1.0 / np.sqrt(var + bn.eps)
        if mask_kind is not None:
            run_chunks(K.mask_eval_forward, C, x3, mean, invstd, gamma, beta, mask_kind, y3, aux3, work=2 * x.size)
        else:
            run_chunks(K.hswish_eval_forward, C, x3, mean, invstd, gamma, beta, y3, aux3, work=2 * x.size)
        bn.cache = BNCache(None, gamma, invstd, False, mean, var, x3.reshape(x.shape))
    act.cache = (aux, x.dtype) if mask_kind is not None else aux
    return y


def backward(bn, act, dy):
    """bn.backward(act.backward(dy)) in one pass when BN ran in training mode, else the two."""
    cache, kept = bn.cache, act.cache
    if cache is None or kept is None or not cache.training or cache.stats is None:
        return bn.backward(act.backward(dy))      # (stats is None: BN's own forward ran, keeping xhat)
    mask = type(act) in _MASK_KIND
    aux = kept[0] if mask else kept
    from ._checks import upstream
    upstream(lambda: f"{act._label()}.backward", dy, aux.shape, cache.x.dtype)
    N, C = dy.shape[:2]
    dx = buffers.empty(dy.shape, dy.dtype)
    dgamma, dbeta = np.empty(C, dy.dtype), np.empty(C, dy.dtype)
    args = (_as3d(dy), aux.reshape(N, C, -1), _as3d(cache.x), cache.stats, cache.gamma, cache.invstd,
            dx.reshape(N, C, -1), dgamma, dbeta)
    run_chunks(K.mask_train_backward if mask else K.hswish_train_backward, C, *args, work=3 * dy.size)
    bn._set_grad("weight", dgamma)
    bn._set_grad("bias", dbeta)
    return dx


# ---- inference: conv -> BN (-> activation) as one layer ----------------------------------------
_ACT_KIND = {ReLU: 0, ReLU6: 1, Hardswish: 2, Identity: 3}


def triple(conv, bn):
    """True if ``conv``, ``bn`` (and the activation after them, if any: ``inference`` decides) can
    run as one inference layer: no_grad, fast path, a plain Conv2d (groups 1, no bias: a 1x1,
    stem or im2col conv), an eval-mode BatchNorm2d."""
    from ..module import grad_enabled
    if grad_enabled() or not backend.fast() or type(conv) is not Conv2d or type(bn) is not BatchNorm2d:
        return False
    if bn.training or "bias" in conv._params or not (_untouched(conv) and _untouched(bn)):
        return False
    if conv.out_channels != bn.num_features or conv.weight.dtype != bn.weight.dtype:
        return False
    return conv.groups == 1


def inference(conv, bn, rest, x):
    """(act(bn(conv(x))), number of modules run): conv, BN and the activation after it (when
    ``rest`` holds a ReLU, ReLU6, hard-swish or Identity), the BN and activation applied to each
    chunk of the conv's output as it is produced."""
    from ..kernels import im2col, pointwise, stem
    from ..module import check_input
    act = rest[0] if rest and type(rest[0]) in _ACT_KIND and _untouched(rest[0]) else None
    check_input(conv, x, channels=conv.in_channels, dtype=conv.weight.dtype)
    N = x.shape[0]
    out_hw = _out_hw(x.shape, conv.kernel_size, conv.stride, conv.padding, conv._label)
    mean, gamma, beta = bn.running_mean, bn.weight, bn.bias
    invstd = 1.0 / np.sqrt(bn.running_var + bn.eps)
    kind = 3 if act is None else _ACT_KIND[type(act)]
    C = bn.num_features

    def epilogue(y, lo, hi):
        y3 = y[lo:hi].reshape(hi - lo, C, -1)
        if (lo, hi) == (0, N):        # the whole batch at once: split the channels over the threads
            run_chunks(K.eval_inplace, C, y3, mean, invstd, gamma, beta, kind, work=y3.size)
        else:                          # one thread's chunk of images, still in its cache
            K.eval_inplace(y3, mean, invstd, gamma, beta, kind, 0, C)

    w = conv.weight
    if w.shape[2:] == (1, 1) and conv.padding == (0, 0):
        (sh, sw), (Ho, Wo) = conv.stride, out_hw
        xs = np.ascontiguousarray(x[:, :, ::sh, ::sw]).reshape(N, conv.in_channels, Ho * Wo)
        y = pointwise.forward(xs, w.reshape(w.shape[0], -1), epilogue=epilogue).reshape((N, C) + tuple(out_hw))
    elif stem.applies(x.shape, w.shape, conv.stride, conv.padding, conv.groups):
        y = stem.forward_fast(x, w, epilogue=epilogue)
    else:
        y = im2col.conv_forward(x, w.reshape(1, w.shape[0], -1), conv.kernel_size, conv.stride, conv.padding,
                                out_hw, epilogue=epilogue)
    return y, 2 if act is None else 3


_ORIGINAL = {cls: (cls.forward, cls.backward) for cls in (BatchNorm2d, ReLU.__mro__[1], Conv2d, Identity)}
