"""Residual (name-transparent skip), LayerScale2d and SqueezeExcite: values, names, gradients."""
import numpy as np
import pytest

from layer_checks import PATHS, check_layer_grads, on, perturb_params
from npmobilenet.gradcheck import away_from_kinks
from npmobilenet.module import Sequential
from npmobilenet.nn import BatchNorm2d, Conv2d, Hardswish, LayerScale2d, ReLU6, Residual, SqueezeExcite
from npmobilenet.ops.residual import residual_backward, residual_forward


class _Body(Sequential):
    """A tiny inverted-residual-like body with timm's child names."""

    def __init__(self, c, rng):
        super().__init__({"conv_pw": Conv2d(c, 2 * c, 1, rng=rng), "bn1": BatchNorm2d(2 * c),
                          "act": ReLU6(), "conv_pwl": Conv2d(2 * c, c, 1, rng=rng), "bn2": BatchNorm2d(c)})


# ---- Residual -----------------------------------------------------------------------------------
def test_residual_adds_no_level_to_names():
    body = _Body(3, np.random.default_rng(0))
    keys = list(body.state_dict())
    wrapped = Residual(_Body(3, np.random.default_rng(0)))
    assert list(wrapped.state_dict()) == keys
    assert list(wrapped.parameters()) == list(body.parameters())
    model = Sequential(Sequential(Residual(_Body(3, np.random.default_rng(0)))))
    assert "0.0.conv_pw.weight" in model.parameters() and "0.0.bn2.running_var" in model.state_dict()
    assert wrapped.conv_pw is wrapped.fn.conv_pw        # attribute access reaches fn's children


def test_residual_load_state_dict_train_eval_and_to_reach_fn():
    rng = np.random.default_rng(1)
    a, b = Residual(_Body(2, rng)), Residual(_Body(2, rng))
    b.load_state_dict(a.state_dict())
    for k, v in a.state_dict().items():
        np.testing.assert_array_equal(b.state_dict()[k], v)
    a.eval()
    assert not a.fn.training and not a.fn.bn1.training
    a.train()
    assert a.fn.bn1.training
    a.to(np.float64)
    assert a.fn.conv_pw.weight.dtype == np.float64 and a.dtype == np.float64


@pytest.mark.parametrize("path", PATHS)
def test_residual_gradcheck(path):
    rng = np.random.default_rng(2)
    block = Residual(_Body(2, rng)).to(np.float64)
    perturb_params(block, rng, 0.2)
    x = rng.standard_normal((2, 2, 3, 3))
    block.forward(x)
    pre = block.fn.bn1.forward(block.fn.conv_pw.forward(x))   # the ReLU6 input: away from 0 and 6
    assert np.abs(pre).min() > 1e-3 and np.abs(pre - 6).min() > 1e-3
    with on(path):
        check_layer_grads(block, x, seed=3)


def test_residual_backward_is_dy_plus_fn_backward():
    rng = np.random.default_rng(4)
    fn = Hardswish()
    r = Residual(fn)
    x, dy = away_from_kinks(3 * rng.standard_normal((2, 3, 2, 2))), rng.standard_normal((2, 3, 2, 2))
    np.testing.assert_allclose(r(x), x + Hardswish()(x), rtol=1e-15)
    dx = r.backward(dy)
    np.testing.assert_allclose(dx, dy + fn.backward(dy), rtol=1e-15)


def test_residual_pure_functions():
    x, fx = np.ones((1, 2, 2, 2)), np.full((1, 2, 2, 2), 2.0)
    y, cache = residual_forward(x, fx)
    np.testing.assert_array_equal(y, 3.0)
    dx_skip, dfx = residual_backward(np.ones_like(y), cache)
    np.testing.assert_array_equal(dx_skip, 1.0)
    np.testing.assert_array_equal(dfx, 1.0)
    with pytest.raises(ValueError, match="skip needs them equal"):
        residual_forward(x, np.ones((1, 2, 1, 1)))


def test_residual_rejects_shape_changes_and_non_modules():
    r = Residual(Conv2d(2, 4, 1, rng=0))
    with pytest.raises(ValueError, match="a residual needs the same shape"):
        r(np.zeros((1, 2, 3, 3), np.float32))
    with pytest.raises(TypeError, match="fn must be a Module"):
        Residual(lambda x: x)


# ---- LayerScale2d --------------------------------------------------------------------------------
def test_layer_scale_init_names_and_values():
    ls = LayerScale2d(4)
    assert list(ls.parameters()) == ["gamma"] and ls.gamma.shape == (4,)
    np.testing.assert_array_equal(ls.gamma, np.float32(1e-5))
    x = np.ones((2, 4, 3, 3), np.float32)
    np.testing.assert_array_equal(ls(x), np.float32(1e-5) * x)
    assert LayerScale2d(3, init_value=0.5).gamma.tolist() == [0.5] * 3


