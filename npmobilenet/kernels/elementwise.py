"""Numba kernels for the per-channel and per-element layers: batch norm, hard-swish and GELU.

Batch norm: NumPy reduces over axes (0, 2, 3) of an NCHW array with strided passes and writes a
temporary for every intermediate ((x - mean), its square, xhat, ...).  The kernels below instead
visit one channel at a time, ``x[:, c, :]`` (N runs of H*W contiguous values, small enough to stay
in cache), and do all the passes a channel needs while it is hot: mean, variance, normalise and
scale-shift in the forward; the two sums and dx in the backward.  Sums are accumulated in float64
whatever the array dtype, so float32 statistics are no less accurate than NumPy's pairwise sums.

The piecewise-linear activations: output and mask in one pass each (see below).  Hard-swish
backward: its three-piece slope costs NumPy several passes and temporaries; one fused loop is 14x
faster.  GELU: the exact form needs erf, which NumPy lacks (and ``np.vectorize(math.erf)`` runs at
Python speed); Numba compiles ``math.erf`` to the C library's erf.

Arrays arrive as contiguous 3-D views ``(N, C, L)`` with L = H*W (batch norm) or flat 1-D; the
Python wrappers in ``npmobilenet.ops`` validate and allocate.  The batch-norm kernels take a range
of channels ``[start, stop)`` and the elementwise ones a range of flat indices, so that
``threads.run_chunks`` can run parts of one call on several threads; each element is written by
one part, so the results do not depend on the thread count.  Every kernel compiles once per dtype
(float32, float64) and is cached on disk.
"""
import math

import numpy as np
from numba import njit

# Reassociation lets LLVM vectorise the float64 reductions (a strict left-to-right sum is bound by
# the add latency: 2.3x slower on 16x240x28x28).  No other fast-math flag: NaN and inf must still
# propagate.  Not parallel=True: a prange over channels timed 1.4 ms when both cores were idle but
# 7.5 ms when another process was busy (its threads wait for each other); the channel ranges are
# handed to threads.run_chunks instead, whose caller does every part itself when no other thread
# gets a core.
_FM = {"reassoc"}

_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


# Batch norm in training mode.  The kernels themselves carry no fast-math flag, so every per-value
# operation is computed as written, in every kernel that does it (here and in bn_act.py, fused
# with an activation): Numba compiles a helper into its caller with the caller's flags, and under
# reassociation LLVM rewrites (x - mu) * inv * g + b differently in different loops (measured:
# outputs 1 ulp apart between two kernels of the same source lines).  Only the float64 sums, in
# the helpers ``bn_stats`` and ``bn_sums``, are compiled with reassociation.
@njit(cache=True, nogil=True, fastmath=_FM)
def bn_stats(x, c):
    """Mean and biased variance of channel c of x (N, C, L), in float64.

    Two passes (mean first, then squared deviations): the one-pass E[x^2] - E[x]^2 cancels
    catastrophically when |mean| >> std.
    """
    n, _, l = x.shape
    s = 0.0
    for i in range(n):
        for j in range(l):
            s += x[i, c, j]
    mu = s / (n * l)
    ss = 0.0
    for i in range(n):
        for j in range(l):
            d = x[i, c, j] - mu
            ss += d * d
    return mu, ss / (n * l)


@njit(cache=True, nogil=True, fastmath=_FM)
def bn_sums(dy, xhat, c):
    """(sum dy, sum dy * xhat) over channel c, in float64."""
    n, _, l = dy.shape
    sdy = 0.0
    sdyx = 0.0
    for i in range(n):
        for j in range(l):
            g = dy[i, c, j]
            sdy += g
            sdyx += g * xhat[i, c, j]
    return sdy, sdyx


@njit(cache=True, nogil=True)
def bn_normalise(v, mu, inv):
    """xhat = (v - mu) * inv: the forward's normalisation, and the backward's recomputation of it
    when a fused forward kept x (``bn_act.py``)."""
    return (v - mu) * inv


@njit(cache=True, nogil=True)
def bn_train_forward(x, gamma, beta, eps, y, xhat, mean, var, start, stop):
    """Batch statistics and normalisation of channels ``start <= c < stop``, one per iteration.

    x, y, xhat: (N, C, L); gamma, beta: (C,); writes y, xhat, mean (C,), var (C,) (biased).
    """
    n, c_total, l = x.shape
    for c in range(start, stop):
        mu, v = bn_stats(x, c)
        mean[c] = mu
        var[c] = v
        inv = 1.0 / math.sqrt(v + eps)
        g = gamma[c]
        b = beta[c]
        for i in range(n):
            for j in range(l):
                xh = bn_normalise(x[i, c, j], mu, inv)
                xhat[i, c, j] = xh
                y[i, c, j] = g * xh + b


