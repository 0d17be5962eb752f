"""Write the timm golden files that tests/test_timm_parity.py checks npmobilenet against.

Needs torch and timm (the test itself does not).  To re-run:

    python -m venv venv-timm
    venv-timm/bin/pip install torch==2.14.1 torchvision==0.29.1 timm==1.0.31 numpy
    venv-timm/bin/python tests/golden/make_golden.py            # all variants
    venv-timm/bin/python tests/golden/make_golden.py mobilenetv2_100 ...   # some of them

The output is deterministic (one thread, float64, fixed seeds, zip entries with a fixed date), so
re-running it with the same versions rewrites byte-identical files.

For every variant the model is built with ``pretrained=False, num_classes=1000, drop_rate=0,
drop_path_rate=0`` and filled with ``fill.fill_state(keys, FILL_SEED)`` (NumPy only), and
``tests/golden/<variant>.npz`` gets (all computed by timm in float64):

- ``eval_logits``       (2, 1000)   eval mode (BN running statistics), input EVAL_SHAPE
- ``eval_odd_logits``   (1, 1000)   eval mode, input ODD_SHAPE (sides not multiples of 32)
- ``train_logits``      (2, 1000)   train mode (BN uses the batch statistics), input TRAIN_SHAPE
- ``train_value``       ()          <train_logits, r>
- ``train_dx``          TRAIN_SHAPE d value / d input
- ``param_keys``        (P,)        the parameters (``named_parameters`` order)
- ``grad_proj``         (P,)        <d value / d p, u_p>, u_p = fill.projection_direction(key, shape, PROJ_SEED)
- ``grad_norm``         (P,)        ||d value / d p||_2
- ``grad.<key>``        full gradient of a few small tensors (GRAD_KEYS)
- ``buffer_keys``       (B,)        BN running_mean / running_var
- ``buffer_proj``       (B,)        <buffer after the one train-mode forward, u_b> (momentum 0.1,
                                    unbiased variance), u_b = projection_direction(key, shape, PROJ_SEED)
- metadata: ``timm_version``, ``torch_version``, ``variant``, ``builder``, seeds and shapes.

Inputs are regenerated from seeds: x = default_rng(INPUT_SEED).standard_normal(shape) (separately
for each of the three shapes), r = default_rng(R_SEED).standard_normal((2, 1000)).

``tests/golden/timm_state_dict_keys.json`` lists, per variant, timm's ordered state-dict keys and
shapes (``num_batches_tracked`` omitted).
"""
import copy
import io
import json
import os
import sys
import zipfile

import numpy as np
import torch
import timm
from timm.models.efficientnet import _gen_mobilenet_v1

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from fill import fill_state, projection_direction  # noqa: E402

FILL_SEED, INPUT_SEED, R_SEED, PROJ_SEED = 0, 1, 2, 3
EVAL_SHAPE = (2, 3, 64, 64)
ODD_SHAPE = (1, 3, 72, 56)
TRAIN_SHAPE = (2, 3, 64, 64)
NUM_CLASSES = 1000
GRAD_KEYS = ("conv_stem.weight", "bn1.weight", "bn1.bias", "classifier.bias")

REGISTERED = [
    "mobilenetv1_100", "mobilenetv1_125",
    "mobilenetv2_035", "mobilenetv2_050", "mobilenetv2_075", "mobilenetv2_100", "mobilenetv2_140",
    "mobilenetv3_large_075", "mobilenetv3_large_100",
    "mobilenetv3_small_050", "mobilenetv3_small_075", "mobilenetv3_small_100",
    "mobilenetv4_conv_small", "mobilenetv4_conv_medium", "mobilenetv4_conv_large",
    "mobilenetv4_hybrid_medium", "mobilenetv4_hybrid_large",
]
# MobileNet-V1 widths that timm can build but does not register.
V1_GENERATED = {"mobilenetv1_025": 0.25, "mobilenetv1_050": 0.5, "mobilenetv1_075": 0.75}
VARIANTS = REGISTERED + list(V1_GENERATED)

KEYS_JSON = os.path.join(HERE, "timm_state_dict_keys.json")


def build(name):
    kw = dict(num_classes=NUM_CLASSES, drop_rate=0.0, drop_path_rate=0.0)
    if name in V1_GENERATED:
        mult = V1_GENERATED[name]
        how = f"timm.models.efficientnet._gen_mobilenet_v1({name!r}, {mult}, pretrained=False, **{kw})"
        model = _gen_mobilenet_v1(name, mult, pretrained=False, **kw)
    else:
        how = f"timm.create_model({name!r}, pretrained=False, **{kw})"
        model = timm.create_model(name, pretrained=False, **kw)
    return model, how


def key_shapes(model):
    return [(k, tuple(v.shape)) for k, v in model.state_dict().items()
            if not k.endswith("num_batches_tracked")]


class ExactHardsigmoid(torch.nn.Module):
    """relu6(x + 3) / 6 with an exact float64 gradient.

    torch 2.14's hardsigmoid backward multiplies by 1/6 rounded to float32 (0.16666667163...), a
    3e-8 relative error in float64 that would show up in every squeeze-excite gradient.  The
    forward values are identical to ``F.hardsigmoid``'s.
    """

    def forward(self, x):
        return torch.clamp(x + 3.0, 0.0, 6.0) / 6.0


def exact_hardsigmoid(model):
    for parent in list(model.modules()):
        for child_name, child in parent.named_children():
            if isinstance(child, torch.nn.Hardsigmoid):
                setattr(parent, child_name, ExactHardsigmoid())
    return model


