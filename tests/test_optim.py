"""Optimizers, weight-decay groups, learning-rate schedules and the weight EMA.

Every update rule is checked against its published form, written out again here independently of
the package (float64, a few steps, a changing learning rate), then against PyTorch/timm when they
are installed (a development check; skipped where torch is absent).
"""
import math

import numpy as np
import pytest

from npmobilenet.module import Module
from npmobilenet.train import (SGD, AdamW, Constant, ExponentialDecay, ModelEma, RMSpropTF,
                               WarmupCosine, create_optimizer, create_schedule, param_groups)

LRS = [0.1, 0.05, 0.08, 0.02, 0.03, 0.01]       # a changing learning rate exercises lr-in-momentum


class Toy(Module):
    """Parameters of every kind the decay rule distinguishes, plus BN buffers."""

    def __init__(self, dtype=np.float64, seed=0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.conv = Module()
        self.conv.register_parameter("weight", rng.normal(size=(4, 3, 3, 3)).astype(dtype))
        self.bn = Module()
        self.bn.register_parameter("weight", (1 + 0.1 * rng.normal(size=4)).astype(dtype))
        self.bn.register_parameter("bias", (0.1 * rng.normal(size=4)).astype(dtype))
        self.bn.register_buffer("running_mean", rng.normal(size=4).astype(dtype))
        self.bn.register_buffer("running_var", (1 + rng.random(4)).astype(dtype))
        self.classifier = Module()
        self.classifier.register_parameter("weight", rng.normal(size=(5, 4)).astype(dtype))
        self.classifier.register_parameter("bias", rng.normal(size=5).astype(dtype))


def set_grads(model, rng):
    for g in model.grads().values():
        g[...] = rng.normal(size=g.shape)


def run(opt_factory, ref_update, steps=len(LRS), wd=0.0):
    """Run the package optimizer and the reference side by side; compare after every step."""
    model = Toy()
    ref = {k: v.copy() for k, v in model.parameters().items()}
    opt = opt_factory(model)
    state = {}
    rng = np.random.default_rng(1)
    for t, lr in enumerate(LRS[:steps], start=1):
        set_grads(model, rng)
        for k, g in model.grads().items():
            decay = wd if (ref[k].ndim > 1 and not k.endswith(".bias")) else 0.0
            ref[k] = ref_update(ref[k], g.copy(), state.setdefault(k, {}), t, lr, decay)
        opt.step(lr=lr)
        for k, p in model.parameters().items():
            np.testing.assert_allclose(p, ref[k], rtol=1e-12, atol=1e-15, err_msg=f"step {t}, {k}")


# ---- update rules against their published forms -----------------------------------------------

@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("wd", [0.0, 0.01])
def test_sgd_matches_pytorch_rule(nesterov, wd):
    # torch.optim.SGD docs: g += wd*p; b_1 = g, b_t = mu*b_{t-1} + (1-tau)*g; g = g + mu*b (Nesterov)
    # or g = b; p -= lr*g
    mu, tau = 0.9, 0.0

    def ref(p, g, s, t, lr, decay):
        g = g + decay * p
        s["b"] = g.copy() if t == 1 else mu * s["b"] + (1 - tau) * g
        return p - lr * (g + mu * s["b"] if nesterov else s["b"])

    run(lambda m: SGD(m, lr=0.1, momentum=mu, nesterov=nesterov, weight_decay=wd), ref, wd=wd)


def test_sgd_dampening_and_plain():
    def ref(p, g, s, t, lr, decay):
        s["b"] = g.copy() if t == 1 else 0.8 * s["b"] + 0.7 * g     # the first step is not dampened
        return p - lr * s["b"]

    run(lambda m: SGD(m, lr=0.1, momentum=0.8, dampening=0.3), ref)
    run(lambda m: SGD(m, lr=0.1), lambda p, g, s, t, lr, d: p - lr * g)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kw", [dict(momentum=0.9, nesterov=True, weight_decay=5e-4), dict(momentum=0.9),
                                dict(momentum=0.8, dampening=0.3, weight_decay=0.01), dict()])
