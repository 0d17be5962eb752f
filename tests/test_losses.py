"""CrossEntropyLoss: torch's label smoothing, stability at large logits, gradient, errors."""
import math

import numpy as np
import pytest

from npmobilenet.gradcheck import assert_grad_close, numerical_grad
from npmobilenet.module import BackwardBeforeForward
from npmobilenet.nn import CrossEntropyLoss
from npmobilenet.ops.losses import NonFiniteLogits, cross_entropy_backward, cross_entropy_forward


def _direct(logits, labels, eps):
    """Row by row with math.log/exp: (1 - eps) * NLL + eps * mean_k(-log p_k), PyTorch's definition."""
    total = 0.0
    for z, t in zip(logits.tolist(), labels.tolist()):
        m = max(z)
        lse = m + math.log(sum(math.exp(v - m) for v in z))
        logp = [v - lse for v in z]
        total += (1 - eps) * -logp[t] + eps * -sum(logp) / len(z)
    return total / len(logits)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("n,k", [(4, 3), (1, 10), (7, 2)])
def test_loss_matches_direct_formula(n, k, eps):
    rng = np.random.default_rng(n * k)
    logits, labels = 3 * rng.standard_normal((n, k)), rng.integers(0, k, n)
    loss = CrossEntropyLoss(label_smoothing=eps)(logits, labels)
    assert loss == pytest.approx(_direct(logits, labels, eps), rel=1e-13)


def test_uniform_logits_give_log_k():
    assert float(CrossEntropyLoss()(np.zeros((3, 1000)), np.array([0, 5, 999]))) == pytest.approx(math.log(1000))


@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("n,k", [(4, 3), (3, 7)])
def test_gradcheck_logits(n, k, eps):
    rng = np.random.default_rng(n + k)
    logits, labels = 2 * rng.standard_normal((n, k)), rng.integers(0, k, n)
    crit = CrossEntropyLoss(eps)
    crit(logits, labels)
    dlogits = crit.backward()
    assert_grad_close(dlogits, numerical_grad(lambda: float(crit.forward(logits, labels)), logits), "logits")
    np.testing.assert_allclose(dlogits.sum(axis=1), 0, atol=1e-15)   # softmax and target both sum to 1


def test_backward_is_softmax_minus_smoothed_target_over_n():
    logits = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    crit = CrossEntropyLoss(label_smoothing=0.3)
    crit(logits, np.array([2, 0]))
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    q = np.array([[0.1, 0.1, 0.8], [0.8, 0.1, 0.1]])                 # (1 - 0.3) onehot + 0.3 / 3
    np.testing.assert_allclose(crit.backward(), (p - q) / 2, rtol=1e-14)
    np.testing.assert_allclose(crit.backward(dloss=3.0), 3 * (p - q) / 2, rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_logits_are_stable(dtype):
    logits = np.array([[1e4, 0.0, -1e4], [1e4, 1e4 - 2.0, 0.0]], dtype)
    crit = CrossEntropyLoss()
    loss_right = crit(logits, np.array([0, 0]))
    assert loss_right.dtype == dtype
    want = (0.0 + math.log1p(math.exp(-2.0))) / 2                   # row 1: 0; row 2: log(1 + e^-2)
    assert float(loss_right) == pytest.approx(want, rel=1e-6)
    loss_wrong = crit(logits, np.array([2, 2]))
    assert float(loss_wrong) == pytest.approx((2e4 + 1e4 + math.log1p(math.exp(-2.0))) / 2, rel=1e-6)
    d = crit.backward()
    assert np.all(np.isfinite(d)) and d.dtype == dtype


def test_float32_stays_float32():
    crit = CrossEntropyLoss(0.1)
    loss = crit(np.zeros((2, 4), np.float32), np.array([1, 2]))
    assert loss.dtype == np.float32 and crit.backward().dtype == np.float32


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_logits_raise_with_a_count(bad):
    logits = np.zeros((3, 4))
    logits[0, 1] = logits[2, 3] = bad
    with pytest.raises(NonFiniteLogits, match="CrossEntropyLoss: logits has 2 non-finite entries") as e:
        CrossEntropyLoss()(logits, np.array([0, 1, 2]))
    assert isinstance(e.value, FloatingPointError) and isinstance(e.value, ValueError)


@pytest.mark.parametrize("labels,words", [
    (np.array([0, 3]), "labels must lie in \\[0, 3\\); got values from 0 to 3"),
    (np.array([-1, 0]), "labels must lie in \\[0, 3\\)"),
    (np.array([0, 1, 2]), "labels has shape \\(3,\\); expected \\(2,\\)"),
    (np.array([[0], [1]]), "labels has shape \\(2, 1\\)"),
    (np.array([0.0, 1.0]), "labels has dtype float64; expected integer"),
    (np.array([True, False]), "labels has dtype bool"),
])
def test_bad_labels_raise_naming_labels(labels, words):
    with pytest.raises(ValueError, match="CrossEntropyLoss: " + words):
        CrossEntropyLoss()(np.zeros((2, 3)), labels)


def test_bad_logits_and_arguments():
    with pytest.raises(ValueError, match="logits has shape \\(2, 3, 1\\)"):
        CrossEntropyLoss()(np.zeros((2, 3, 1)), np.array([0, 1]))
    with pytest.raises(TypeError, match="logits has dtype int64"):
        CrossEntropyLoss()(np.zeros((2, 3), np.int64), np.array([0, 1]))
    with pytest.raises(ValueError, match="label_smoothing must be a number in \\[0, 1\\]"):
        CrossEntropyLoss(label_smoothing=1.5)
    with pytest.raises(BackwardBeforeForward, match="CrossEntropyLoss"):
        CrossEntropyLoss().backward()
    assert cross_entropy_forward(np.zeros((1, 2)), [1])[0] == pytest.approx(math.log(2))  # lists are fine


def test_backward_twice_is_identical_and_leaves_the_cache():
    rng = np.random.default_rng(3)
    crit = CrossEntropyLoss(0.1)
    crit(rng.standard_normal((4, 5)), rng.integers(0, 5, 4))
    p_before = crit.cache[0].copy()
    a, b = crit.backward(), crit.backward()
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(crit.cache[0], p_before)
    assert cross_entropy_backward(crit.cache) is not a


@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_matches_torch(eps):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    logits, labels = 5 * rng.standard_normal((6, 9)), rng.integers(0, 9, 6)
    lt = torch.from_numpy(logits).requires_grad_(True)
    ref = torch.nn.CrossEntropyLoss(label_smoothing=eps)(lt, torch.from_numpy(labels))
    ref.backward()
    crit = CrossEntropyLoss(eps)
    assert float(crit(logits, labels)) == pytest.approx(ref.item(), rel=1e-13)
    np.testing.assert_allclose(crit.backward(), lt.grad.numpy(), rtol=1e-12, atol=1e-16)