@njit(cache=True, nogil=True)
def bn_train_backward(dy, xhat, gamma, invstd, dx, dgamma, dbeta, start, stop):
    """Training-mode backward of channels ``start <= c < stop``, one per iteration.

    dgamma = sum(dy * xhat), dbeta = sum(dy),
    dx = gamma * invstd / M * (M * dy - dbeta - xhat * dgamma)   (M = N*L).
    """
    n, c_total, l = dy.shape
    m = n * l
    for c in range(start, stop):
        sdy, sdyx = bn_sums(dy, xhat, c)
        dgamma[c] = sdyx
        dbeta[c] = sdy
        k = gamma[c] * invstd[c] / m
        for i in range(n):
            for j in range(l):
                dx[i, c, j] = k * (m * dy[i, c, j] - sdy - xhat[i, c, j] * sdyx)


@njit(cache=True, nogil=True)
def bn_eval_forward(x, mean, invstd, gamma, beta, y, start, stop):
    """Eval-mode normalisation of channels ``start <= c < stop``: y = gamma (x - mean) invstd + beta.

    x, y: (N, C, L); the per-channel values are x's dtype and the arithmetic stays in it, in the
    plain path's order, so the result equals it bit for bit: one pass and one output array
    instead of NumPy's four passes over three temporaries.
    """
    n, _, l = x.shape
    for c in range(start, stop):
        mu, inv, g, b = mean[c], invstd[c], gamma[c], beta[c]
        for i in range(n):
            for j in range(l):
                y[i, c, j] = g * ((x[i, c, j] - mu) * inv) + b


# ---- the piecewise-linear activations: output and mask in one pass ----------------------------
# NumPy's relu6 is np.clip plus two comparisons and an &: five passes and four temporaries.  Each
# kernel below reads x once and writes y (and the mask backward needs) once, over the flat range
# [start, stop), with NumPy's exact semantics: a NaN (``v != v``) propagates, and on a tie
# ``np.clip`` keeps x (clip(-0.0, 0, 6) is -0.0) while ``np.maximum(x, 0)`` gives the 0 (+0.0);
# constants are typed like x, so float32 arithmetic stays float32 and the results equal the NumPy
# expressions bit for bit.  The loops run over
# slices indexed from 0 and use non-short-circuit ``|`` so that LLVM vectorises them (indexing
# from ``start`` directly, or a branchy ``or``, made the ReLU loop 3x slower).
@njit(cache=True, nogil=True, inline="always")
def _max(v, lo):
    """np.clip's lower bound."""
    return v if (v >= lo) | (v != v) else lo


@njit(cache=True, nogil=True, inline="always")
def _min(v, hi):
    """np.clip's upper bound."""
    return v if (v <= hi) | (v != v) else hi


@njit(cache=True, nogil=True)
def relu_forward(x, y, mask, start, stop):
    """y = np.maximum(x, 0); mask = x > 0."""
    zero = x.dtype.type(0)
    xs, ys, ms = x[start:stop], y[start:stop], mask[start:stop]
    for i in range(xs.size):
        v = xs[i]
        ys[i] = v if (v > zero) | (v != v) else zero
        ms[i] = v > zero


@njit(cache=True, nogil=True)
def relu6_forward(x, y, mask, start, stop):
    """y = np.clip(x, 0, 6); mask = 0 < x < 6."""
    zero, six = x.dtype.type(0), x.dtype.type(6)
    xs, ys, ms = x[start:stop], y[start:stop], mask[start:stop]
    for i in range(xs.size):
        v = xs[i]
        ys[i] = _min(_max(v, zero), six)
        ms[i] = (v > zero) & (v < six)


@njit(cache=True, nogil=True)
def hardsigmoid_forward(x, y, mask, start, stop):
    """y = np.clip(x + 3, 0, 6) / 6; mask = -3 < x < 3."""
    zero, three, six = x.dtype.type(0), x.dtype.type(3), x.dtype.type(6)
    xs, ys, ms = x[start:stop], y[start:stop], mask[start:stop]
    for i in range(xs.size):
        v = xs[i]
        ys[i] = _min(_max(v + three, zero), six) / six
        ms[i] = (v > -three) & (v < three)