def test_sgd_fast_path_equals_numpy_bit_for_bit(kw, dtype):
    """The one-pass kernel (kernels/sgd.py) against the NumPy update it replaces, over six steps."""
    from npmobilenet.ops import backend
    models = [Toy(dtype), Toy(dtype)]
    opts = [SGD(m, lr=0.1, **kw) for m in models]
    rng = np.random.default_rng(2)
    for lr in LRS:
        grads = {k: rng.normal(size=g.shape) for k, g in models[0].grads().items()}
        for m in models:
            for k, g in m.grads().items():
                g[...] = grads[k]
        opts[0].step(lr=lr)
        with backend.plain():
            opts[1].step(lr=lr)
        for k, p in models[0].parameters().items():
            assert p.dtype == dtype and np.array_equal(p, models[1].parameters()[k]), k
        for k, v in opts[0].state["momentum_buffer"].items():
            assert np.array_equal(v, opts[1].state["momentum_buffer"][k]), k


@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("wd", [0.0, 0.01])
def test_rmsprop_tf_matches_tensorflow_rule(momentum, wd):
    # TF1 ApplyRMSProp (tensorflow/python/training/rmsprop.py docstring and kernel): the rms slot is
    # initialised to ones; ms += (g^2 - ms)*(1 - rho); mom = mu*mom + lr*g/sqrt(ms + eps); p -= mom.
    # Weight decay is TF's L2 regulariser: g += wd*p.
    rho, eps = 0.9, 1e-3

    def ref(p, g, s, t, lr, decay):
        g = g + decay * p
        s["ms"] = s.get("ms", np.ones_like(p)) + (g * g - s.get("ms", np.ones_like(p))) * (1 - rho)
        s["mom"] = momentum * s.get("mom", 0.0) + lr * g / np.sqrt(s["ms"] + eps)
        return p - s["mom"]

    run(lambda m: RMSpropTF(m, lr=0.1, alpha=rho, eps=eps, momentum=momentum, weight_decay=wd), ref, wd=wd)


def test_rmsprop_tf_variants():
    rho, eps, mu = 0.9, 1e-3, 0.9

    def ref_torch_momentum(p, g, s, t, lr, decay):        # lr_in_momentum=False: p -= lr*mom
        s["ms"] = rho * s.get("ms", np.ones_like(p)) + (1 - rho) * g * g
        s["mom"] = mu * s.get("mom", 0.0) + g / np.sqrt(s["ms"] + eps)
        return p - lr * s["mom"]

    run(lambda m: RMSpropTF(m, lr=0.1, alpha=rho, eps=eps, momentum=mu, lr_in_momentum=False),
        ref_torch_momentum)

    def ref_decoupled(p, g, s, t, lr, decay):
        p = p * (1 - lr * decay)
        s["ms"] = rho * s.get("ms", np.ones_like(p)) + (1 - rho) * g * g
        s["mom"] = mu * s.get("mom", 0.0) + lr * g / np.sqrt(s["ms"] + eps)
        return p - s["mom"]

    run(lambda m: RMSpropTF(m, lr=0.1, alpha=rho, eps=eps, momentum=mu, weight_decay=0.05,
                            decoupled_decay=True), ref_decoupled, wd=0.05)


@pytest.mark.parametrize("wd", [0.0, 0.05])
def test_adamw_matches_published_rule(wd):
    # Loshchilov & Hutter, Algorithm 2 with eta_t = lr (as torch.optim.AdamW): bias-corrected Adam
    # step plus a decoupled decay lr*wd*p taken from the pre-step weights.
    b1, b2, eps = 0.9, 0.999, 1e-8

    def ref(p, g, s, t, lr, decay):
        s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
        s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g * g
        m_hat, v_hat = s["m"] / (1 - b1 ** t), s["v"] / (1 - b2 ** t)
        return p - lr * decay * p - lr * m_hat / (np.sqrt(v_hat) + eps)

    run(lambda m: AdamW(m, lr=0.1, betas=(b1, b2), eps=eps, weight_decay=wd), ref, wd=wd)


# ---- weight-decay groups ------------------------------------------------------------------------

