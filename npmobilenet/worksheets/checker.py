"""Facts about each layer of a real network, and the comparison of a formula with the library's counts.

A *fact sheet* ``L`` is what a person reads off the paper's table for one layer (channels, kernel,
stride, input size ...); a formula maps it to ``(params, madds)``.  The library's numbers come from
``npmobilenet.summary`` rows: a layer's own row, or for a block (SE, UIB, MQA) the sum of the rows
of everything inside it, so a formula must account for every parameter the block holds (BN's γ
and β included) and every product it computes.
"""
from __future__ import annotations

from types import SimpleNamespace

# kind -> (what it is, the facts a formula receives)
KINDS = {
    "standard_conv": ("full k x k convolution (groups = 1, k > 1): the stems, MNv4's FusedIB and Conv-S layers",
                      "c_in, c_out, k, stride, h_in, w_in, bias"),
    "pointwise": ("1 x 1 convolution (groups = 1): expansions, projections, heads",
                  "c_in, c_out, stride, h_in, w_in, bias"),
    "depthwise": ("k x k depthwise convolution (groups = channels)", "c, k, stride, h_in, w_in, bias"),
    "batchnorm": ("batch normalisation (folded into the conv at inference)", "c, h, w"),
    "classifier": ("fully connected layer on pooled features", "in_features, out_features, bias"),
    "se": ("squeeze-and-excite block: pool, 1x1 C->S (bias), ReLU, 1x1 S->C (bias), hard-sigmoid, scale",
           "c, rd, h, w"),
    "uib": ("MobileNetV4 universal inverted bottleneck (a = start dw kernel, k = middle dw kernel; 0 = absent)",
            "c_in, mid, c_out, a, k, stride, h_in, w_in, layer_scale"),
    "mqa": ("MobileNetV4 Mobile MQA block: BN, q (C->h*d), k and v (C->d, after a stride-v depthwise+BN "
            "when v > 1), attention, output (h*d->C), layer scale", "c, heads, key_dim, value_dim, kv_stride, "
            "dw_k, h, w, layer_scale"),
}

# (model name, input resolution): the paper's resolution for each.  Conv-L/Hybrid-L are checked at
# 224 instead of 384 only to keep the worksheet fast; formulas take the size as a fact.
NETWORKS = [("mobilenetv1_100", 224), ("mobilenetv2_100", 224), ("mobilenetv3_large_100", 224),
            ("mobilenetv3_small_100", 224), ("mobilenetv4_conv_small", 224), ("mobilenetv4_conv_medium", 256),
            ("mobilenetv4_hybrid_medium", 256)]


def _conv_kind(m):
    k = m.kernel_size[0]
    if m.groups == 1:
        return "pointwise" if m.kernel_size == (1, 1) else "standard_conv"
    if m.groups == m.in_channels == m.out_channels:
        return "depthwise"
    return None  # grouped convs: none in the MobileNets


def _conv_facts(m, x_shape):
    bias = "bias" in m._params
    k = m.kernel_size[0]
    if m.groups > 1:
        return dict(c=m.in_channels, k=k, stride=m.stride[0], h_in=x_shape[2], w_in=x_shape[3], bias=bias)
    f = dict(c_in=m.in_channels, c_out=m.out_channels, stride=m.stride[0], h_in=x_shape[2], w_in=x_shape[3],
             bias=bias)
    if k > 1:
        f["k"] = k
    return f


def _uib_facts(m, x_shape):
    ch = dict(m.named_children())
    a = ch["dw_start"].conv.kernel_size[0] if "dw_start" in ch else 0
    k = ch["dw_mid"].conv.kernel_size[0] if "dw_mid" in ch else 0
    stride = max(c.conv.stride[0] for n, c in ch.items() if n.startswith("dw_") or n.startswith("pw_"))
    return dict(c_in=m.in_chs, mid=ch["pw_exp"].conv.out_channels, c_out=m.out_chs, a=a, k=k, stride=stride,
                h_in=x_shape[2], w_in=x_shape[3], layer_scale="layer_scale" in ch)


