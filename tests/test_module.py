"""The Module base class: names, live arrays, state dicts, modes and dtypes."""
import numpy as np
import pytest

from npmobilenet.module import Module, Sequential, check_input


class Scale(Module):
    def __init__(self, n):
        super().__init__()
        self.register_parameter("weight", np.arange(1.0, n + 1, dtype=np.float32))
        self.register_buffer("running_mean", np.zeros(n, np.float32))
        self.cache = None

    def forward(self, x):
        self.cache = x
        return x * self.weight

    def backward(self, dy):
        x = self._need_cache(self.cache)
        self._set_grad("weight", (dy * x).sum(0))
        return dy * self.weight


def net():
    return Sequential(Scale(3), Sequential(Scale(3), Scale(3)))


def test_names_are_nested_like_torch():
    m = net()
    assert list(m.parameters()) == ["0.weight", "1.0.weight", "1.1.weight"]
    assert list(m.state_dict()) == ["0.weight", "0.running_mean", "1.0.weight", "1.0.running_mean",
                                    "1.1.weight", "1.1.running_mean"]
    assert m.num_parameters() == 9


def test_parameters_and_grads_are_live():
    m = net()
    p, g = m.parameters(), m.grads()
    x = np.ones((2, 3), np.float32)
    m.backward(np.ones_like(m.forward(x)))
    assert g["0.weight"] is m.grads()["0.weight"]  # the same array, updated in place
    assert np.any(g["0.weight"] != 0)
    p["0.weight"][...] = 7
    assert np.all(m[0].weight == 7)


def test_grads_overwritten_not_accumulated():
    m = net()
    x = np.ones((2, 3), np.float32)
    dy = np.ones((2, 3), np.float32)
    m.forward(x)
    m.backward(dy)
    first = {k: v.copy() for k, v in m.grads().items()}
    m.backward(dy)
    for k, v in m.grads().items():
        assert np.array_equal(v, first[k])


def test_state_dict_is_a_copy_and_round_trips():
    a, b = net(), net()
    sd = a.state_dict()
    sd["0.weight"][...] = 42
    assert not np.any(a[0].weight == 42)
    b.load_state_dict(sd)
    assert np.all(b[0].weight == 42)


def test_load_state_dict_lists_every_problem_and_loads_nothing():
    m = net()
    sd = m.state_dict()
    sd["0.weight"] = np.zeros(4, np.float32)  # wrong shape
    del sd["1.1.weight"]                        # missing
    sd["extra.weight"] = np.zeros(1)             # unexpected
    sd["1.0.num_batches_tracked"] = np.array(3)  # accepted and ignored
    before = m.state_dict()
    with pytest.raises(ValueError) as e:
        m.load_state_dict(sd)
    msg = str(e.value)
    assert "0.weight" in msg and "(4,)" in msg and "1.1.weight" in msg and "extra.weight" in msg
    assert "num_batches_tracked" not in msg
    for k, v in m.state_dict().items():
        assert np.array_equal(v, before[k]), k


def test_load_state_dict_refuses_integer_arrays():
    m = net()
    sd = m.state_dict()
    sd["0.weight"] = np.ones(3, np.int64)
    with pytest.raises(ValueError, match="dtype int64"):
        m.load_state_dict(sd)


def test_train_eval_and_to():
    m = net()
    assert all(x.training for x in m.modules())
    m.eval()
    assert not any(x.training for x in m.modules())
    m.to(np.float64)
    assert m.dtype == np.float64
    assert all(v.dtype == np.float64 for v in m.state_dict().values())
    assert all(v.dtype == np.float64 for v in m.grads().values())
    with pytest.raises(TypeError, match="float32 or float64"):
        m.to(np.int32)


def test_sequential_rejects_non_modules():
    with pytest.raises(TypeError, match="expected a Module"):
        Sequential(Scale(2), "relu")


def test_check_input_messages():
    layer = Scale(3)
    with pytest.raises(TypeError, match="dtype int64"):
        check_input(layer, np.zeros((1, 3, 2, 2), np.int64))
    with pytest.raises(ValueError, match=r"3 dimensions.*\(N, C, H, W\)"):
        check_input(layer, np.zeros((1, 3, 2), np.float32))
    with pytest.raises(ValueError, match="5 channels.*expected 3"):
        check_input(layer, np.zeros((1, 5, 2, 2), np.float32), channels=3)
    with pytest.raises(TypeError, match="parameters are float32"):
        check_input(layer, np.zeros((1, 3, 2, 2), np.float64), dtype=np.float32)
    with pytest.raises(ValueError, match=r"Scale.*shape \(0, 3, 2, 2\), no values"):
        check_input(layer, np.zeros((0, 3, 2, 2), np.float32))
    with pytest.raises(ValueError, match=r"shape \(2, 3, 0, 2\), no values"):
        check_input(layer, np.zeros((2, 3, 0, 2), np.float32))


@pytest.mark.parametrize("name,features", [("mobilenetv3_small_100", False), ("mobilenetv4_conv_small", False),
                                           ("mobilenetv2_050", True)])
def test_model_backward_without_input_grad(name, features):
    """model.backward(dy, input_grad=False), as training calls it, returns None and gives every
    parameter the gradient of the full backward (the stem conv skips dx only)."""
    import npmobilenet
    model = npmobilenet.create_model(name, num_classes=5, features_only=features)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 64, 64)).astype(np.float32)
    out = model.forward(x)
    dy = [rng.standard_normal(f.shape).astype(np.float32) for f in out] if features else \
        rng.standard_normal(out.shape).astype(np.float32)
    assert model.backward(dy).shape == x.shape
    full = {k: v.copy() for k, v in model.grads().items()}
    model.forward(x)
    assert model.backward(dy, input_grad=False) is None
    for k, v in model.grads().items():
        assert np.array_equal(v, full[k]), k


def test_sequential_without_input_grad_when_the_first_layer_cannot_skip_it():
    """A first child whose backward has no ``input_grad`` (here BN) runs its full backward."""
    from npmobilenet.nn import BatchNorm2d, Conv2d, Sequential
    seq = Sequential(BatchNorm2d(3), Conv2d(3, 4, 3))
    x = np.random.default_rng(1).standard_normal((2, 3, 6, 6)).astype(np.float32)
    dy = np.ones((2, 4, 6, 6), np.float32)
    seq.forward(x)
    seq.backward(dy)
    full = {k: v.copy() for k, v in seq.grads().items()}
    seq.forward(x)
    assert seq.backward(dy, input_grad=False) is None
    assert all(np.array_equal(v, full[k]) for k, v in seq.grads().items())