def test_param_groups_follow_timm_rule():
    groups = param_groups(Toy().parameters(), 4e-5)
    assert groups == [{"names": ["bn.weight", "bn.bias", "classifier.bias"], "weight_decay": 0.0},
                      {"names": ["conv.weight", "classifier.weight"], "weight_decay": 4e-5}]
    groups = param_groups(Toy().parameters(), 4e-5, no_weight_decay=("classifier.*",))
    assert groups[1]["names"] == ["conv.weight"]
    assert param_groups(Toy().parameters(), 1e-4, exclude_1d=False)[-1]["names"] == list(Toy().parameters())


@pytest.mark.parametrize("make", [
    lambda m: SGD(m, lr=0.1, momentum=0.9, weight_decay=0.01),
    lambda m: RMSpropTF(m, lr=0.1, momentum=0.9, weight_decay=0.01, decoupled_decay=True),
    lambda m: AdamW(m, lr=0.1, weight_decay=0.01)])
def test_weight_decay_skips_bn_and_bias(make):
    # with zero gradients the only change is the decay: p *= 1 - lr*wd on decayed tensors
    model = Toy()
    before = model.state_dict()
    make(model).step()
    for k, p in model.parameters().items():
        if k in ("conv.weight", "classifier.weight"):
            np.testing.assert_allclose(p, before[k] * (1 - 0.1 * 0.01), rtol=1e-14)
        else:
            np.testing.assert_array_equal(p, before[k], err_msg=k)


def test_grads_are_not_modified_and_params_change_in_place():
    model = Toy()
    set_grads(model, np.random.default_rng(0))
    grads = {k: g.copy() for k, g in model.grads().items()}
    live = model.parameters()
    for opt in (SGD(model, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1),
                RMSpropTF(model, lr=0.1, momentum=0.9, weight_decay=0.1), AdamW(model, lr=0.1)):
        before = {k: v.copy() for k, v in live.items()}
        opt.step()
        for k in grads:
            np.testing.assert_array_equal(model.grads()[k], grads[k])
            assert model.parameters()[k] is live[k]
            assert not np.array_equal(live[k], before[k])


def test_dict_interface_and_errors():
    p = {"w": np.ones((2, 2))}
    g = {"w": np.full((2, 2), 0.5)}
    SGD(p, g, lr=0.1).step()
    np.testing.assert_allclose(p["w"], 0.95)
    with pytest.raises(ValueError, match="different names"):
        SGD(p, {"v": g["w"]}, lr=0.1)
    with pytest.raises(ValueError, match="shape"):
        SGD(p, {"w": np.ones(3)}, lr=0.1)
    with pytest.raises(ValueError, match="nesterov"):
        SGD(p, g, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="unknown optimizer"):
        create_optimizer("adagrad", Toy(), lr=0.1)
    model = Toy(np.float32)
    opt = create_optimizer("sgd", model, lr=0.1)
    model.to(np.float64)
    with pytest.raises(RuntimeError, match="replaced"):
        opt.step()


# ---- checkpointing ------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda m: SGD(m, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
    lambda m: RMSpropTF(m, lr=0.05, alpha=0.9, eps=1e-3, momentum=0.9, weight_decay=1e-3),
    lambda m: AdamW(m, lr=0.01, weight_decay=0.05)], ids=["sgd", "rmsproptf", "adamw"])
def test_state_dict_round_trip_continues_bit_identically(make, tmp_path):
    def train(model, opt, steps, first):
        for t in range(first, first + steps):
            set_grads(model, np.random.default_rng(100 + t))
            opt.step(lr=0.01 * (1 + t % 3))

    model = Toy(np.float32)
    opt = make(model)
    train(model, opt, 3, 0)
    np.savez(tmp_path / "opt.npz", **opt.state_dict())         # flat dict of arrays: no pickling
    np.savez(tmp_path / "model.npz", **model.state_dict())
    train(model, opt, 4, 3)

    resumed = Toy(np.float32, seed=7)
    resumed.load_state_dict(dict(np.load(tmp_path / "model.npz")))
    opt2 = make(resumed)
    opt2.load_state_dict(dict(np.load(tmp_path / "opt.npz")))
    assert opt2.step_count == 3
    train(resumed, opt2, 4, 3)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(resumed.state_dict()[k], v, err_msg=k)
    for k, v in opt.state_dict().items():
        np.testing.assert_array_equal(opt2.state_dict()[k], v, err_msg=k)