def filled(name):
    model, how = build(name)
    exact_hardsigmoid(model)
    model.double()  # before loading: load_state_dict copies into the existing (float32) tensors
    state = fill_state(key_shapes(model), FILL_SEED)
    missing, unexpected = model.load_state_dict(
        {k: torch.from_numpy(v) for k, v in state.items()}, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
    return model, how


def check_healthy(name, what, logits):
    """Golden logits must be finite, O(1)-O(100), and not degenerate."""
    peak = np.abs(logits).max()
    assert np.all(np.isfinite(logits)), (name, what)
    assert 0.1 < peak < 1000, (name, what, peak)
    assert logits.std(axis=-1).min() > 1e-2 * peak, (name, what, "classes nearly equal")
    if len(logits) > 1:
        assert np.abs(logits[0] - logits[1]).max() > 1e-2 * peak, (name, what, "samples nearly equal")
    return peak


def golden(name):
    model, how = filled(name)
    out = {"variant": np.array(name), "builder": np.array(how),
           "timm_version": np.array(timm.__version__), "torch_version": np.array(torch.__version__),
           "fill_seed": np.array(FILL_SEED), "input_seed": np.array(INPUT_SEED),
           "r_seed": np.array(R_SEED), "proj_seed": np.array(PROJ_SEED),
           "eval_shape": np.array(EVAL_SHAPE), "odd_shape": np.array(ODD_SHAPE),
           "train_shape": np.array(TRAIN_SHAPE)}
    report = {}

    model.eval()
    with torch.no_grad():
        for tag, shape in (("eval", EVAL_SHAPE), ("eval_odd", ODD_SHAPE)):
            x = np.random.default_rng(INPUT_SEED).standard_normal(shape)
            y = model(torch.from_numpy(x)).numpy()
            report[tag] = check_healthy(name, tag, y)
            out[f"{tag}_logits"] = y
        # How far timm's own float32 run is from its float64 run: context for the float32 tolerance.
        x = np.random.default_rng(INPUT_SEED).standard_normal(EVAL_SHAPE)
        y32 = copy.deepcopy(model).float()(torch.from_numpy(x).float()).double().numpy()
        out["timm_float32_rel_err"] = np.array(np.abs(y32 - out["eval_logits"]).max()
                                               / np.abs(out["eval_logits"]).max())

    model.train()
    x = torch.from_numpy(np.random.default_rng(INPUT_SEED).standard_normal(TRAIN_SHAPE)).requires_grad_(True)
    r = np.random.default_rng(R_SEED).standard_normal((TRAIN_SHAPE[0], NUM_CLASSES))
    model.zero_grad(set_to_none=True)
    y = model(x)
    value = (y * torch.from_numpy(r)).sum()
    value.backward()
    out["train_logits"] = y.detach().numpy()
    report["train"] = check_healthy(name, "train", out["train_logits"])
    out["train_value"] = np.array(value.item())
    out["train_dx"] = x.grad.numpy()
    assert np.all(np.isfinite(out["train_dx"])) and np.abs(out["train_dx"]).max() > 0

    keys, proj, norm = [], [], []
    for k, p in model.named_parameters():
        g = p.grad.numpy()
        keys.append(k)
        proj.append(np.sum(g * projection_direction(k, g.shape, PROJ_SEED)))
        norm.append(np.linalg.norm(g))
        if k in GRAD_KEYS:
            out[f"grad.{k}"] = g
    out["param_keys"], out["grad_proj"], out["grad_norm"] = np.array(keys), np.array(proj), np.array(norm)
    bkeys, bproj = [], []
    for k, b in model.named_buffers():
        if k.endswith(("running_mean", "running_var")):
            bkeys.append(k)
            bproj.append(np.sum(b.numpy() * projection_direction(k, b.shape, PROJ_SEED)))
    out["buffer_keys"], out["buffer_proj"] = np.array(bkeys), np.array(bproj)
    report["grad_norm_min/max"] = float(min(norm) / max(norm))
    report["timm_float32_rel_err"] = float(out["timm_float32_rel_err"])
    return out, key_shapes(model), report


def save_npz(path, arrays):
    """np.savez_compressed, but with a fixed zip date so that re-runs give identical bytes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for k in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(arrays[k]), allow_pickle=False)
            info = zipfile.ZipInfo(k + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


def write_keys_json(table):
    """One line per key so that diffs stay readable."""
    lines = ["{", '  "_about": "timm state_dict keys and shapes in order, num_batches_tracked omitted; '
             f'timm {timm.__version__}, torch {torch.__version__}; written by tests/golden/make_golden.py",']
    names = [n for n in VARIANTS if n in table]
    for i, name in enumerate(names):
        lines.append(f'  "{name}": [')
        rows = [f'    [{json.dumps(k)}, {json.dumps(list(s))}]' for k, s in table[name]]
        lines.append(",\n".join(rows))
        lines.append("  ]" + ("," if i < len(names) - 1 else ""))
    lines.append("}")
    with open(KEYS_JSON, "w") as f:
        f.write("\n".join(lines) + "\n")


def main(names):
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    table = {}
    if os.path.exists(KEYS_JSON):
        with open(KEYS_JSON) as f:
            table = {k: [(e[0], tuple(e[1])) for e in v] for k, v in json.load(f).items() if k != "_about"}
    for name in names:
        arrays, keys, report = golden(name)
        save_npz(os.path.join(HERE, f"{name}.npz"), arrays)
        table[name] = keys
        print(name, " ".join(f"{k}={v:.3g}" for k, v in report.items()), flush=True)
    write_keys_json(table)


if __name__ == "__main__":
    unknown = [n for n in sys.argv[1:] if n not in VARIANTS]
    if unknown:
        sys.exit(f"make_golden.py: unknown variant(s) {unknown}; choose from {VARIANTS}")
    main(sys.argv[1:] or VARIANTS)
