"""Softmax cross-entropy with label smoothing, ``torch.nn.CrossEntropyLoss(label_smoothing=eps)``.

For logits z (N, K), integer labels t (N,) and smoothing eps (Szegedy et al., 2016, Sec. 7):

    log p_nk = z_nk - logsumexp_j z_nj                                                    (1)
    q_nk     = (1 - eps) [k = t_n] + eps / K        (the smoothed target; sums to 1)       (2)
    L        = -(1/N) sum_n sum_k q_nk log p_nk     (the mean over the batch)              (3)

This equals PyTorch's (1 - eps) * NLL + eps * mean_k(-log p_k) exactly.  logsumexp subtracts the
row maximum first, logsumexp z = m + log sum exp(z - m), so logits of 1e4 neither overflow nor
lose the answer.
"""
import numpy as np

from ..module import Module
from . import _checks


class NonFiniteLogits(FloatingPointError, ValueError):
    """The logits contain NaN or inf (usually a diverged training run)."""


def _validate(who, logits, labels, eps):
    _checks.float_array(who, "logits", logits)
    if logits.ndim != 2 or logits.shape[0] < 1 or logits.shape[1] < 1:
        raise ValueError(f"{who}: logits has shape {logits.shape}; expected (N, num_classes) with N, num_classes >= 1")
    bad = int(logits.size - np.count_nonzero(np.isfinite(logits)))
    if bad:
        raise NonFiniteLogits(f"{who}: logits has {bad} non-finite entr{'y' if bad == 1 else 'ies'}"
                              f" (NaN or inf) out of {logits.size}; the loss is undefined")
    if not isinstance(labels, np.ndarray):
        labels = np.asarray(labels)
    N, K = logits.shape
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{who}: labels has dtype {labels.dtype}; expected integer class indices")
    if labels.shape != (N,):
        raise ValueError(f"{who}: labels has shape {labels.shape}; expected ({N},), one class index per row of logits")
    if labels.size and (labels.min() < 0 or labels.max() >= K):
        raise ValueError(f"{who}: labels must lie in [0, {K}); got values from {labels.min()} to {labels.max()}")
    if not 0 <= eps <= 1:
        raise ValueError(f"{who}: label_smoothing must be in [0, 1], got {eps!r}")
    return labels


def cross_entropy_forward(logits, labels, label_smoothing=0.0):
    """Mean softmax cross-entropy, eqs. (1)-(3).

    Inputs:
    - logits: (N, K) float32 or float64, finite
    - labels: (N,) integers in [0, K)
    - label_smoothing: eps in [0, 1]

    Returns a tuple of:
    - loss: scalar of the logits' dtype
    - cache: (softmax probabilities (N, K), smoothed targets q (N, K))
    """
    return _forward("cross_entropy_forward", logits, labels, label_smoothing)


def _forward(who, logits, labels, label_smoothing):
    labels = _validate(who, logits, labels, label_smoothing)
    N, K = logits.shape
    shifted = logits - logits.max(axis=1, keepdims=True)          # <= 0: exp cannot overflow
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))  # (1)
    q = np.full((N, K), label_smoothing / K, dtype=logits.dtype)   # (2)
    q[np.arange(N), labels] += 1 - label_smoothing
    loss = -(q * log_p).sum() / N                                  # (3)
    return logits.dtype.type(loss), (np.exp(log_p), q)


def cross_entropy_backward(cache, dloss=1.0):
    """Gradient of the mean cross-entropy with respect to the logits.

    Inputs: cache from the forward; dloss: the upstream scalar dL_total/dL (1 for a final loss).
    Returns: dlogits: (N, K).

    Derivation, for one row: L_n = -sum_k q_k log p_k with log p_k = z_k - logsumexp z.  Since
    d logsumexp z / dz_j = p_j,  dL_n/dz_j = -q_j + p_j sum_k q_k = p_j - q_j  (sum_k q_k = 1).
    The batch mean divides by N:
        dlogits = (softmax(z) - q) / N
    """
    p, q = cache
    return (p - q) * p.dtype.type(dloss / p.shape[0])


class CrossEntropyLoss(Module):
    """``torch.nn.CrossEntropyLoss(label_smoothing=...)`` with the mean reduction.

    ``loss = crit.forward(logits, labels)`` (also ``crit(logits, labels)``), then
    ``dlogits = crit.backward()`` to start backpropagation.

    >>> crit = CrossEntropyLoss()
    >>> round(float(crit(np.zeros((2, 10), np.float32), np.array([3, 7]))), 6)   # log(10)
    2.302585
    >>> crit.backward().shape
    (2, 10)
    """

    def __init__(self, label_smoothing=0.0):
        super().__init__()
        if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float)) \
                or not 0 <= label_smoothing <= 1:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be a number in [0, 1], got {label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)
        self.cache = None

    def extra_repr(self):
        return f"label_smoothing={self.label_smoothing:g}" if self.label_smoothing else ""

    def __call__(self, logits, labels):
        return self.forward(logits, labels)

    def forward(self, logits, labels):
        """logits (N, K), labels (N,) -> the mean loss (a scalar of the logits' dtype)."""
        loss, self.cache = _forward("CrossEntropyLoss", logits, labels, self.label_smoothing)
        return loss

    def backward(self, dloss=1.0):
        """-> dlogits (N, K) = (softmax - smoothed target) / N, times ``dloss``."""
        return cross_entropy_backward(self._need_cache(self.cache), dloss)