def _mqa_facts(m, x_shape):
    at = m.attn
    return dict(c=m.in_chs, heads=at.num_heads, key_dim=at.key_dim, value_dim=at.value_dim,
                kv_stride=at.kv_stride, dw_k=at.dw_kernel_size, h=x_shape[2], w=x_shape[3],
                layer_scale=m.layer_scale is not None)


def _kind_and_facts(m, x_shape):
    t = type(m).__name__
    if t == "Conv2d":
        kind = _conv_kind(m)
        return (kind, _conv_facts(m, x_shape)) if kind else (None, None)
    if t == "BatchNorm2d":
        return "batchnorm", dict(c=m.num_features, h=x_shape[2], w=x_shape[3])
    if t == "Linear":
        out_f, in_f = m.weight.shape
        return "classifier", dict(in_features=in_f, out_features=out_f, bias="bias" in m._params)
    if t == "SqueezeExcite":
        return "se", dict(c=m.channels, rd=m.rd_channels, h=x_shape[2], w=x_shape[3])
    if t == "UniversalInvertedResidual":
        return "uib", _uib_facts(m, x_shape)
    if t == "MobileAttention":
        return "mqa", _mqa_facts(m, x_shape)
    return None, None


class Network:
    """One real network at one resolution: its model, its ``summary`` and its layers' fact sheets."""

    _cache = {}

    def __init__(self, name, resolution):
        from .. import create_model, summary
        self.name, self.resolution = name, resolution
        self.model = create_model(name)
        self.summary = summary(self.model, (3, resolution, resolution))
        rows = self.summary.rows
        modules = dict(self.model.named_modules())
        self.layers = []  # (kind, fact sheet, library params, library madds)
        for name_, m in modules.items():
            idx = [i for i, r in enumerate(rows) if r["name"] == name_ or r["name"].startswith(name_ + ".")]
            if not name_ or not idx:
                continue
            inside = [rows[i] for i in idx]
            own = [r for r in inside if r["name"] == name_]
            x_shape = (own or inside)[0]["input_shape"]
            if type(m).__name__ == "SqueezeExcite":   # its first row (conv_reduce) sees the pooled map:
                x_shape = rows[idx[0] - 1]["output_shape"]  # the SE's input is what the layer before made
            kind, facts = _kind_and_facts(m, x_shape)
            if kind is None:
                continue
            sheet = SimpleNamespace(name=name_, **facts)
            self.layers.append((kind, sheet, sum(r["params"] for r in inside), sum(r["madds"] for r in inside)))

    @classmethod
    def get(cls, name, resolution):
        """A cached Network (building a model and its summary takes a few seconds)."""
        key = (name, resolution)
        if key not in cls._cache:
            cls._cache[key] = cls(name, resolution)
        return cls._cache[key]

    def __repr__(self):
        return f"Network({self.name!r} @ {self.resolution})"


def layers(kind, networks=None):
    """[(network, fact sheet, library params, library MAdds)] for every layer of ``kind``."""
    if kind not in KINDS:
        raise ValueError(f"unknown layer kind {kind!r}; choose from {', '.join(KINDS)}")
    out = []
    for name, res in networks or NETWORKS:
        net = Network.get(name, res)
        out += [(net, sheet, p, m) for k, sheet, p, m in net.layers if k == kind]
    return out


