"""Batch normalisation over the channels of an NCHW array (Ioffe & Szegedy, 2015, Algorithm 1).

For each channel c, over its M = N*H*W values x_i:

    mu     = (1/M) sum_i x_i                                                              (1)
    var    = (1/M) sum_i (x_i - mu)^2          (biased: used to normalise)                (2)
    s      = 1 / sqrt(var + eps)               ("invstd")                                 (3)
    xhat_i = (x_i - mu) * s                                                               (4)
    y_i    = gamma * xhat_i + beta                                                        (5)

In training mode mu and var are the batch's; in eval mode they are the running estimates.  The
conventions are PyTorch's (``torch.nn.BatchNorm2d``), which timm's MobileNets use:

* momentum weighs the NEW batch: running = (1 - momentum) * running + momentum * batch, with
  momentum = 0.1.  (Keras' 0.99/0.999 and CS231n's 0.9 weigh the OLD value instead.)
* the running variance is updated with the UNBIASED batch variance var * M / (M - 1), while (2)
  normalises with the biased one;
* eps = 1e-5 (timm's default; torchvision's V3 and the ``tf_`` ports use 1e-3).

Two paths: plain NumPy (``_forward_plain`` / ``_backward_plain``, the lesson's version) and Numba
kernels (``kernels/elementwise.py``), run over ranges of channels on the threads
(``kernels/threads.py``).  In training mode they do each channel's passes while its data is in
cache (2.2x faster than NumPy on 16x240x28x28 float32, forward and backward).  In eval mode the
kernel is one pass writing one array, in the plain path's operation order (so the two agree bit
for bit), where NumPy makes four passes and three temporaries; it keeps x rather than xhat for a
backward in eval mode, which recomputes xhat.  The kernels' outputs come from
``kernels/buffers.py``, so a training step reuses the previous step's memory.
"""
from collections import namedtuple

import numpy as np

from ..kernels import buffers, elementwise as K
from ..kernels.threads import run_chunks
from ..module import DEFAULT_DTYPE, Module, check_input
from . import _checks, backend

BNCache = namedtuple("BNCache", "xhat gamma invstd training mean var x stats", defaults=(None, None))
BNCache.__doc__ = """What backward needs (xhat, gamma, invstd, mode) and the statistics used (mean, var).
The fast eval path keeps the input ``x`` instead of ``xhat`` (None): an inference pass then writes
one array, and a backward in eval mode recomputes xhat.  So does a training-mode BN run fused with
its activation (``fused.py``), keeping also ``stats`` (2, C) float64, the mean and 1/std its xhat
was computed with, so that the recomputed xhat is the one its forward used (``xhat_of``)."""


def xhat_of(cache):
    """The normalised input xhat (N, C, H, W) of a ``BNCache``, recomputed when only x was kept."""
    if cache.xhat is not None:
        return cache.xhat
    if cache.stats is not None:       # fused training forward: its own float64 mean and 1/std
        mu, inv = (cache.stats[k][None, :, None, None] for k in (0, 1))
        return ((cache.x - mu) * inv).astype(cache.x.dtype)
    return (cache.x - _per_channel(cache.mean)) * _per_channel(cache.invstd)


def batchnorm_forward(x, gamma, beta, eps=1e-5, training=True, running_mean=None, running_var=None):
    """Batch norm, eqs. (1)-(5).

    Inputs:
    - x: (N, C, H, W) float32 or float64
    - gamma, beta: (C,), the dtype of x
    - eps: the variance floor in (3)
    - training: True normalises with the batch statistics, False with running_mean/running_var
    - running_mean, running_var: (C,), required when training is False (not modified)

    Returns a tuple of:
    - y: (N, C, H, W)
    - cache: a ``BNCache``; ``cache.mean`` and ``cache.var`` (biased) are the statistics used,
      which ``batchnorm_running_update`` folds into the running estimates after a training step.
    """
    who = "batchnorm_forward"
    _checks.float_array(who, "x", x)
    if x.ndim != 4:
        raise ValueError(f"{who}: x has shape {x.shape} ({x.ndim} dimensions); expected (N, C, H, W)")
    C = x.shape[1]
    _checks.vector(who, "gamma", gamma, C, x.dtype)
    _checks.vector(who, "beta", beta, C, x.dtype)
    if training:
        if x.size // max(C, 1) < 2:
            raise ValueError(f"{who}: x has shape {x.shape}, one value per channel; training-mode batch"
                             f" norm needs N*H*W >= 2 (use eval mode for a single 1x1 example)")
        if backend.fast():
            return _forward_train_fast(x, gamma, beta, eps)
        mean, var = _stats_plain(x)
    else:
        if running_mean is None or running_var is None:
            raise ValueError(f"{who}: eval mode (training=False) needs running_mean and running_var")
        mean = _checks.vector(who, "running_mean", running_mean, C, x.dtype)
        var = _checks.vector(who, "running_var", running_var, C, x.dtype)
        if backend.fast():
            return _forward_eval_fast(x, gamma, beta, eps, mean, var)
    return _forward_plain(x, gamma, beta, eps, mean, var, training)


