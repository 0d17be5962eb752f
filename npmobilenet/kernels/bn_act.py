"""Batch norm and the activation after it, in one pass over the data.

Apart, BN writes its output z and the activation reads z back to write y = act(z) (and, for
ReLU/ReLU6, the mask its backward needs); backward, the activation writes dz = act'(z) dy and BN
reads it back twice.  Those are whole-tensor passes through memory, which on two cores do not get
faster with more threads.  Fused, the activation is applied to each z as it is computed and dz is
formed as it is read, so z and dz never go to memory (z does for hard-swish, whose backward needs
it).  Each value goes through exactly the operations, in the same order and precision, of the
separate kernels (``elementwise.py``), so the forward results (and the activation's cache) are
bit for bit the separate layers'; in the backward LLVM may vectorise the float64 sums over a
channel in another order, so dx, dgamma and dbeta agree to float rounding.

Two families, by what the activation's backward keeps: ``mask`` (ReLU, ``kind`` 0, and ReLU6,
``kind`` 1: a bool mask) and ``hswish`` (hard-swish: its input z).  Arrays are (N, C, L) views;
kernels take a channel range ``[start, stop)`` for ``threads.run_chunks``.

The training forward does not write xhat: BN's backward needs it, but it is one multiply-add away
from x, which is kept anyway (it is the conv's output, referenced, not copied).  The forward
stores each channel's float64 mean and 1/std in ``stats`` and the backward recomputes
``xhat = float((x - mean) * invstd)`` from them, the forward's own expression, so it gets the
value the forward would have stored (measured, one thread: the forward 1.4-1.5x faster, from
16x512x7x7 to 16x32x112x112; it wrote y, xhat and the mask, now y and the mask).
"""
import math

from numba import njit

from .elementwise import bn_normalise, bn_stats

# As in elementwise.py, the kernels carry no fast-math flag, so each value is computed by the
# separate layers' own operations (elementwise.bn_normalise, the activation helpers below); only
# the float64 sums (elementwise.bn_stats, and _mask_sums / _hswish_sums here) reassociate.
_FM = {"reassoc"}


@njit(cache=True, nogil=True)
def _relu_like(v, kind, zero, six):
    """(y, mask) of ReLU (kind 0: np.maximum(v, 0)) or ReLU6 (kind 1: np.clip(v, 0, 6))."""
    if kind == 0:
        return (v if (v > zero) | (v != v) else zero), v > zero
    t = v if (v >= zero) | (v != v) else zero
    return (t if (t <= six) | (t != t) else six), (v > zero) & (v < six)


@njit(cache=True, nogil=True)
def _hswish(v, zero, three, six):
    """x * np.clip(x + 3, 0, 6) / 6."""
    t = v + three
    t = t if (t >= zero) | (t != t) else zero
    t = t if (t <= six) | (t != t) else six
    return v * t / six


@njit(cache=True, nogil=True)
def _hswish_slope(v, zero, half, one, three):
    """elementwise.hardswish_backward's slope: 0 for v <= -3, v/3 + 1/2 on (-3, 3), 1 for v >= 3."""
    s = v / three + half
    s = s if v < three else one
    return s if v > -three else zero


@njit(cache=True, nogil=True)
def mask_train_forward(x, gamma, beta, eps, kind, y, mask, mean, var, stats, start, stop):
    """Training BN then ReLU/ReLU6: y = act(z), z = gamma xhat + beta; writes mask, mean, var and
    stats (2, C) float64: the mean and 1/std xhat was computed with."""
    n, _, l = x.shape
    zero, six = x.dtype.type(0), x.dtype.type(6)
    for c in range(start, stop):
        mu, v = bn_stats(x, c)
        mean[c], var[c] = mu, v
        inv = 1.0 / math.sqrt(v + eps)
        stats[0, c], stats[1, c] = mu, inv
        g, b = gamma[c], beta[c]
        for i in range(n):
            for j in range(l):
                xh = bn_normalise(x[i, c, j], mu, inv)
                y[i, c, j], mask[i, c, j] = _relu_like(x.dtype.type(g * xh + b), kind, zero, six)


@njit(cache=True, nogil=True)
def hswish_train_forward(x, gamma, beta, eps, y, z, mean, var, stats, start, stop):
    """Training BN then hard-swish: writes y, z (hard-swish's cache), mean, var and stats."""
    n, _, l = x.shape
    zero, three, six = x.dtype.type(0), x.dtype.type(3), x.dtype.type(6)
    for c in range(start, stop):
        mu, v = bn_stats(x, c)
        mean[c], var[c] = mu, v
        inv = 1.0 / math.sqrt(v + eps)
        stats[0, c], stats[1, c] = mu, inv
        g, b = gamma[c], beta[c]
        for i in range(n):
            for j in range(l):
                xh = bn_normalise(x[i, c, j], mu, inv)
                zz = x.dtype.type(g * xh + b)
                z[i, c, j] = zz
                y[i, c, j] = _hswish(zz, zero, three, six)


@njit(cache=True, nogil=True)
def mask_eval_forward(x, mean, invstd, gamma, beta, kind, y, mask, start, stop):
    """Eval BN (elementwise.bn_eval_forward's arithmetic) then ReLU/ReLU6."""
    n, _, l = x.shape
    zero, six = x.dtype.type(0), x.dtype.type(6)
    for c in range(start, stop):
        mu, inv, g, b = mean[c], invstd[c], gamma[c], beta[c]
        for i in range(n):
            for j in range(l):
                y[i, c, j], mask[i, c, j] = _relu_like(g * ((x[i, c, j] - mu) * inv) + b, kind, zero, six)


