"""npmobilenet.no_grad(): forward passes that keep nothing for backward.

Under no_grad an eval-mode conv -> BN -> activation runs as one fused layer on the fast path
(ops/fused.py), BN and activation applied in cache to each chunk of the conv's output.  The
arithmetic is the separate layers', in the same order, so the claim tested here is exact
equality with the ordinary eval forward, not closeness.
"""
import numpy as np
import pytest

import npmobilenet as nm
from npmobilenet.module import BackwardBeforeForward, Sequential, grad_enabled
from npmobilenet.ops import backend
from npmobilenet.ops.activations import GELU, Hardswish, Identity, ReLU, ReLU6
from npmobilenet.ops.batchnorm import BatchNorm2d
from npmobilenet.ops.conv import Conv2d

from model_checks import perturb


def _chain(conv, act, dtype=np.float32, seed=0):
    """conv -> BN (random running statistics and affine) -> act, in eval mode."""
    rng = np.random.default_rng(seed)
    layers = [conv, BatchNorm2d(conv.out_channels)] + ([act] if act is not None else [])
    seq = Sequential(*layers).to(dtype)
    bn = seq[1]
    bn.weight[...] = rng.uniform(0.5, 2, bn.num_features)
    bn.bias[...] = rng.standard_normal(bn.num_features)
    bn.running_mean[...] = rng.standard_normal(bn.num_features)
    bn.running_var[...] = rng.uniform(0.5, 2, bn.num_features)
    return seq.eval()


CONVS = {   # (conv, input shape): every path of ops/fused.inference
    "pointwise": (lambda: Conv2d(24, 40, 1, rng=1), (4, 24, 9, 7)),
    "pointwise-s2": (lambda: Conv2d(24, 40, 1, stride=2, rng=1), (3, 24, 9, 9)),
    "pointwise-1x1-map": (lambda: Conv2d(24, 40, 1, rng=1), (5, 24, 1, 1)),
    "pointwise-batch1": (lambda: Conv2d(64, 96, 1, rng=1), (1, 64, 40, 40)),
    "pointwise-parallel": (lambda: Conv2d(64, 96, 1, rng=1), (16, 64, 28, 28)),
    "im2col-3x3-s2": (lambda: Conv2d(8, 16, 3, stride=2, rng=1), (6, 8, 15, 13)),
    "stem": (lambda: Conv2d(3, 16, 3, stride=2, rng=1), (2, 3, 64, 64)),             # kernels/stem.py
    "stem-by-images": (lambda: Conv2d(3, 16, 3, stride=2, rng=1), (8, 3, 64, 64)),   # epilogue by parts
    "im2col-stem-odd": (lambda: Conv2d(3, 15, 3, stride=2, rng=1), (2, 3, 64, 64)),  # odd O: im2col
    "im2col-batch1": (lambda: Conv2d(8, 16, 5, rng=1), (1, 8, 20, 20)),
    "depthwise-planes": (lambda: Conv2d(32, 32, 5, stride=2, groups=32, rng=1), (4, 32, 28, 28)),
    "depthwise-3x3": (lambda: Conv2d(16, 16, 3, groups=16, rng=1), (3, 16, 12, 10)),
    "depthwise-small-map": (lambda: Conv2d(32, 32, 3, groups=32, rng=1), (4, 32, 7, 7)),
}
ACTS = {"relu": ReLU, "relu6": ReLU6, "hardswish": Hardswish, "identity": Identity, "none": None, "gelu": GELU}