def batchnorm_backward(dy, cache):
    """Gradients of ``batchnorm_forward`` with respect to x, gamma and beta.

    Inputs:
    - dy: (N, C, H, W), the upstream gradient (not modified)
    - cache: the ``BNCache`` from the forward call (not modified)

    Returns a tuple of:
    - dx: (N, C, H, W)
    - dgamma, dbeta: (C,)

    Derivation, per channel, with sums over the channel's M values:

        dbeta   = sum_i dy_i                              from (5): dy_i/dbeta = 1
        dgamma  = sum_i dy_i * xhat_i                     from (5): dy_i/dgamma = xhat_i
        dxhat_i = gamma * dy_i                            from (5)

    Eval mode: mu and var are constants, so (4) is affine and dx_i = s * dxhat_i.

    Training mode: every xhat_i depends on every x_j through mu and var.  From (1), dmu/dx_j = 1/M;
    from (2), dvar/dx_j = (2/M)(x_j - mu) (the term -2/M sum_i (x_i - mu) is zero); from (3),
    ds/dvar = -s^3 / 2.  Hence, from (4),

        dxhat_i/dx_j = s (delta_ij - 1/M) - (x_i - mu) s^3 (x_j - mu) / M
                     = (s / M) (M delta_ij - 1 - xhat_i xhat_j)

    and summing over i:

        dx_j = sum_i dxhat_i dxhat_i/dx_j
             = (s / M) (M dxhat_j - sum_i dxhat_i - xhat_j sum_i dxhat_i xhat_i)        (6)

    Since sum dxhat = gamma dbeta and sum dxhat xhat = gamma dgamma, (6) is also
    dx_j = (gamma s / M)(M dy_j - dbeta - xhat_j dgamma), the form the fast kernel uses.
    """
    if not isinstance(cache, BNCache):
        raise TypeError(f"batchnorm_backward: cache must be the BNCache returned by batchnorm_forward,"
                        f" got {type(cache).__name__}")
    kept = cache.x if cache.xhat is None else cache.xhat
    _checks.upstream("batchnorm_backward", dy, kept.shape, kept.dtype)
    if cache.training and backend.fast():
        return _backward_train_fast(dy, cache)
    return _backward_plain(dy, cache)


def batchnorm_running_update(running_mean, running_var, mean, var, m, momentum):
    """PyTorch's running-statistics update after a training-mode forward.

    Inputs: running_mean, running_var: (C,) current estimates; mean, var: (C,) the batch's mean
    and BIASED variance (``cache.mean``, ``cache.var``); m: values per channel (N*H*W);
    momentum: the weight of the new batch.
    Returns: (new_mean, new_var) =
        ((1 - momentum) running_mean + momentum mean,
         (1 - momentum) running_var + momentum var * m / (m - 1))      (unbiased, Bessel)
    """
    new_mean = (1 - momentum) * running_mean + momentum * mean
    new_var = (1 - momentum) * running_var + momentum * (var * (m / (m - 1)))
    return new_mean.astype(running_mean.dtype), new_var.astype(running_var.dtype)


# ---- plain NumPy ------------------------------------------------------------------------------
def _per_channel(v):
    """(C,) -> (C, 1, 1), which broadcasts against (N, C, H, W)."""
    return v[:, None, None]


def _stats_plain(x):
    mean = x.mean(axis=(0, 2, 3))
    xc = x - _per_channel(mean)
    return mean, (xc * xc).mean(axis=(0, 2, 3))  # two passes: E[x^2]-E[x]^2 cancels when |mu|>>std


def _forward_plain(x, gamma, beta, eps, mean, var, training):
    invstd = 1.0 / np.sqrt(var + eps)
    xhat = (x - _per_channel(mean)) * _per_channel(invstd)
    y = _per_channel(gamma) * xhat + _per_channel(beta)
    return y, BNCache(xhat, gamma, invstd, training, mean, var)


def _backward_plain(dy, cache):
    xhat, gamma, s = xhat_of(cache), cache.gamma, _per_channel(cache.invstd)
    dbeta = dy.sum(axis=(0, 2, 3))
    dgamma = (dy * xhat).sum(axis=(0, 2, 3))
    dxhat = dy * _per_channel(gamma)
    if not cache.training:
        return dxhat * s, dgamma, dbeta
    M = dy.size // dy.shape[1]
    sum_dxhat = dxhat.sum(axis=(0, 2, 3))
    sum_dxhat_xhat = (dxhat * xhat).sum(axis=(0, 2, 3))
    dx = (s / M) * (M * dxhat - _per_channel(sum_dxhat) - xhat * _per_channel(sum_dxhat_xhat))  # (6)
    return dx, dgamma, dbeta


