"""Parity with timm: the same weights give the same logits and the same gradients.

The reference numbers are timm's own (timm 1.0.31, torch 2.14.1, CPU, float64), stored in
``tests/golden/<variant>.npz`` and ``tests/golden/timm_state_dict_keys.json`` by
``tests/golden/make_golden.py`` (its docstring lists every array).  No torch is needed here: the
weights are regenerated with ``tests/golden/fill.py`` (NumPy only, seeded per key name) from
timm's key list, and the inputs from the seeds recorded in each file.

What is compared, with rel(a, ref) = max|a - ref| / max|ref| over the whole array:

- the state dict: keys and shapes equal timm's, in timm's order (``num_batches_tracked`` aside);
- eval mode (BN running statistics), batch 2 at 64x64: float32 logits, rel < 1e-4;
  float64 logits, rel < 1e-10; float64 at 72x56 (sides not multiples of 32), rel < 1e-10;
- train mode (BN batch statistics; drop rates 0), float64, batch 2 at 64x64, value <logits, r>:
  logits rel < 1e-10; d value / d input rel < 1e-8 (``model.backward(r)``); every parameter
  gradient through <g, u> (u a fixed unit-norm random tensor per key) and ||g||, each within
  1e-8 ||g_ref|| + 1e-12 max_k ||g_ref,k|| (the floor is for the BN biases whose gradient is zero
  up to rounding: a shift that the next train-mode BN removes); the stem and first BN gradients
  in full, rel < 1e-8; the BN running statistics after that one forward (momentum 0.1, unbiased
  variance) through <b, u>, within 1e-10 ||b||.
"""
import functools
import json
import pathlib
import sys

import numpy as np
import pytest

import npmobilenet

GOLDEN = pathlib.Path(__file__).parent / "golden"
sys.path.insert(0, str(GOLDEN))
from fill import fill_state, projection_direction  # noqa: E402

VARIANTS = [
    "mobilenetv1_025", "mobilenetv1_050", "mobilenetv1_075", "mobilenetv1_100", "mobilenetv1_125",
    "mobilenetv2_035", "mobilenetv2_050", "mobilenetv2_075", "mobilenetv2_100", "mobilenetv2_140",
    "mobilenetv3_large_075", "mobilenetv3_large_100",
    "mobilenetv3_small_050", "mobilenetv3_small_075", "mobilenetv3_small_100",
    "mobilenetv4_conv_small", "mobilenetv4_conv_medium", "mobilenetv4_conv_large",
    "mobilenetv4_hybrid_medium", "mobilenetv4_hybrid_large",
]
SLOW = {"mobilenetv4_conv_large", "mobilenetv4_hybrid_large"}
PARAMS = [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in VARIANTS]


def rel(a, ref):
    """max|a - ref| / max|ref| over the whole array."""
    a, ref = np.asarray(a, np.float64), np.asarray(ref, np.float64)
    assert a.shape == ref.shape, f"shape {a.shape}, expected {ref.shape}"
    return float(np.abs(a - ref).max() / np.abs(ref).max())


@functools.lru_cache(maxsize=None)
def timm_keys():
    table = json.loads((GOLDEN / "timm_state_dict_keys.json").read_text())
    return {name: [(k, tuple(s)) for k, s in rows] for name, rows in table.items() if name != "_about"}


@functools.lru_cache(maxsize=None)
def golden(name):
    with np.load(GOLDEN / f"{name}.npz") as z:
        return {k: z[k] for k in z.files}


def seeded_input(g, which):
    return np.random.default_rng(int(g["input_seed"])).standard_normal(tuple(g[f"{which}_shape"]))


def filled_model(name, dtype):
    g = golden(name)
    model = npmobilenet.create_model(name, num_classes=1000)
    model.to(dtype)
    state = fill_state(timm_keys()[name], int(g["fill_seed"]))
    model.load_state_dict({k: v.astype(dtype) for k, v in state.items()})
    return model


def test_golden_files_cover_every_variant():
    assert sorted(timm_keys()) == sorted(VARIANTS)
    for name in VARIANTS:
        g = golden(name)
        assert str(g["variant"]) == name and str(g["timm_version"]) == "1.0.31"


@pytest.mark.parametrize("name", VARIANTS)
def test_state_dict_keys_and_shapes_equal_timm(name):
    model = npmobilenet.create_model(name, num_classes=1000)
    ours = [(k, tuple(v.shape)) for k, v in model.state_dict().items()
            if not k.endswith("num_batches_tracked")]
    theirs = timm_keys()[name]
    if ours != theirs:
        first = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
        missing = [k for k, _ in theirs if k not in dict(ours)]
        extra = [k for k, _ in ours if k not in dict(theirs)]
        pytest.fail(f"{name}: state dict differs from timm's at entry {first}: ours "
                    f"{ours[first] if first < len(ours) else None}, timm "
                    f"{theirs[first] if first < len(theirs) else None}; {len(ours)} vs {len(theirs)} "
                    f"entries; missing {missing[:5]} (+{max(0, len(missing) - 5)}), extra {extra[:5]} "
                    f"(+{max(0, len(extra) - 5)})")


