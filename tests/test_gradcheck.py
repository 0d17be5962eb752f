"""The gradient checker itself: it passes a correct backward and catches wrong ones."""
import numpy as np
import pytest

from npmobilenet.gradcheck import (GradcheckReport, assert_grad_close, away_from_kinks, gradcheck,
                                   numerical_grad, rel_error)
from npmobilenet.module import BackwardBeforeForward, Module


class Affine(Module):
    """y = tanh(x @ w + b): smooth, so every finite difference is valid.  ``bug`` plants errors."""

    def __init__(self, n_in, n_out, bug=None, seed=0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.register_parameter("weight", rng.standard_normal((n_in, n_out)))
        self.register_parameter("bias", rng.standard_normal(n_out))
        self.bug = bug
        self.cache = None

    def forward(self, x):
        y = np.tanh(x @ self.weight + self.bias)
        self.cache = (x, y)
        return y

    def backward(self, dy):
        x, y = self._need_cache(self.cache)
        dz = dy * (1 - y * y)
        dw = x.T @ dz
        if self.bug == "dw_scale":
            dw = dw * (1 + 1e-4)  # a 1e-4 relative error: small, but 100x the tolerance
        if self.bug == "dw_transpose_like":
            dw = dw[::-1]
        self._set_grad("weight", dw)
        self._set_grad("bias", dz.sum(0))
        dx = dz @ self.weight.T
        return -dx if self.bug == "dx_sign" else dx


def test_numerical_grad_of_known_function():
    x = np.array([0.3, -1.2, 2.0])
    g = numerical_grad(lambda: float(np.sum(np.sin(x) * x)), x)
    np.testing.assert_allclose(g, np.cos(x) * x + np.sin(x), rtol=1e-9)
    assert np.array_equal(x, [0.3, -1.2, 2.0])  # restored exactly


def test_numerical_grad_refuses_float32():
    with pytest.raises(TypeError, match="float64"):
        numerical_grad(lambda: 0.0, np.zeros(3, np.float32))


@pytest.mark.parametrize("mode", ["elementwise", "directional"])
def test_correct_backward_passes(mode):
    x = np.random.default_rng(1).standard_normal((3, 4))
    report = gradcheck(Affine(4, 5), x, mode=mode)
    assert report.passed, str(report)
    assert [r["name"] for r in report.rows][:3] == ["input", "weight", "bias"]
    assert "all passed" in str(report)


@pytest.mark.parametrize("bug", ["dw_scale", "dx_sign", "dw_transpose_like"])
@pytest.mark.parametrize("mode", ["elementwise", "directional"])
def test_planted_bugs_are_caught(bug, mode):
    x = np.random.default_rng(2).standard_normal((3, 4))
    report = gradcheck(Affine(4, 4, bug=bug), x, mode=mode)
    assert not report.passed
    with pytest.raises(AssertionError, match="FAILED"):
        report.assert_passed()


def test_parameters_restored_after_check():
    layer = Affine(4, 5)
    before = {k: v.copy() for k, v in layer.parameters().items()}
    x = np.random.default_rng(3).standard_normal((2, 4))
    x0 = x.copy()
    gradcheck(layer, x, mode="elementwise")
    gradcheck(layer, x, mode="directional")
    for k, v in layer.parameters().items():
        assert np.array_equal(v, before[k]), k
    assert np.array_equal(x, x0)


def test_float32_refused():
    layer = Affine(2, 2)
    with pytest.raises(TypeError, match="float64"):
        gradcheck(layer, np.zeros((1, 2), np.float32))


def test_assert_grad_close_rule():
    n = np.array([1.0, -2.0, 0.0])
    assert_grad_close(n * (1 + 4e-7), n)  # within 1e-6 (|a|+|n|)
    with pytest.raises(AssertionError, match="index"):
        assert_grad_close(n * (1 + 3e-6), n, name="w")
    # the absolute floor, 1e-9 max|n|, lets an exactly-zero gradient carry rounding noise
    assert_grad_close(np.array([1.0, 1e-10]), np.array([1.0, 0.0]))
    with pytest.raises(AssertionError):
        assert_grad_close(np.array([1.0, 1e-8]), np.array([1.0, 0.0]))
    with pytest.raises(AssertionError):
        assert_grad_close(np.array([np.nan]), np.array([0.0]))


def test_rel_error_matches_cs231n_definition():
    a, n = np.array([1.0, 2.0]), np.array([1.0, 2.2])
    assert rel_error(a, n) == pytest.approx(0.2 / 4.2)


def test_away_from_kinks():
    x = np.array([0.0, 5e-4, -5e-4, 6.0002, 2.9999, -3.0, 1.0])
    y = away_from_kinks(x)
    for k in (0.0, 6.0, -3.0, 3.0):
        assert np.all(np.abs(y - k) >= 1e-3 - 1e-15)
    assert y[-1] == 1.0 and y[1] > 0 and y[2] < 0


def test_report_table_lists_each_tensor():
    rep = GradcheckReport("directional")
    rep.add("conv.weight", (2, 3), 1.0, 1e-9, 0.01, True)
    text = str(rep)
    assert "conv.weight" in text and "yes" in text and rep.passed
    rep.add("bias", (2,), 1.0, 1e-3, 50.0, False)
    assert not rep.passed and "NO" in str(rep)


def test_backward_before_forward_is_a_clear_error():
    with pytest.raises(BackwardBeforeForward, match="forward"):
        Affine(2, 2).backward(np.zeros((1, 2)))


def test_parameterless_module_is_checked():
    class Square(Module):
        def forward(self, x):
            self.cache = x
            return x * x

        def backward(self, dy):
            return 2 * self._need_cache(self.cache) * dy

    x = np.random.default_rng(4).standard_normal((2, 3))
    assert gradcheck(Square(), x).passed


def test_exactly_zero_gradient_passes_only_when_matched():
    zero = np.zeros(4)
    assert_grad_close(zero, zero)  # no 0/0 warning: 0 == 0 passes
    with pytest.raises(AssertionError):
        assert_grad_close(np.array([0.0, 1e-300, 0.0, 0.0]), zero)