# ---- fast (training mode; Numba) -------------------------------------------------------------
def _as3d(a):
    """(N, C, H, W) -> contiguous (N, C, H*W) (a view when a is already contiguous)."""
    return np.ascontiguousarray(a).reshape(a.shape[0], a.shape[1], -1)


def _forward_train_fast(x, gamma, beta, eps):
    N, C, H, W = x.shape
    y, xhat = buffers.empty(x.shape, x.dtype), buffers.empty(x.shape, x.dtype)
    mean, var = np.empty(C, x.dtype), np.empty(C, x.dtype)
    run_chunks(K.bn_train_forward, C, _as3d(x), gamma, beta, float(eps), y.reshape(N, C, -1),
               xhat.reshape(N, C, -1), mean, var, work=2 * x.size)
    invstd = 1.0 / np.sqrt(var + eps)
    return y, BNCache(xhat, gamma, invstd, True, mean, var)


def _forward_eval_fast(x, gamma, beta, eps, mean, var):
    N, C = x.shape[:2]
    invstd = 1.0 / np.sqrt(var + eps)
    y = buffers.empty(x.shape, x.dtype)
    x3 = _as3d(x)
    run_chunks(K.bn_eval_forward, C, x3, mean, invstd, gamma, beta, y.reshape(N, C, -1), work=2 * x.size)
    return y, BNCache(None, gamma, invstd, False, mean, var, x3.reshape(x.shape))


def _backward_train_fast(dy, cache):
    N, C = dy.shape[:2]
    dx = buffers.empty(dy.shape, dy.dtype)
    dgamma, dbeta = np.empty(C, dy.dtype), np.empty(C, dy.dtype)
    run_chunks(K.bn_train_backward, C, _as3d(dy), _as3d(xhat_of(cache)), cache.gamma, cache.invstd,
               dx.reshape(N, C, -1), dgamma, dbeta, work=3 * dy.size)
    return dx, dgamma, dbeta


# ---- the module -------------------------------------------------------------------------------
class BatchNorm2d(Module):
    """``torch.nn.BatchNorm2d``: parameters ``weight`` (gamma, ones) and ``bias`` (beta, zeros);
    buffers ``running_mean`` (zeros) and ``running_var`` (ones).

    Training mode normalises with the batch statistics and updates the running estimates
    (``batchnorm_running_update``); eval mode normalises with the running estimates.

    >>> bn = BatchNorm2d(16)
    >>> bn(np.ones((2, 16, 4, 4), np.float32)).shape
    (2, 16, 4, 4)
    >>> float(bn.running_var[0])   # 0.9 * 1 + 0.1 * 0 (the batch variance of a constant is 0)
    0.8999999761581421
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, dtype=DEFAULT_DTYPE):
        super().__init__()
        who = f"BatchNorm2d({num_features})"
        if not isinstance(num_features, (int, np.integer)) or isinstance(num_features, bool) or num_features < 1:
            raise ValueError(f"{who}: num_features must be a positive int, got {num_features!r}")
        if not isinstance(eps, (int, float)) or not eps > 0:
            raise ValueError(f"{who}: eps must be a positive number, got {eps!r}")
        if momentum is None or not isinstance(momentum, (int, float)) or not 0 <= momentum <= 1:
            raise ValueError(f"{who}: momentum must be a number in [0, 1] (the weight of the new batch,"
                             f" PyTorch's convention), got {momentum!r}")
        self.num_features, self.eps, self.momentum = int(num_features), float(eps), float(momentum)
        C = self.num_features
        self.weight = self.register_parameter("weight", np.ones(C, dtype))
        self.bias = self.register_parameter("bias", np.zeros(C, dtype))
        self.running_mean = self.register_buffer("running_mean", np.zeros(C, dtype))
        self.running_var = self.register_buffer("running_var", np.ones(C, dtype))
        self.cache = None

    def _label(self):
        return f"BatchNorm2d({self.num_features})"

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps:g}, momentum={self.momentum:g}"

    def forward(self, x):
        """x (N, C, H, W) -> y (N, C, H, W); in training mode also updates the running estimates."""
        check_input(self, x, channels=self.num_features, dtype=self.weight.dtype)
        y, self.cache = batchnorm_forward(x, self.weight, self.bias, self.eps, self.training,
                                          self.running_mean, self.running_var)
        if self.training:
            m = x.size // self.num_features
            new_mean, new_var = batchnorm_running_update(self.running_mean, self.running_var,
                                                         self.cache.mean, self.cache.var, m, self.momentum)
            # In place: the live buffer arrays (buffers(), a loaded checkpoint) stay the same objects.
            np.copyto(self.running_mean, new_mean)
            np.copyto(self.running_var, new_var)
        return y

    def backward(self, dy):
        """dy (N, C, H, W) -> dx; overwrites the ``weight`` and ``bias`` grads."""
        dx, dgamma, dbeta = batchnorm_backward(dy, self._need_cache(self.cache))
        self._set_grad("weight", dgamma)
        self._set_grad("bias", dbeta)
        return dx