def test_load_state_dict_rejects_mismatches_and_changes_nothing():
    model = Toy()
    sgd = SGD(model, lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="optimizer 'AdamW'"):
        sgd.load_state_dict(AdamW(Toy(), lr=0.1).state_dict())
    sd = sgd.state_dict()
    sd["lr"] = sd.pop("hp.lr")
    sd["step"] = np.array(5)
    with pytest.raises(ValueError, match="missing key 'hp.lr'") as e:
        sgd.load_state_dict(sd)
    assert "unexpected key 'lr'" in str(e.value)
    assert sgd.step_count == 0 and sgd.lr == 0.1


# ---- schedules ----------------------------------------------------------------------------------

def test_warmup_cosine_key_values():
    s = WarmupCosine(0.1, total_steps=110, warmup_steps=10, min_lr=0.001)
    assert s(0) == 0.0
    assert s(5) == pytest.approx(0.05, rel=1e-15)
    assert s(10) == pytest.approx(0.1, rel=1e-15)                     # end of warm-up
    assert s(60) == pytest.approx((0.1 + 0.001) / 2, rel=1e-15)       # midpoint of the decay
    assert s(35) == pytest.approx(0.001 + 0.099 * (1 + math.cos(math.pi / 4)) / 2, rel=1e-15)
    assert s(110) == pytest.approx(0.001, rel=1e-15) and s(500) == pytest.approx(0.001, rel=1e-15)
    lrs = [s(t) for t in range(10, 111)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    assert WarmupCosine(0.2, total_steps=100)(0) == 0.2                # no warm-up: starts at base


def test_exponential_decay_key_values():
    # MobileNetV2 paper section 6.1: initial lr 0.045, decay 0.98 per epoch (here 10 steps/epoch)
    s = ExponentialDecay(0.045, 0.98, decay_steps=10)
    assert s(0) == 0.045 and s(9) == 0.045
    assert s(10) == pytest.approx(0.045 * 0.98, rel=1e-15)
    assert s(25) == pytest.approx(0.045 * 0.98 ** 2, rel=1e-15)
    smooth = ExponentialDecay(0.045, 0.98, decay_steps=10, staircase=False)
    assert smooth(5) == pytest.approx(0.045 * 0.98 ** 0.5, rel=1e-15)
    warm = ExponentialDecay(0.1, 0.5, decay_steps=4, warmup_steps=4, min_lr=0.02)
    assert [warm(t) for t in (0, 2, 4, 7, 8, 12, 100)] == pytest.approx([0, 0.05, 0.1, 0.1, 0.05, 0.025, 0.02])


def test_constant_and_errors():
    assert [Constant(0.3, warmup_steps=3)(t) for t in range(5)] == pytest.approx([0, 0.1, 0.2, 0.3, 0.3])
    assert create_schedule("cosine", 0.1, total_steps=10)(10) == 0.0
    with pytest.raises(ValueError, match="total_steps"):
        WarmupCosine(0.1, total_steps=5, warmup_steps=5)
    with pytest.raises(ValueError, match="decay_rate"):
        ExponentialDecay(0.1, 1.5, decay_steps=1)
    with pytest.raises(ValueError, match="unknown schedule"):
        create_schedule("poly", 0.1)
    with pytest.raises(ValueError, match="step"):
        Constant(0.1)(-1)


# ---- EMA ----------------------------------------------------------------------------------------

def test_ema_math_on_parameters_and_buffers():
    model = Toy()
    w0 = model.state_dict()
    ema = ModelEma(model, decay=0.9)
    states = []
    for step in range(3):
        for v in {**model.parameters(), **model.buffers()}.values():
            v += 1.0 + step                       # weights and BN statistics both move
        states.append(model.state_dict())
        ema.update(model)
    for k in w0:   # e_3 = 0.9^3 w0 + 0.1 (0.9^2 w1 + 0.9 w2 + w3), timm ModelEmaV2's recurrence
        want = 0.9 ** 3 * w0[k] + 0.1 * (0.81 * states[0][k] + 0.9 * states[1][k] + states[2][k])
        np.testing.assert_allclose(ema.shadow[k], want, rtol=1e-13, err_msg=k)


def test_ema_warmup_follows_tensorflow_num_updates():
    ema = ModelEma(Toy(), decay=0.9998, warmup=True)
    decays = []
    for _ in range(3):
        decays.append(ema.current_decay())
        ema.update(Toy(seed=1))
    assert decays == pytest.approx([1 / 10, 2 / 11, 3 / 12])      # min(decay, (1+n)/(10+n))
    ema.num_updates = 10 ** 6
    assert ema.current_decay() == 0.9998


def test_ema_swapped_in_restores_the_model_and_round_trips():
    model = Toy()
    ema = ModelEma(model, decay=0.5)
    model.parameters()["conv.weight"] += 2.0
    ema.update(model)
    own = model.state_dict()
    with ema.swapped_in(model):
        for k, v in model.state_dict().items():
            np.testing.assert_array_equal(v, ema.shadow[k])
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, own[k])
    with pytest.raises(KeyError):
        with ema.swapped_in(model):
            raise KeyError("boom")
    np.testing.assert_array_equal(model.parameters()["conv.weight"], own["conv.weight"])
    other = ModelEma(Toy(seed=3), decay=0.1).load_state_dict(ema.state_dict())
    assert other.decay == 0.5 and other.num_updates == 1
    for k, v in ema.shadow.items():
        np.testing.assert_array_equal(other.shadow[k], v)
    with pytest.raises(ValueError, match="missing key"):
        other.load_state_dict({"decay": np.array(0.9)})


