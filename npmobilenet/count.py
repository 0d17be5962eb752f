"""Counting parameters and multiply-adds, layer by layer: ``summary(model, input_size)``.

The convention (the papers', timm's and torchvision's published numbers use it):

* 1 MAdd = one multiply and one add; FLOPs ≈ 2 × MAdds.
* conv, any groups:  N·Ho·Wo·Cout·(Cin/groups)·kh·kw, with Ho = ceil(H / stride);
* linear:            N·in·out;
* Mobile MQA:        N·heads·Lq·Lkv·(dk + dv), the QKᵀ and AV products;
* counted: the stem, every conv of every block (the SE's two 1x1 convs on their 1x1 map, the
  MQA's query, key, value, output and K/V-downsampling convs), ``conv_head`` and the classifier;
* not counted: biases, BN (it folds into the conv), activations, the SE channel scale, residual
  adds, layer scale, pooling, softmax, the attention scale.  They are listed separately in the
  *elementwise* breakdown (the output elements each category visits), from which other tools'
  numbers follow (fvcore, ptflops, thop, torchinfo each add a different subset).
* training: one step ≈ 3 × the forward MAdds (a conv's or linear's backward computes dX and dW,
  each as many MAdds as its forward; the first layer needs no dX).  A convention, not a measurement.

The counts come from the model itself: one train-mode forward pass at batch 1 records every
layer's input and output shape; the activation memory is what each layer actually keeps for its
backward (the distinct arrays in its cache, not counting the parameters a cache refers to),
measured, not estimated.

>>> import npmobilenet
>>> s = npmobilenet.summary(npmobilenet.create_model("mobilenetv1_100"), (3, 224, 224))
>>> s.total_params, s.total_madds          # timm 1.0.31's counts for mobilenetv1_100
(4231976, 568740352)
>>> s.rows[0]["name"], s.rows[0]["output_shape"], s.rows[0]["madds"]
('conv_stem', (1, 32, 112, 112), 10838016)
"""
from __future__ import annotations

from collections import namedtuple
from contextlib import contextmanager

import numpy as np

HEADER = "1 MAdd = 1 multiply + 1 add; FLOPs ≈ 2 × MAdds"
ACTIVATIONS = ("ReLU", "ReLU6", "Hardsigmoid", "Hardswish", "GELU")


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


# ---- the papers' rounded figures --------------------------------------------------------------
Published = namedtuple("Published", "params madds resolution source rounding")
Published.__doc__ = """A published (rounded) figure: ``params``/``madds`` as printed ('4.2M', '0.2G')."""

_V1 = "Howard et al. 2017, MobileNets (arXiv 1704.04861), Table 6"
_V2 = "Sandler et al. 2018, MobileNetV2 (arXiv 1801.04381), Table 4"
_SLIM = "TF-slim README (tensorflow/models research/slim/nets/mobilenet)"
_V3 = "Howard et al. 2019, Searching for MobileNetV3 (arXiv 1905.02244), Table 3, final version"
_V4 = "Qin et al. 2024, MobileNetV4 (arXiv 2404.10518), ImageNet table"
_DEC = "M = 10^6, rounded"
# The V4 paper does not state its base; its MACs fit G = 2^30 (Conv-M: 1.080e9 / 2^30 = 1.006 ->
# "1.0G"), and its M/L params fit 2^20.  An observation, shown beside the decimal reading.
_BIN = "base not stated: the MAdds fit G = 2^30, the M/L params M = 2^20"
PUBLISHED = {
    "mobilenetv1_100": [Published("4.2M", "569M", 224, _V1, _DEC)],
    "mobilenetv1_075": [Published("2.6M", "325M", 224, _V1, _DEC)],
    "mobilenetv1_050": [Published("1.3M", "149M", 224, _V1, _DEC)],
    "mobilenetv1_025": [Published("0.5M", "41M", 224, _V1, _DEC)],
    "mobilenetv2_100": [Published("3.4M", "300M", 224, _V2, _DEC), Published("3.47M", "300M", 224, _SLIM, _DEC)],
    "mobilenetv2_140": [Published("6.9M", "585M", 224, _V2 + " (6.9M does not fit the architecture)", _DEC),
                        Published("6.06M", "582M", 224, _SLIM, _DEC)],
    "mobilenetv2_075": [Published("2.61M", "209M", 224, _SLIM, _DEC)],
    "mobilenetv2_050": [Published("1.95M", "97M", 224, _SLIM, _DEC)],
    "mobilenetv2_035": [Published("1.66M", "59M", 224, _SLIM, _DEC)],
    "mobilenetv3_large_100": [Published("5.4M", "219M", 224, _V3, _DEC)],
    "mobilenetv3_large_075": [Published("4.0M", "155M", 224, _V3, _DEC)],
    "mobilenetv3_small_100": [Published("2.5M", "56M", 224, _V3, _DEC)],
    "mobilenetv3_small_075": [Published("2.0M", "44M", 224, _V3, _DEC)],
    "mobilenetv4_conv_small": [Published("3.8M", "0.2G", 224, _V4, _BIN)],
    "mobilenetv4_conv_medium": [Published("9.2M", "1.0G", 256, _V4, _BIN)],
    "mobilenetv4_hybrid_medium": [Published("10.5M", "1.2G", 256, _V4, _BIN)],
    "mobilenetv4_conv_large": [Published("31M", "5.9G", 384, _V4, _BIN)],
    "mobilenetv4_hybrid_large": [Published("35.9M", "7.2G", 384, _V4, _BIN)],
}


