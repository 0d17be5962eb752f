"""Counting parameters and multiply-adds, layer by layer: ``summary(model, input_size)``.

The convention (the papers', timm's and torchvision's published numbers use it):

* 1 MAdd = one multiply and one add; FLOPs ≈ 2 × MAdds.
* conv, any groups:  N·Ho·Wo·Cout·(Cin/groups)·kh·kw, with Ho = ceil(H / stride);
* linear:            N·in·out;
* Mobile MQA:        N·heads·Lq·Lkv·(dk + dv), the QKᵀ and AV products;
* not counted: biases, BN (it folds into the conv), activations, the SE channel scale, residual
  adds, layer scale, pooling, softmax, the attention scale.  They are listed separately in the
  *elementwise* breakdown (the output elements each category visits), from which other tools'
  numbers follow (fvcore, ptflops, thop, torchinfo each add a different subset).

The counts come from the model itself: one forward pass at batch 1 records every layer's input
and output shape; the activation memory is what each layer actually keeps for its backward in
train mode (the arrays in its cache), measured, not estimated.
"""
from __future__ import annotations

import numpy as np

HEADER = "1 MAdd = 1 multiply + 1 add; FLOPs ≈ 2 × MAdds"


# ---- the formulas (the FLOP worksheets check their own derivations against these) -------------
def conv_madds(n, c_in, c_out, kernel_size, out_hw, groups=1):
    """MAdds of a convolution: every output element is a dot product of length (Cin/g)·k·k."""
    kh, kw = (kernel_size, kernel_size) if np.isscalar(kernel_size) else kernel_size
    ho, wo = out_hw
    return int(n * ho * wo * c_out * (c_in // groups) * kh * kw)


def conv_params(c_in, c_out, kernel_size, groups=1, bias=False):
    kh, kw = (kernel_size, kernel_size) if np.isscalar(kernel_size) else kernel_size
    return int(c_out * (c_in // groups) * kh * kw + (c_out if bias else 0))


def linear_madds(rows, in_features, out_features):
    return int(rows * in_features * out_features)


def attention_madds(n, heads, lq, lkv, key_dim, value_dim):
    """QKᵀ costs heads·Lq·Lkv·dk, AV costs heads·Lq·Lkv·dv (K and V are shared by the heads)."""
    return int(n * heads * lq * lkv * (key_dim + value_dim))


def out_size(size, stride):
    """Spatial output of a 'same'-padded conv: ceil(size / stride), for k//2 and TF padding alike."""
    return -(-size // stride)


# ---- the walk ---------------------------------------------------------------------------------
def _layer_madds(module, x_shape, y_shape):
    """Core MAdds of one module, from its own parameters and the recorded shapes."""
    kind = type(module).__name__
    if kind == "Conv2d":
        c_out, c_in_g, kh, kw = module.weight.shape
        return conv_madds(y_shape[0], c_in_g * module.groups, c_out, (kh, kw), y_shape[2:], module.groups)
    if kind == "Linear":
        out_f, in_f = module.weight.shape
        return linear_madds(int(np.prod(x_shape[:-1])), in_f, out_f)
    return 0


def _elementwise_category(module, x_shape, y_shape):
    """(category, elements) of the elementwise work a module does, or None."""
    kind = type(module).__name__
    size = int(np.prod(y_shape))
    if kind == "BatchNorm2d":
        return "batchnorm", size
    if kind in ("ReLU", "ReLU6", "Hardsigmoid", "Hardswish", "GELU"):
        return kind.lower(), size
    if kind in ("GlobalAvgPool2d",):
        return "pooling (input elements)", int(np.prod(x_shape))
    if kind == "LayerScale2d":
        return "layer scale", size
    return None


def _cache_bytes(obj, seen):
    """Bytes of the distinct arrays reachable from a cache (views of one buffer counted once)."""
    if isinstance(obj, np.ndarray):
        base = obj
        while isinstance(base.base, np.ndarray):
            base = base.base
        if id(base) in seen:
            return 0
        seen.add(id(base))
        return int(base.nbytes)
    if isinstance(obj, dict):
        obj = list(obj.values())
    if isinstance(obj, (tuple, list)):
        return sum(_cache_bytes(o, seen) for o in obj)
    return 0


class Summary:
    """A printable per-layer table with ``rows``, ``total_params``, ``total_madds``,
    ``total_activation_bytes`` and the ``elementwise`` breakdown ``{category: elements}``."""

    def __init__(self, model_name, input_size, rows, total_params, elementwise):
        self.model_name, self.input_size, self.rows = model_name, tuple(input_size), rows
        self.total_params = int(total_params)
        self.total_madds = int(sum(r["madds"] for r in rows))
        self.total_activation_bytes = int(sum(r["activation_bytes"] for r in rows))
        self.elementwise = elementwise

    def __str__(self):
        w = max([len(r["name"]) for r in self.rows] + [5])
        head = (f"{self.model_name} @ {self.input_size}  ({HEADER}; core count: conv, linear and attention "
                "products; BN, activations, pooling, adds and the SE scale are not counted)")
        cols = (f"{'layer':<{w}}  {'op':<22} {'output':<20} {'params':>10} {'MAdds':>13} {'%':>6} "
                f"{'cum. MAdds':>14} {'train mem':>10}")
        lines = [head, cols, "-" * len(cols)]
        cum = 0
        for r in self.rows:
            cum += r["madds"]
            pct = 100.0 * r["madds"] / self.total_madds if self.total_madds else 0.0
            lines.append(f"{r['name']:<{w}}  {r['op']:<22} {str(r['output_shape']):<20} {r['params']:>10,} "
                         f"{r['madds']:>13,} {pct:>6.2f} {cum:>14,} {_mib(r['activation_bytes']):>10}")
        lines.append("-" * len(cols))
        lines.append(f"total params {self.total_params:,}   total MAdds {self.total_madds:,} "
                     f"({self.total_madds / 1e6:.2f} M, {2 * self.total_madds / 1e9:.3f} GFLOPs)   "
                     f"activation memory kept for backward at batch 1: {_mib(self.total_activation_bytes)}")
        if self.elementwise:
            lines.append("elementwise work (output elements visited; not in the MAdds above): " + ", ".join(
                f"{k} {v:,}" for k, v in self.elementwise.items()))
        return "\n".join(lines)

    __repr__ = __str__


def _mib(n):
    return f"{n / 2**20:.2f} MiB"


def summary(model, input_size=(3, 224, 224), dtype=np.float32):
    """Per-layer table of a model at ``input_size`` = (C, H, W), batch 1.

    Runs one train-mode forward (so every layer keeps what its backward needs, which is what the
    memory column measures) on a copy of the state, and restores the model afterwards: weights,
    running statistics, mode and dtype are unchanged.
    Returns: a Summary (print it).
    """
    if len(input_size) != 3:
        raise ValueError(f"summary: input_size must be (C, H, W), got {input_size!r}")
    state, was_training, old_dtype = model.state_dict(), model.training, model.dtype
    records = {}
    originals = []
    for name, m in model.named_modules():
        def hooked(x, _m=m, _name=name, _fwd=m.forward):
            y = _fwd(x)
            records[_name] = (tuple(np.shape(x)), tuple(np.shape(y)) if isinstance(y, np.ndarray)
                              else tuple(np.shape(y[-1])))
            return y
        originals.append(m)
        object.__setattr__(m, "forward", hooked)
    try:
        model.to(dtype).train()
        x = np.random.default_rng(0).standard_normal((1, *input_size)).astype(dtype)
        model.forward(x)
        rows, elementwise, seen = [], {}, set()
        for name, m in model.named_modules():
            if name not in records:
                continue
            xs, ys = records[name]
            leaf = not m._children
            madds = _layer_madds(m, xs, ys)
            if hasattr(m, "attention_madds"):
                rows.append(dict(name=f"{name}.(attention)", op="QKᵀ and AV products", input_shape=xs,
                                 output_shape=ys, params=0, madds=int(m.attention_madds(xs)),
                                 activation_bytes=0))
            own = int(sum(p.size for p in m._params.values()))
            if leaf or own:
                rows.append(dict(name=name or type(m).__name__, op=type(m).__name__, input_shape=xs,
                                 output_shape=ys, params=own, madds=madds,
                                 activation_bytes=_cache_bytes(m.__dict__.get("cache"), seen)))
            cat = _elementwise_category(m, xs, ys)
            if cat:
                elementwise[cat[0]] = elementwise.get(cat[0], 0) + cat[1]
    finally:
        for m in originals:
            del m.__dict__["forward"]
        model.to(old_dtype).load_state_dict(state)
        model.train(was_training)
    label = getattr(model, "name", None) or type(model).__name__
    return Summary(label, input_size, rows, model.num_parameters(), elementwise)