# ---- development checks against PyTorch and timm (skipped where torch is not installed) ----------

def _torch_run(torch_opt_factory, ours_factory, steps=6):
    torch = pytest.importorskip("torch")
    model = Toy()
    tparams = {k: torch.nn.Parameter(torch.tensor(v.copy())) for k, v in model.parameters().items()}
    decayed = [p for k, p in tparams.items() if p.ndim > 1 and not k.endswith(".bias")]
    rest = [p for k, p in tparams.items() if not (p.ndim > 1 and not k.endswith(".bias"))]
    topt = torch_opt_factory([{"params": decayed}, {"params": rest, "weight_decay": 0.0}])
    opt = ours_factory(model)
    rng = np.random.default_rng(5)
    for t in range(steps):
        set_grads(model, rng)
        for k, p in tparams.items():
            p.grad = torch.tensor(model.grads()[k].copy())
        for group in topt.param_groups:
            group["lr"] = LRS[t]
        topt.step()
        opt.step(lr=LRS[t])
        for k, p in tparams.items():
            np.testing.assert_allclose(model.parameters()[k], p.detach().numpy(), rtol=1e-13, atol=1e-15,
                                       err_msg=f"step {t}, {k}")


def test_against_torch_sgd():
    torch = pytest.importorskip("torch")
    _torch_run(lambda g: torch.optim.SGD(g, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01,
                                         foreach=False),
               lambda m: SGD(m, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01))


def test_against_torch_adamw():
    torch = pytest.importorskip("torch")
    _torch_run(lambda g: torch.optim.AdamW(g, lr=0.1, weight_decay=0.05, foreach=False),
               lambda m: AdamW(m, lr=0.1, weight_decay=0.05))


def test_against_timm_rmsprop_tf():
    pytest.importorskip("torch")
    timm_optim = pytest.importorskip("timm.optim")
    _torch_run(lambda g: timm_optim.RMSpropTF(g, lr=0.1, alpha=0.9, eps=1e-3, momentum=0.9,
                                              weight_decay=0.01, foreach=False),
               lambda m: RMSpropTF(m, lr=0.1, alpha=0.9, eps=1e-3, momentum=0.9, weight_decay=0.01))


def test_against_timm_param_groups_on_a_mobilenet():
    pytest.importorskip("torch")
    timm = pytest.importorskip("timm")
    timm_optim = pytest.importorskip("timm.optim")
    net = timm.create_model("mobilenetv3_small_050", pretrained=False)
    names = {id(p): k for k, p in net.named_parameters()}
    theirs = [sorted(names[id(p)] for p in g["params"])
              for g in timm_optim.param_groups_weight_decay(net, 1e-5)]
    shapes = {k: np.empty(tuple(p.shape), dtype=np.float32) for k, p in net.named_parameters()}
    ours = [sorted(g["names"]) for g in param_groups(shapes, 1e-5)]
    assert ours == theirs