@njit(cache=True, nogil=True)
def hardswish_forward(x, y, start, stop):
    """y = x * np.clip(x + 3, 0, 6) / 6."""
    zero, three, six = x.dtype.type(0), x.dtype.type(3), x.dtype.type(6)
    xs, ys = x[start:stop], y[start:stop]
    for i in range(xs.size):
        v = xs[i]
        ys[i] = v * _min(_max(v + three, zero), six) / six


@njit(cache=True, nogil=True)
def masked_backward(dy, mask, dx, start, stop):
    """dx = dy * mask, the bool mask taken as 1.0 / 0.0 exactly as NumPy's ``dy * mask``."""
    g, ms, out = dy[start:stop], mask[start:stop], dx[start:stop]
    for i in range(g.size):
        out[i] = g[i] * ms[i]


# ---- squeeze-and-excite: the channel scale and its backward, one pass per plane ------------------
# x (N*C, H*W) image planes, s (N*C,) one factor per plane.  NumPy's backward makes dy * s, dy * x,
# a sum, the pooling's broadcast gradient and an add: five passes and four temporaries.
@njit(cache=True, nogil=True)
def channel_scale(x, s, y, start, stop):
    """y[p] = x[p] * s[p] for planes start <= p < stop."""
    for p in range(start, stop):
        sv, xs, ys = s[p], x[p], y[p]
        for q in range(xs.size):
            ys[q] = xs[q] * sv


@njit(cache=True, nogil=True, fastmath=_FM)
def plane_dot(a, b, out, start, stop):
    """out[p] = sum_q a[p, q] b[p, q] (float64 sums) for planes start <= p < stop."""
    for p in range(start, stop):
        t, u = a[p], b[p]
        acc = 0.0
        for q in range(t.size):
            acc += t[q] * u[q]
        out[p] = acc


@njit(cache=True, nogil=True)
def scale_add(dy, s, add, dx, start, stop):
    """dx[p] = dy[p] * s[p] + add[p] (NumPy's dy * s + broadcast(add), in that order)."""
    for p in range(start, stop):
        sv, av, g, out = s[p], add[p], dy[p], dx[p]
        for q in range(g.size):
            out[q] = g[q] * sv + av


@njit(cache=True)
def gelu_forward(x, y):
    """y = 0.5 x (1 + erf(x / sqrt 2)) elementwise over flat arrays."""
    for i in range(x.size):
        v = x[i]
        y[i] = 0.5 * v * (1.0 + math.erf(v * _INV_SQRT2))


@njit(cache=True)
def gelu_backward(x, dy, dx):
    """dx = dy * (Phi(x) + x phi(x)) elementwise over flat arrays."""
    for i in range(x.size):
        v = x[i]
        cdf = 0.5 * (1.0 + math.erf(v * _INV_SQRT2))
        pdf = _INV_SQRT_2PI * math.exp(-0.5 * v * v)
        dx[i] = dy[i] * (cdf + v * pdf)


@njit(cache=True, nogil=True)
def hardswish_backward(x, dy, dx, start, stop):
    """dx = dy * slope(x): 0 for x <= -3, x/3 + 1/2 on (-3, 3), 1 for x >= 3 (flat arrays).

    Branch-free selects, and the constants typed like x, so that float32 stays float32 arithmetic
    and the result equals the NumPy expression bit for bit (16x240x28x28 float32: 1.0 ms against
    NumPy's 14 ms for the masked expression and 43 ms for nested np.where).
    """
    three = x.dtype.type(3.0)
    xs, g, out = x[start:stop], dy[start:stop], dx[start:stop]
    for i in range(xs.size):
        v = xs[i]
        s = v / three + x.dtype.type(0.5)
        s = s if v < three else x.dtype.type(1.0)
        s = s if v > -three else x.dtype.type(0.0)
        out[i] = g[i] * s


@njit(cache=True)
def erf(x, out):
    """out = erf(x) elementwise over flat arrays (the plain path's missing NumPy ufunc)."""
    for i in range(x.size):
        out[i] = math.erf(x[i])


def erf_array(x):
    """erf of an ndarray of float32/float64, same shape and dtype."""
    x = np.ascontiguousarray(x)
    out = np.empty_like(x)
    erf(x.reshape(-1), out.reshape(-1))
    return out