def _rounded(exact, printed, binary=False):
    """``exact`` written like ``printed`` ('0.2G', '569M'): same unit, same number of decimals."""
    unit = printed[-1]
    scale = {"M": 2**20, "G": 2**30}[unit] if binary else {"M": 1e6, "G": 1e9}[unit]
    decimals = len(printed[:-1].partition(".")[2])
    return f"{exact / scale:.{decimals}f}{unit}"


def published_lines(name, total_params, total_madds, resolution):
    """Lines comparing the exact counts with each published figure for ``name`` (none if unknown)."""
    lines = []
    for p in PUBLISHED.get(name, []):
        binary = p.rounding == _BIN
        ours_p, ours_m = _rounded(total_params, p.params), _rounded(total_madds, p.madds)
        if binary:
            ours_p += f" ({_rounded(total_params, p.params, True)} in 2^20)"
            ours_m += f" ({_rounded(total_madds, p.madds, True)} in 2^30)"
        same_res = resolution == (p.resolution, p.resolution)
        ours = f"{ours_p} params, {ours_m} MAdds" if same_res else \
            f"{ours_p} params (MAdds not comparable: this table is at {resolution[0]}x{resolution[1]})"
        lines.append(f"published: {p.params} params, {p.madds} MAdds at {p.resolution}x{p.resolution} "
                     f"({p.source}; {p.rounding})\n           this model rounded alike: {ours}")
    return lines


# ---- one layer ----------------------------------------------------------------------------------
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


def _kind(module):
    """A short description of what a module computes, for the table's kind column."""
    name = type(module).__name__
    if name == "Conv2d":
        (kh, kw), (sh, _), g = module.kernel_size, module.stride, module.groups
        what = "pw" if (kh, kw) == (1, 1) and g == 1 else "dw" if g == module.in_channels > 1 else "conv"
        return f"{what} {kh}x{kw}" + (f" s{sh}" if sh > 1 else "") + (f" g{g}" if what == "conv" and g > 1 else "")
    if hasattr(module, "attention_madds"):
        return "attention QKᵀ, AV"
    return {"BatchNorm2d": "batchnorm", "Linear": "linear", "GlobalAvgPool2d": "global avg pool",
            "SqueezeExcite": "SE pool, scale", "LayerScale2d": "layer scale"}.get(name, name.lower())


def _numel(shape):
    return int(np.prod(shape, dtype=np.int64))