@pytest.mark.parametrize("name", PARAMS)
def test_eval_logits_float32(name):
    g = golden(name)
    model = filled_model(name, np.float32)
    model.eval()
    y = model.forward(seeded_input(g, "eval").astype(np.float32))
    assert y.dtype == np.float32
    err = rel(y, g["eval_logits"])
    assert err < 1e-4, f"{name}: float32 eval logits rel error {err:.3g} (timm's own float32: " \
                       f"{float(g['timm_float32_rel_err']):.3g})"


@pytest.mark.parametrize("name", PARAMS)
def test_eval_logits_float64(name):
    g = golden(name)
    model = filled_model(name, np.float64)
    model.eval()
    for which in ("eval", "odd"):
        x = seeded_input(g, which)
        y = model.forward(x)
        ref = g["eval_logits" if which == "eval" else "eval_odd_logits"]
        err = rel(y, ref)
        assert err < 1e-10, f"{name}: float64 eval logits at input {x.shape}: rel error {err:.3g}"


@functools.lru_cache(maxsize=None)
def train_run(name):
    """One train-mode forward and backward in float64; only small summaries are kept."""
    g = golden(name)
    model = filled_model(name, np.float64)
    model.train()
    x = seeded_input(g, "train")
    r = np.random.default_rng(int(g["r_seed"])).standard_normal(g["train_logits"].shape)
    y = model.forward(x)
    dx = model.backward(r)
    grads = model.grads()
    out = {"logits": y.copy(), "value": float(np.sum(y * r)), "dx": dx.copy(),
           "grad_keys": list(grads),
           "full": {k: grads[k].copy() for k in grads if f"grad.{k}" in g},
           "proj": {k: float(np.sum(v * projection_direction(k, v.shape, int(g["proj_seed"]))))
                    for k, v in grads.items()},
           "norm": {k: float(np.linalg.norm(v)) for k, v in grads.items()}}
    state = model.state_dict()
    out["buffers"] = {k: (float(np.sum(v * projection_direction(k, v.shape, int(g["proj_seed"])))),
                          float(np.linalg.norm(v)))
                      for k, v in state.items() if k.endswith(("running_mean", "running_var"))}
    return out


@pytest.mark.parametrize("name", PARAMS)
def test_train_logits_float64(name):
    g, run = golden(name), train_run(name)
    err = rel(run["logits"], g["train_logits"])
    assert err < 1e-10, f"{name}: train-mode logits rel error {err:.3g}"
    value = float(g["train_value"])
    assert abs(run["value"] - value) <= 1e-10 * abs(value), (name, run["value"], value)


@pytest.mark.parametrize("name", PARAMS)
def test_train_input_gradient_float64(name):
    g, run = golden(name), train_run(name)
    assert run["dx"].shape == g["train_dx"].shape
    err = rel(run["dx"], g["train_dx"])
    assert err < 1e-8, f"{name}: d<logits, r>/d input rel error {err:.3g}"


@pytest.mark.parametrize("name", PARAMS)
def test_train_parameter_gradients_float64(name):
    g, run = golden(name), train_run(name)
    keys = [str(k) for k in g["param_keys"]]
    assert sorted(run["grad_keys"]) == sorted(keys), \
        f"{name}: grads() keys differ: missing {sorted(set(keys) - set(run['grad_keys']))[:5]}, " \
        f"extra {sorted(set(run['grad_keys']) - set(keys))[:5]}"
    floor = 1e-12 * float(g["grad_norm"].max())
    bad = []
    for k, p_ref, n_ref in zip(keys, g["grad_proj"], g["grad_norm"]):
        tol = 1e-8 * n_ref + floor
        if abs(run["proj"][k] - p_ref) > tol or abs(run["norm"][k] - n_ref) > tol:
            bad.append(f"{k}: <g,u> {run['proj'][k]:.10g} vs timm {p_ref:.10g}, "
                       f"||g|| {run['norm'][k]:.10g} vs timm {n_ref:.10g}")
    assert not bad, f"{name}: {len(bad)} parameter gradients differ from timm's, first (timm order):\n" \
                    + "\n".join(bad[:10])
    for k, v in run["full"].items():
        err = rel(v, g[f"grad.{k}"])
        assert err < 1e-8, f"{name}: gradient of {k} rel error {err:.3g}"


@pytest.mark.parametrize("name", PARAMS)
def test_train_running_statistics_float64(name):
    g, run = golden(name), train_run(name)
    keys = [str(k) for k in g["buffer_keys"]]
    assert sorted(run["buffers"]) == sorted(keys)
    bad = [f"{k}: <b,u> {run['buffers'][k][0]:.12g} vs timm {p_ref:.12g}"
           for k, p_ref in zip(keys, g["buffer_proj"])
           if abs(run["buffers"][k][0] - p_ref) > 1e-10 * run["buffers"][k][1]]
    assert not bad, f"{name}: running statistics after one train-mode forward differ:\n" + "\n".join(bad[:10])