class CheckResult:
    """Per network: layers that agree / total; the disagreements with both numbers."""

    def __init__(self, kind, written):
        self.kind, self.written = kind, written
        self.per_network = {}   # network label -> [agree, total]
        self.mismatches = []    # (network label, fact sheet, yours, library's)

    @property
    def passed(self):
        return self.written and not self.mismatches and bool(self.per_network)

    def __str__(self):
        if self.written and not self.per_network:
            return f"{self.kind}: no layers of this kind in the networks checked"
        if not self.written:
            return (f"{self.kind}: not written yet (the formula returned None); fill it in and run the check "
                    f"again.  Facts available: {KINDS[self.kind][1]}")
        lines = [f"{self.kind}: {'ALL AGREE' if self.passed else 'DISAGREES'} with npmobilenet.summary"]
        for label, (agree, total) in self.per_network.items():
            lines.append(f"  {label:<34} {agree:>4} / {total:<4} layers agree")
        for label, sheet, yours, lib in self.mismatches[:8]:
            facts = ", ".join(f"{k}={v}" for k, v in vars(sheet).items() if k != "name")
            lines.append(f"  x {label} {sheet.name} ({facts}):\n      yours (params, MAdds) = {yours}, "
                         f"library = {lib}")
        if len(self.mismatches) > 8:
            lines.append(f"  ... and {len(self.mismatches) - 8} more")
        return "\n".join(lines)

    __repr__ = __str__


def check(kind, formula, networks=None, strict=True, verbose=True):
    """Compare ``formula(L) -> (params, madds)`` with the library on every ``kind`` layer.

    A formula that returns None counts as not written yet (nothing fails).  With ``strict`` a
    written formula that disagrees anywhere raises AssertionError after printing the table.
    """
    result = CheckResult(kind, written=True)
    for net, sheet, p, m in layers(kind, networks):
        yours = formula(sheet)
        if yours is None or (isinstance(yours, tuple) and None in yours):
            result.written = False
            break
        label = f"{net.name} @ {net.resolution}"
        agree = tuple(int(v) for v in yours) == (p, m)
        counts = result.per_network.setdefault(label, [0, 0])
        counts[0] += agree
        counts[1] += 1
        if not agree:
            result.mismatches.append((label, sheet, tuple(yours), (p, m)))
    if verbose:
        print(result)
    if strict and result.written and result.mismatches:
        raise AssertionError(f"the {kind} formula disagrees with the library on {len(result.mismatches)} layers")
    return result


def check_all(formulas, networks=None, strict=True, verbose=True):
    """``check`` every kind in ``formulas`` ({kind: formula}); returns {kind: CheckResult}."""
    return {kind: check(kind, f, networks, strict=strict, verbose=verbose) for kind, f in formulas.items()}


LEAF_KINDS = ("standard_conv", "pointwise", "depthwise", "batchnorm", "classifier")


def check_total(formulas, name, resolution, verbose=True):
    """Sum the leaf formulas (convs, BN, classifier) over a whole network; compare with its totals.

    Only for networks made of those layers alone (V1, V2, V3, MNv4 Conv-*): the hybrids also hold
    layer scales and attention products.  Returns ((params, madds) yours, (params, madds) library).
    """
    net = Network.get(name, resolution)
    leaf_types = {"Conv2d", "BatchNorm2d", "Linear"}
    others = [r for r in net.summary.rows if (r["params"] or r["madds"]) and r["op"] not in leaf_types]
    if others:
        raise ValueError(f"check_total: {name} has layers no leaf formula covers: "
                         f"{', '.join(sorted({r['op'] for r in others}))}")
    params = madds = 0
    for kind, sheet, _, _ in net.layers:
        if kind in LEAF_KINDS:
            yours = formulas[kind](sheet)
            if yours is None or None in tuple(yours):
                if verbose:
                    print(f"check_total: the {kind} formula is not written yet")
                return None
            params, madds = params + yours[0], madds + yours[1]
    lib = (net.summary.total_params, net.summary.total_madds)
    if verbose:
        print(f"{name} @ {resolution}: yours {params:,} params, {madds:,} MAdds; library {lib[0]:,} params, "
              f"{lib[1]:,} MAdds: {'AGREE' if (params, madds) == lib else 'DISAGREE'}")
    return (params, madds), lib