def _elementwise(module, x_shape, y_shape):
    """[(category, elements)]: the elementwise work of one module's own forward (F3)."""
    name, out = type(module).__name__, _numel(y_shape)
    work = []
    if name == "BatchNorm2d":
        work.append(("batchnorm", out))
    elif name in ACTIVATIONS:
        work.append((name.lower(), out))
    elif name in ("Conv2d", "Linear") and "bias" in module._params:
        work.append(("bias add", out))
    elif name == "GlobalAvgPool2d":
        work.append(("pooling (input elements)", _numel(x_shape)))
    elif name == "SqueezeExcite":
        work += [("SE pooling (input elements)", _numel(x_shape)), ("SE channel scale", out)]
    elif name == "LayerScale2d":
        work.append(("layer scale", out))
    elif hasattr(module, "attention_madds"):  # softmax and scale visit every logit: heads·Lq·Lkv
        logits = int(module.attention_madds(x_shape)) // (module.key_dim + module.value_dim)
        work += [("softmax", logits), ("attention scale", logits)]
    if getattr(module, "has_skip", False) or name == "Residual":
        work.append(("residual add", out))
    return work


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


# ---- the table ----------------------------------------------------------------------------------
class Summary:
    """A printable per-layer table (print it, or ``to_string(depth=2)`` for one row per stage).

    Attributes:
      rows: one dict per layer, in the order the layers ran: ``name``, ``op`` (class), ``kind``
        (what it computes: 'dw 3x3 s2', 'pw 1x1', 'batchnorm' ...), ``input_shape``,
        ``output_shape``, ``params``, ``madds``, ``activation_bytes``.  A layer is a module
        without children, or a container for its own work (an MQA's attention products, an SE's
        pooling and channel scale).  The rows sum to the totals.
      total_params, total_madds, attention_madds (the part of total_madds that is QKᵀ and AV),
      total_activation_bytes (kept for backward by a train-mode forward at batch 1),
      elementwise: {category: elements visited}, never part of total_madds (STYLE F3),
      published: lines comparing the totals with the papers' rounded figures (empty if none),
      modules: {dotted name: (op, input_shape, output_shape)} for every module that ran.
    """

    def __init__(self, model_name, input_size, rows, total_params, elementwise, modules=None, published=(),
                 labels=None, depth=None):
        self.model_name, self.input_size, self.rows = model_name, tuple(input_size), rows
        self.total_params = int(total_params)
        self.total_madds = int(sum(r["madds"] for r in rows))
        self.attention_madds = int(sum(r["madds"] for r in rows if r.get("kind", "").startswith("attention")))
        self.total_activation_bytes = int(sum(r["activation_bytes"] for r in rows))
        self.elementwise = elementwise
        self.modules, self.published, self.labels = modules or {}, list(published), labels or {}
        self.depth = depth

    def grouped(self, depth):
        """Rows merged by the first ``depth`` parts of their names (depth 2: ``blocks.3``; 3: ``blocks.3.1``)."""
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"Summary.grouped: depth must be a positive int, got {depth!r}")
        groups = {}
        for r in self.rows:
            key = ".".join(r["name"].split(".")[:depth])
            g = groups.get(key)
            if g is None:
                op, xs, ys = self.modules.get(key, (r["op"], r["input_shape"], r["output_shape"]))
                kind = self.labels.get(key) or (r.get("kind", op) if key == r["name"] else op)
                groups[key] = dict(name=key, op=op, kind=kind, input_shape=xs, output_shape=ys,
                                   params=r["params"], madds=r["madds"], activation_bytes=r["activation_bytes"],
                                   layers=1)
            else:
                for k in ("params", "madds", "activation_bytes"):
                    g[k] += r[k]
                g["layers"] += 1
        return list(groups.values())

    def to_string(self, depth=None):
        rows = self.rows if depth is None else self.grouped(depth)
        w = max([len(r["name"]) for r in rows] + [5])
        kw = max([len(r.get("kind", r["op"])) for r in rows] + [4])
        shape = lambda s: "x".join(str(d) for d in s)  # noqa: E731
        sw = max([len(shape(r["input_shape"])) for r in rows] + [len(shape(r["output_shape"])) for r in rows] + [6])
        res = "x".join(str(d) for d in self.input_size[1:])
        cols = (f"{'layer':<{w}}  {'kind':<{kw}}  {'input':>{sw}}  {'output':>{sw}} {'params':>11} {'MAdds':>14} "
                f"{'%':>6} {'cumulative':>14} {'train mem':>10}")
        lines = [f"{self.model_name} at {res}, input {shape((1,) + self.input_size)} (batch 1)",
                 f"{HEADER}.  MAdds count conv, linear and attention products; BN, activations, pooling, "
                 "adds, biases and the SE scale are listed under 'elementwise'.",
                 "train mem: the arrays a train-mode forward keeps for backward (parameters excluded).",
                 cols, "-" * len(cols)]
        cum = 0
        for r in rows:
            cum += r["madds"]
            pct = 100.0 * r["madds"] / self.total_madds if self.total_madds else 0.0
            lines.append(f"{r['name']:<{w}}  {r.get('kind', r['op']):<{kw}}  {shape(r['input_shape']):>{sw}}  "
                         f"{shape(r['output_shape']):>{sw}} {r['params']:>11,} {r['madds']:>14,} {pct:>6.2f} "
                         f"{cum:>14,} {_mib(r['activation_bytes']):>10}")
        lines.append("-" * len(cols))
        m = self.total_madds
        lines.append(f"total params  {self.total_params:>15,}   ({self.total_params / 1e6:.3f} M)")
        lines.append(f"total MAdds   {m:>15,}   ({m / 1e6:.2f} M = {m / 1e9:.3f} G; FLOPs ≈ {2 * m / 1e9:.3f} G)"
                     + (f"; attention products {self.attention_madds:,}" if self.attention_madds else ""))
        lines.append(f"training step ≈ 3 × forward = {3 * m:,} MAdds (backward: dX and dW, each ≈ the forward)")
        lines.append(f"activation memory kept for backward (train mode, batch 1): "
                     f"{_mib(self.total_activation_bytes)}")
        if self.elementwise:
            lines.append("elementwise work, output elements visited (not in the MAdds above):")
            lines += [f"  {k:<28} {v:>14,}" for k, v in self.elementwise.items()]
        lines += self.published
        return "\n".join(lines)

    def __str__(self):
        return self.to_string(self.depth)

    __repr__ = __str__