@njit(cache=True, nogil=True)
def hswish_eval_forward(x, mean, invstd, gamma, beta, y, z, start, stop):
    """Eval BN then hard-swish; writes y and z."""
    n, _, l = x.shape
    zero, three, six = x.dtype.type(0), x.dtype.type(3), x.dtype.type(6)
    for c in range(start, stop):
        mu, inv, g, b = mean[c], invstd[c], gamma[c], beta[c]
        for i in range(n):
            for j in range(l):
                zz = g * ((x[i, c, j] - mu) * inv) + b
                z[i, c, j] = zz
                y[i, c, j] = _hswish(zz, zero, three, six)


@njit(cache=True, nogil=True)
def eval_row(row, mu, inv, g, b, kind):
    """row = act(g ((row - mu) inv) + b) in place: eval BN then the activation (kind 0 ReLU,
    1 ReLU6, 2 hard-swish, 3 none), the arithmetic of ``mask_eval_forward`` / ``hswish_eval_forward``."""
    zero, three, six = row.dtype.type(0), row.dtype.type(3), row.dtype.type(6)
    for j in range(row.shape[0]):
        zz = g * ((row[j] - mu) * inv) + b
        if kind == 2:
            zz = _hswish(zz, zero, three, six)
        elif kind < 2:
            zz = _relu_like(zz, kind, zero, six)[0]
        row[j] = zz


@njit(cache=True, nogil=True)
def eval_inplace(y, mean, invstd, gamma, beta, kind, start, stop):
    """y = act(eval BN(y)) in place for channels start <= c < stop, y (N, C, L), for an inference
    pass (``no_grad``), without the mask or z that only a backward would read (``eval_row``)."""
    for i in range(y.shape[0]):
        for c in range(start, stop):
            eval_row(y[i, c], mean[c], invstd[c], gamma[c], beta[c], kind)


@njit(cache=True, nogil=True, fastmath=_FM)
def _mask_sums(dy, mask, x, mu, inv, c):
    """(sum dz, sum dz * xhat) over channel c, dz = dy * mask, xhat recomputed in float64 (the
    expression is written out: a helper called from here would take this function's flags)."""
    n, _, l = dy.shape
    sdy = 0.0
    sdyx = 0.0
    for i in range(n):
        for j in range(l):
            g = dy[i, c, j] * mask[i, c, j]
            sdy += g
            sdyx += g * x.dtype.type((x[i, c, j] - mu) * inv)
    return sdy, sdyx


@njit(cache=True, nogil=True)
def mask_train_backward(dy, mask, x, stats, gamma, invstd, dx, dgamma, dbeta, start, stop):
    """ReLU/ReLU6 backward (dz = dy * mask) and training BN backward (elementwise.bn_train_backward),
    dz formed as it is read, xhat recomputed from x and the forward's ``stats``."""
    n, _, l = dy.shape
    m = n * l
    for c in range(start, stop):
        mu, inv = stats[0, c], stats[1, c]
        sdy, sdyx = _mask_sums(dy, mask, x, mu, inv, c)
        dgamma[c] = sdyx
        dbeta[c] = sdy
        k = gamma[c] * invstd[c] / m
        for i in range(n):
            for j in range(l):
                xh = x.dtype.type(bn_normalise(x[i, c, j], mu, inv))
                dx[i, c, j] = k * (m * (dy[i, c, j] * mask[i, c, j]) - sdy - xh * sdyx)


@njit(cache=True, nogil=True)
def _hswish_dz(dy, z, c, i, j, zero, half, one, three):
    return dy[i, c, j] * _hswish_slope(z[i, c, j], zero, half, one, three)


@njit(cache=True, nogil=True, fastmath=_FM)
def _hswish_sums(dy, z, x, mu, inv, c):
    """(sum dz, sum dz * xhat) over channel c, dz = dy * hard-swish'(z) (see ``_mask_sums``)."""
    n, _, l = dy.shape
    zero, half, one, three = dy.dtype.type(0), dy.dtype.type(0.5), dy.dtype.type(1), dy.dtype.type(3)
    sdy = 0.0
    sdyx = 0.0
    for i in range(n):
        for j in range(l):
            g = _hswish_dz(dy, z, c, i, j, zero, half, one, three)
            sdy += g
            sdyx += g * x.dtype.type((x[i, c, j] - mu) * inv)
    return sdy, sdyx


@njit(cache=True, nogil=True)
def hswish_train_backward(dy, z, x, stats, gamma, invstd, dx, dgamma, dbeta, start, stop):
    """Hard-swish backward (dz = dy * slope(z)) and training BN backward, dz formed as it is read,
    xhat recomputed from x and the forward's ``stats``."""
    n, _, l = dy.shape
    m = n * l
    zero, half, one, three = dy.dtype.type(0), dy.dtype.type(0.5), dy.dtype.type(1), dy.dtype.type(3)
    for c in range(start, stop):
        mu, inv = stats[0, c], stats[1, c]
        sdy, sdyx = _hswish_sums(dy, z, x, mu, inv, c)
        dgamma[c] = sdyx
        dbeta[c] = sdy
        k = gamma[c] * invstd[c] / m
        for i in range(n):
            for j in range(l):
                g = _hswish_dz(dy, z, c, i, j, zero, half, one, three)
                xh = x.dtype.type(bn_normalise(x[i, c, j], mu, inv))
                dx[i, c, j] = k * (m * g - sdy - xh * sdyx)