@pytest.mark.parametrize("shape", [(2, 3, 4, 4), (1, 5, 2, 3)])
def test_layer_scale_gradcheck(shape):
    rng = np.random.default_rng(5)
    ls = perturb_params(LayerScale2d(shape[1], 0.3).to(np.float64), rng)
    check_layer_grads(ls, rng.standard_normal(shape), seed=6)


def test_layer_scale_bad_input():
    with pytest.raises(ValueError, match="LayerScale2d\\(3\\): input x has 4 channels"):
        LayerScale2d(3)(np.zeros((1, 4, 2, 2), np.float32))


# ---- SqueezeExcite --------------------------------------------------------------------------------
def test_se_parameter_names_and_shapes_are_timm():
    se = SqueezeExcite(72, 24, rng=0)
    assert {k: v.shape for k, v in se.parameters().items()} == {
        "conv_reduce.weight": (24, 72, 1, 1), "conv_reduce.bias": (24,),
        "conv_expand.weight": (72, 24, 1, 1), "conv_expand.bias": (72,)}
    assert se.num_parameters() == 2 * 72 * 24 + 24 + 72   # reference_specs 2.5: 2CS + S + C


def test_se_forward_is_the_formula():
    rng = np.random.default_rng(7)
    se = SqueezeExcite(6, 4, rng=1).to(np.float64)
    x = rng.standard_normal((2, 6, 3, 5))
    wr, br = se.conv_reduce.weight[:, :, 0, 0], se.conv_reduce.bias
    we, be = se.conv_expand.weight[:, :, 0, 0], se.conv_expand.bias
    p = x.mean(axis=(2, 3))                                   # (N, C)
    s = np.clip(np.maximum(p @ wr.T + br, 0) @ we.T + be + 3, 0, 6) / 6
    np.testing.assert_allclose(se(x), x * s[:, :, None, None], rtol=1e-13)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("shape,rd", [((2, 6, 3, 3), 3), ((3, 4, 2, 5), 8), ((2, 5, 1, 1), 2)])
def test_se_gradcheck(shape, rd, path):
    rng = np.random.default_rng(shape[1] * 10 + rd)
    se = SqueezeExcite(shape[1], rd, rng=rng).to(np.float64)
    perturb_params(se, rng, 0.5)
    x = rng.standard_normal(shape)
    # the ReLU and hard-sigmoid pre-activations must be away from their kinks (STYLE G1)
    z = se.conv_reduce(x.mean(axis=(2, 3), keepdims=True))
    e = se.conv_expand(np.maximum(z, 0))
    assert np.abs(z).min() > 1e-3 and np.abs(np.abs(e) - 3).min() > 1e-3
    with on(path):
        check_layer_grads(se, x, seed=8)


def test_se_matches_timm():
    torch = pytest.importorskip("torch")
    blocks = pytest.importorskip("timm.models._efficientnet_blocks")
    rng = np.random.default_rng(9)
    ours = SqueezeExcite(8, 4, rng=2).to(np.float64)
    ref = blocks.SqueezeExcite(8, rd_channels=4, gate_layer="hard_sigmoid",  # as timm's V3
                               force_act_layer=torch.nn.ReLU).double()
    assert set(ref.state_dict()) == set(ours.state_dict())
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    x, dy = rng.standard_normal((2, 8, 5, 5)), rng.standard_normal((2, 8, 5, 5))
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = ref(xt)
    yt.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(ours(x), yt.detach().numpy(), rtol=1e-12, atol=1e-14)
    # Gradients: ATen's float64 hardsigmoid_backward multiplies by float(1/6) (0.1666666716...),
    # 3e-8 relative from the float64 1/6 used here, hence rtol 1e-7 (the forward agrees to 1e-12).
    np.testing.assert_allclose(ours.backward(dy), xt.grad.numpy(), rtol=1e-7, atol=1e-14)
    for name, p in ref.named_parameters():
        np.testing.assert_allclose(ours.grads()[name], p.grad.numpy(), rtol=1e-7, atol=1e-14, err_msg=name)

    class ExactHardSigmoid(torch.nn.Module):  # the same function with a float64 1/6 in its gradient
        def forward(self, t):
            return torch.clamp(t + 3, 0, 6) / 6

    ref.gate = ExactHardSigmoid()
    xt = torch.from_numpy(x).requires_grad_(True)
    ref(xt).backward(torch.from_numpy(dy))
    np.testing.assert_allclose(ours.backward(dy), xt.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_se_bad_input():
    se = SqueezeExcite(4, 2, rng=0)
    with pytest.raises(ValueError, match="SqueezeExcite\\(4->2\\): input x has 3 channels"):
        se(np.zeros((1, 3, 2, 2), np.float32))
    with pytest.raises(TypeError, match="float64 but the parameters are float32"):
        se(np.zeros((1, 4, 2, 2)))
    with pytest.raises(ValueError, match="rd_channels must be a positive int"):
        SqueezeExcite(4, 0)