def _mib(n):
    return f"{n / 2**20:.2f} MiB"


# ---- the forward pass that measures -------------------------------------------------------------
@contextmanager
def _recording(model):
    """Wrap every module's forward to log (name, input shape, output shape) as each call returns.

    Training-mode BN needs two values per channel; at batch 1 a BN after the global pool
    (MobileNetV4's ``norm_head``) has one, so such a call runs on the running statistics (eval
    mode), as it would have to in any batch-1 step.  The root container's own batch check is
    switched off for the same reason (its children stay in train mode).
    """
    calls, modules = [], list(model.named_modules())
    for name, m in modules:
        def hooked(x, _m=m, _name=name, _fwd=m.forward):
            one_value = (type(_m).__name__ == "BatchNorm2d" and _m.training and np.size(x) // _m.num_features < 2)
            if one_value:
                object.__setattr__(_m, "training", False)
            try:
                y = _fwd(x)
            finally:
                if one_value:
                    object.__setattr__(_m, "training", True)
            y_shape = np.shape(y) if isinstance(y, np.ndarray) else np.shape(y[-1])
            calls.append((_name, tuple(np.shape(x)), tuple(y_shape)))
            return y
        object.__setattr__(m, "forward", hooked)
    rngs = [(v, v.bit_generator.state) for _, m in modules for v in vars(m).values()
            if isinstance(v, np.random.Generator)]
    root_checks = bool(model._children)
    try:
        if root_checks:
            object.__setattr__(model, "training", False)
        yield calls
    finally:
        for _, m in modules:
            m.__dict__.pop("forward", None)
        for g, state in rngs:  # dropout masks drawn here must not shift a seeded training run
            g.bit_generator.state = state


def summary(model, input_size=(3, 224, 224), dtype=None, depth=None):
    """Per-layer table of a model at ``input_size`` = (C, H, W), batch 1.

    Runs one train-mode forward (so every layer keeps what its backward needs, which is what the
    memory column measures) and restores the model afterwards: weights, running statistics, mode,
    dtype and dropout generators are as before, the caches are freed.  ``dtype`` (default: the
    model's) is the precision of the forward pass; another dtype converts the model there and
    back, which replaces its parameter arrays.  ``depth`` sets the default grouping of ``str()``.
    Returns: a Summary (print it).
    """
    if len(input_size) != 3 or not all(isinstance(s, (int, np.integer)) and s > 0 for s in input_size):
        raise ValueError(f"summary: input_size must be (C, H, W) with positive ints, got {input_size!r}")
    old_dtype = model.dtype
    dtype = np.dtype(dtype or old_dtype)
    state, was_training = model.state_dict(), model.training
    named = dict(model.named_modules())
    try:
        if dtype != old_dtype:
            model.to(dtype)
        model.train()
        x = np.random.default_rng(0).standard_normal((1, *input_size)).astype(dtype)
        with _recording(model) as calls:
            model.forward(x)
        rows, elementwise, modules, done = [], {}, {}, set()
        seen = set()  # arrays already counted: the parameters and buffers first (a cache that refers
        _cache_bytes(list(model.parameters().values()) + list(model.buffers().values()), seen)  # to them owns nothing)
        for name, xs, ys in calls:  # in the order the calls returned: children before their container
            m = named[name]
            modules.setdefault(name, (type(m).__name__, xs, ys))
            for cat, n in _elementwise(m, xs, ys):
                elementwise[cat] = elementwise.get(cat, 0) + n
            own = int(sum(p.size for p in m._params.values())) if name not in done else 0
            madds = _layer_madds(m, xs, ys) + (int(m.attention_madds(xs)) if hasattr(m, "attention_madds") else 0)
            mem = _cache_bytes(m.__dict__.get("cache"), seen)
            done.add(name)
            if not m._children or own or madds or mem:
                rows.append(dict(name=name or type(m).__name__, op=type(m).__name__, kind=_kind(m),
                                 input_shape=xs, output_shape=ys, params=own, madds=madds, activation_bytes=mem))
    finally:
        for m in named.values():
            m._drop_cache()
        if dtype != old_dtype:
            model.to(old_dtype)
        model.load_state_dict(state)
        model.train(was_training)
    label = getattr(model, "name", None) or type(model).__name__
    s = Summary(label, input_size, rows, model.num_parameters(), _ordered(elementwise), modules,
                labels=_block_labels(model), depth=depth)
    if _is_published_config(model, input_size):
        s.published = published_lines(label, s.total_params, s.total_madds, tuple(input_size[1:]))
    return s


_ORDER = ("batchnorm",) + tuple(a.lower() for a in ACTIVATIONS) + (
    "residual add", "SE channel scale", "SE pooling (input elements)", "pooling (input elements)",
    "layer scale", "softmax", "attention scale", "bias add")


def _ordered(elementwise):
    return {k: elementwise[k] for k in sorted(elementwise, key=lambda k: (_ORDER + (k,)).index(k))}


def _block_labels(model):
    """{'blocks.i.j': 'ExtraDW' ...} and {'blocks.i': 'stage i'} from a model's plan (derived labels)."""
    plan = getattr(model, "plan", None)
    if plan is None:
        return {}
    labels = {"blocks": f"{len(plan.stages)} stages"}
    labels.update({f"blocks.{i}": f"stage {i}" for i in range(len(plan.stages))})
    labels.update({b.name: b.label for stage in plan.stages for b in stage})
    return labels


def _is_published_config(model, input_size):
    """A zoo model as published: its name's widths and depths, 1000 classes, 3 input channels."""
    name = getattr(model, "name", None)
    if name not in PUBLISHED or getattr(model, "features_only", True) or getattr(model, "num_classes", 0) != 1000 \
            or getattr(model, "in_chans", 0) != 3 or input_size[0] != 3:
        return False
    from .build import MODELS, plan
    return model.plan.describe() == plan(MODELS[name]).describe()  # not if width/depth were overridden