@pytest.mark.parametrize("act", list(ACTS))
@pytest.mark.parametrize("conv", list(CONVS))
def test_fused_inference_equals_the_layers_bit_for_bit(conv, act):
    make, shape = CONVS[conv]
    seq = _chain(make(), None if ACTS[act] is None else ACTS[act]())
    x = (2 * np.random.default_rng(3).standard_normal(shape) + 0.3).astype(np.float32)
    expected = seq(x).copy()
    with nm.no_grad():
        got = seq(x)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float64_and_float32_both_take_the_fused_path(dtype, monkeypatch):
    from npmobilenet.ops import fused
    calls = []
    original = fused.inference
    monkeypatch.setattr(fused, "inference", lambda *a: calls.append(1) or original(*a))
    seq = _chain(Conv2d(6, 10, 3, rng=2), ReLU6(), dtype)
    x = np.random.default_rng(4).standard_normal((2, 6, 8, 8)).astype(dtype)
    expected = seq(x).copy()
    with nm.no_grad():
        got = seq(x)
    assert calls == [1] and got.dtype == dtype
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("name", ["mobilenetv1_025", "mobilenetv2_035", "mobilenetv3_small_050",
                                  "mobilenetv3_large_075", "mobilenetv4_conv_small", "mobilenetv4_hybrid_medium"])
def test_whole_models_give_the_same_logits_and_keep_no_cache(name):
    model = perturb(nm.create_model(name, width_mult=0.25 if "v4" in name else None, seed=0),
                    np.random.default_rng(1)).eval()
    x = np.random.default_rng(2).standard_normal((3, 3, 64, 64)).astype(np.float32)
    expected = model(x).copy()
    with nm.no_grad():
        assert not grad_enabled()
        got = model(x)
    assert grad_enabled()
    np.testing.assert_array_equal(got, expected)
    # every child of a Sequential (the model, its stages, blocks and conv-BN-act units) let go
    kept = [f"{n}.{c}" for n, m in model.named_modules() if isinstance(m, Sequential)
            for c, child in m.named_children() if getattr(child, "cache", None) is not None]
    assert kept == []


def test_backward_after_a_no_grad_forward_names_the_cause():
    model = nm.create_model("mobilenetv3_small_050", num_classes=5, seed=0).eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with nm.no_grad():
        y = model(x)
    with pytest.raises(BackwardBeforeForward, match="no_grad"):
        model.backward(np.ones_like(y))
    # an ordinary forward afterwards restores everything backward needs
    y = model(x)
    assert model.backward(np.ones_like(y)).shape == x.shape


def test_training_mode_under_no_grad_still_normalises_with_the_batch_and_updates_statistics():
    """As in PyTorch: no_grad changes what is kept, not what is computed."""
    a = nm.create_model("mobilenetv2_035", num_classes=4, seed=0).train()
    b = nm.create_model("mobilenetv2_035", num_classes=4, seed=0).train()
    x = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)
    ya = a(x)
    with nm.no_grad():
        yb = b(x)
    np.testing.assert_array_equal(ya, yb)
    for (k, u), v in zip(a.buffers().items(), b.buffers().values()):
        np.testing.assert_array_equal(u, v, err_msg=k)


def test_no_grad_restores_the_previous_state_on_error_and_nests():
    with pytest.raises(ZeroDivisionError):
        with nm.no_grad():
            1 / 0
    assert grad_enabled()
    with nm.no_grad():
        with nm.no_grad():
            pass
        assert not grad_enabled()
    assert grad_enabled()


def test_plain_path_under_no_grad_is_unfused_and_equal():
    seq = _chain(Conv2d(6, 10, 3, rng=2), Hardswish())
    x = np.random.default_rng(4).standard_normal((2, 6, 8, 8)).astype(np.float32)
    with backend.plain():
        expected = seq(x).copy()
        with nm.no_grad():
            got = seq(x)
    np.testing.assert_array_equal(got, expected)


def test_a_patched_layer_is_run_on_its_own(monkeypatch):
    """Anything that wraps a layer's forward (the profiler, a test) sees it called."""
    seq = _chain(Conv2d(6, 10, 3, rng=2), ReLU())
    seen = []
    original = seq[1].forward
    monkeypatch.setattr(seq[1], "forward", lambda x: seen.append(x.shape) or original(x))
    x = np.random.default_rng(4).standard_normal((2, 6, 8, 8)).astype(np.float32)
    with nm.no_grad():
        seq(x)
    assert seen == [(2, 10, 8, 8)]
