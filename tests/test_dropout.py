"""Inverted dropout: scaling, mask statistics, seeding, eval/p=0 identity, gradient, errors."""
import numpy as np
import pytest

from npmobilenet.gradcheck import assert_grad_close, numerical_grad
from npmobilenet.nn import Dropout
from npmobilenet.ops.dropout import dropout_backward, dropout_forward, dropout_mask


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_kept_units_are_scaled_and_the_rate_is_p(p):
    x = np.ones((200, 500), np.float32)
    y = Dropout(p, seed=0)(x)
    kept = y != 0
    np.testing.assert_allclose(y[kept], np.float32(1 / (1 - p)), rtol=1e-7)
    # 1e5 Bernoulli draws: the kept fraction is within 5 standard deviations of 1 - p
    sd = np.sqrt(p * (1 - p) / x.size)
    assert abs(kept.mean() - (1 - p)) < 5 * sd
    assert abs(y.mean() - 1.0) < 5 * sd / (1 - p)   # inverted dropout keeps E[y] = x


def test_backward_uses_the_forward_mask():
    rng = np.random.default_rng(1)
    d = Dropout(0.5, seed=3)
    x, dy = rng.standard_normal((6, 40)), rng.standard_normal((6, 40))
    y = d(x)
    dx = d.backward(dy)
    mask = np.divide(y, x)
    np.testing.assert_allclose(dx, dy * mask, rtol=1e-15)
    assert set(np.unique(mask).tolist()) == {0.0, 2.0}


def test_gradcheck_with_a_fixed_mask():
    rng = np.random.default_rng(2)
    x, dy = rng.standard_normal((3, 7)), rng.standard_normal((3, 7))
    mask = dropout_mask(x.shape, 0.3, np.random.default_rng(4), x.dtype)
    _, cache = dropout_forward(x, mask)
    dx = dropout_backward(dy, cache)
    assert_grad_close(dx, numerical_grad(lambda: float(np.sum(dropout_forward(x, mask)[0] * dy)), x), "x")


def test_seed_fixes_the_sequence_of_masks():
    x = np.ones((8, 16), np.float32)
    a, b, c = Dropout(0.5, seed=7), Dropout(0.5, seed=7), Dropout(0.5, seed=8)
    first_a, first_b, first_c = a(x), b(x), c(x)
    np.testing.assert_array_equal(first_a, first_b)
    assert not np.array_equal(first_a, first_c)
    second_a = a(x)
    assert not np.array_equal(first_a, second_a)          # a new mask each training step
    np.testing.assert_array_equal(second_a, b(x))


def test_same_seed_same_mask_in_either_dtype():
    m32 = Dropout(0.4, seed=5)(np.ones((5, 9), np.float32)) != 0
    m64 = Dropout(0.4, seed=5)(np.ones((5, 9), np.float64)) != 0
    np.testing.assert_array_equal(m32, m64)


@pytest.mark.parametrize("make", [lambda: Dropout(0.5, seed=0).eval(), lambda: Dropout(0.0, seed=0)])
def test_identity_in_eval_mode_and_for_p_zero(make):
    d = make()
    x = np.random.default_rng(6).standard_normal((4, 5)).astype(np.float32)
    np.testing.assert_array_equal(d(x), x)
    dy = np.ones_like(x)
    np.testing.assert_array_equal(d.backward(dy), dy)


def test_float32_stays_float32():
    d = Dropout(0.5, seed=0)
    y = d(np.ones((3, 4), np.float32))
    assert y.dtype == np.float32 and d.backward(np.ones((3, 4), np.float32)).dtype == np.float32


@pytest.mark.parametrize("p", [1.0, -0.1, 1.5, True, "0.5", None])
def test_p_must_be_a_probability_below_one(p):
    with pytest.raises(ValueError, match="Dropout: p must be a probability in \\[0, 1\\)"):
        Dropout(p)


def test_bad_input_and_dy():
    d = Dropout(0.5, seed=0)
    with pytest.raises(TypeError, match="Dropout\\(p=0.5\\): x has dtype int64"):
        d(np.ones((2, 2), np.int64))
    d(np.ones((2, 2), np.float32))
    with pytest.raises(ValueError, match="dy must be a float32 array of shape \\(2, 2\\)"):
        d.backward(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match="mask must be None or a float64 array of shape \\(2, 2\\)"):
        dropout_forward(np.ones((2, 2)), np.ones((2, 2), np.float32))
