"""The architecture table: one typed, frozen row per line of a paper's table.

A MobileNet is a stem, a list of *stages* (each a tuple of rows; a row may repeat its block
``repeats`` times) and a head.  The rows use timm's block vocabulary and argument names, so every
table here can be laid beside timm's ``arch_def`` strings, and converts to and from them
losslessly (``to_block_str`` / ``parse_block_str``)::

    >>> row = parse_block_str("ir_r3_k5_s2_e3_c40_se0.25_nre")
    >>> row
    IR(dw_kernel_size=5, exp_ratio=3.0, out_chs=40, se_ratio=0.25, act='relu', repeats=3, stride=2, skip=None)
    >>> to_block_str(row)
    'ir_r3_k5_s2_e3_c40_se0.25_nre'
    >>> label(parse_block_str("uir_r1_a0_k0_s1_e2_c160"))
    'FFN'

Block kinds (timm ``_efficientnet_builder._decode_block_str``):

=====  ====================  ===========================================================
kind   row class             block
=====  ====================  ===========================================================
ds     ``DS``                depthwise-separable, linear pointwise (V2/V3 first block)
dsa    ``DS(pw_act=True)``   depthwise-separable with activation after pointwise (V1)
ir     ``IR``                inverted residual (V2, V3), optional squeeze-excite
er     ``ER``                edge residual = FusedIB (V4): full k x k expand, 1x1 project
cn     ``CN``                conv + BN + act (V3/V4 last conv, V4 Conv-S stem layers)
uir    ``UIR``               universal inverted bottleneck (V4): IB / ExtraDW / ConvNeXt / FFN
mqa    ``MQA``               mobile multi-query attention (V4 hybrids)
=====  ====================  ===========================================================

Each row's fields follow the column order of the paper table its kind comes from: V3 Table 1
(kernel, exp, out, SE, NL, s) with V2 Table 2's ``n`` (``repeats``) before the stride, and the
MNv4 tables (DW K1, DW K2, expanded, out, stride).  Expansion is timm's ``exp_ratio`` (applied to
the block's actual input width), which is what makes the width multiplier behave like timm's.

String tokens (a timm block string is ``kind`` then ``_``-separated tokens; emitted in this order):

    r repeats | a dw_kernel_size_start | k kernel | h num_heads | s stride | v kv_stride
    e exp_ratio | d key_dim (= value_dim) | p dw_kernel_size_end | c out_chs | se se_ratio
    n activation (re relu, r6 relu6, hs hard_swish) | skip / noskip
"""
from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Optional, Union

# timm's activation tokens ("_nre") and the activation names used everywhere in this package.
ACT_TOKENS = {"re": "relu", "r6": "relu6", "hs": "hard_swish"}
ACT_NAMES = ("relu", "relu6", "hard_swish", "gelu")
_TOKEN_OF_ACT = {v: k for k, v in ACT_TOKENS.items()}


@dataclass(frozen=True)
class DS:
    """Depthwise-separable block: dw k x k (stride) + BN + act, [SE], pw 1x1 + BN [+ act].

    ``pw_act`` makes it timm's ``dsa`` (V1 Table 1: "Conv dw / Conv 1x1", both with act; no skip).
    ``exp_ratio`` is only what timm wrote (its V3 strings say ``e1``): a DS block never expands.
    """
    dw_kernel_size: int
    exp_ratio: Optional[float] = None
    out_chs: int = 0
    se_ratio: float = 0.0
    act: Optional[str] = None
    repeats: int = 1
    stride: int = 1
    pw_act: bool = False
    skip: Optional[bool] = None

    @property
    def kind(self):
        return "dsa" if self.pw_act else "ds"


@dataclass(frozen=True)
class IR:
    """Inverted residual (V2 Table 2: t c n s; V3 Table 1: kernel, exp, out, SE, NL, s)."""
    dw_kernel_size: int
    exp_ratio: float
    out_chs: int
    se_ratio: float = 0.0
    act: Optional[str] = None
    repeats: int = 1
    stride: int = 1
    skip: Optional[bool] = None
    kind = "ir"


@dataclass(frozen=True)
class ER:
    """Edge residual / FusedIB (MNv4 tables: "FusedIB | - | 3x3 | expanded | out | s")."""
    exp_kernel_size: int
    exp_ratio: float
    out_chs: int
    se_ratio: float = 0.0
    act: Optional[str] = None
    repeats: int = 1
    stride: int = 1
    skip: Optional[bool] = None
    kind = "er"


@dataclass(frozen=True)
class CN:
    """Conv + BN + act, groups 1 (MNv4 tables: "Conv2D | - | k x k | - | out | s").

    ``exp_ratio`` is only what timm wrote (MNv4 Conv-S says ``e1``): a conv block never expands.
    """
    kernel_size: int
    exp_ratio: Optional[float] = None
    out_chs: int = 0
    act: Optional[str] = None
    repeats: int = 1
    stride: int = 1
    skip: Optional[bool] = None
    kind = "cn"


@dataclass(frozen=True)
class UIR:
    """Universal inverted bottleneck (MNv4 tables: DW K1, DW K2, expanded, out, stride).

    ``dw_kernel_size_start`` is the paper's DW K1 (before the expansion, on the input width; 0 =
    none) and ``dw_kernel_size_mid`` its DW K2 (after the expansion; 0 = none).
    """
    dw_kernel_size_start: int
    dw_kernel_size_mid: int
    exp_ratio: float
    out_chs: int
    act: Optional[str] = None
    repeats: int = 1
    stride: int = 1
    dw_kernel_size_end: int = 0
    se_ratio: float = 0.0
    skip: Optional[bool] = None
    kind = "uir"


@dataclass(frozen=True)
class MQA:
    """Mobile multi-query attention (MNv4 hybrid tables: heads, key/value dim, kv stride, out, s).

    ``dw_kernel_size`` is the kernel of the key/value downsampling depthwise convs (used when
    ``kv_stride > 1``).  timm's ``d`` sets both key_dim and value_dim.
    """
    num_heads: int
    key_dim: int
    kv_stride: int = 1
    out_chs: int = 0
    repeats: int = 1
    stride: int = 1
    dw_kernel_size: int = 3
    skip: Optional[bool] = None
    kind = "mqa"


Row = Union[DS, IR, ER, CN, UIR, MQA]
ROW_TYPES = (DS, IR, ER, CN, UIR, MQA)


@dataclass(frozen=True)
class Arch:
    """A whole network: stem, stages of rows, head.

    head: ``"pool"``      pool -> classifier (V1);
          ``"conv"``      conv_head 1x1 + bn2 + act -> pool -> classifier (V2, timm ``EfficientNet``);
          ``"efficient"`` pool -> conv_head 1x1 with bias -> act -> classifier (V3, no BN);
          ``"efficient_norm"`` pool -> conv_head 1x1 -> norm_head BN + act -> classifier (V4).
    stem_fixed_below: the stem width is not scaled for width multipliers below this (timm
        ``fix_stem``: V3 0.75, V4 1.0; 0 = always scaled).
    head_scales_up: the head width becomes max(num_features, round(num_features * w)) (V1h, V2);
        otherwise it is fixed.
    exp_column: how the paper's table gives the expansion: "ratio" (V2's t) or "size" (V3's exp
        size, V4's expanded dim).  The rows always hold timm's ratio; torchvision's width rule
        scales a table *size* but multiplies a *ratio* by the scaled input.
    """
    name: str
    paper: str
    stem_size: int
    act: str
    stages: tuple
    head: str
    num_features: int = 0
    stem_fixed_below: float = 0.0
    head_scales_up: bool = False
    layer_scale_init_value: Optional[float] = None
    exp_column: str = "ratio"

    def __post_init__(self):
        if self.head not in ("pool", "conv", "efficient", "efficient_norm"):
            raise ValueError(f"Arch {self.name}: unknown head {self.head!r}")
        if self.exp_column not in ("ratio", "size"):
            raise ValueError(f"Arch {self.name}: exp_column must be 'ratio' or 'size', got {self.exp_column!r}")
        if self.act not in ACT_NAMES:
            raise ValueError(f"Arch {self.name}: unknown activation {self.act!r}; expected one of {ACT_NAMES}")
        for stage in self.stages:
            for row in stage:
                validate_row(row)

    def arch_def(self):
        """timm's ``arch_def``: a list (stages) of lists of block strings."""
        return [[to_block_str(row) for row in stage] for stage in self.stages]


def validate_row(row):
    """Raise ValueError for a row that no timm block could be built from."""
    if not isinstance(row, ROW_TYPES):
        raise TypeError(f"table row must be one of {[t.__name__ for t in ROW_TYPES]}, got {type(row).__name__}")
    name = type(row).__name__
    if row.repeats < 1 or row.stride not in (1, 2):
        raise ValueError(f"{name}: repeats must be >= 1 and stride 1 or 2, got {row}")
    if row.out_chs < 1:
        raise ValueError(f"{name}: out_chs must be a positive channel count, got {row}")
    if getattr(row, "act", None) not in (None,) + ACT_NAMES:
        raise ValueError(f"{name}: unknown activation {row.act!r}; expected one of {ACT_NAMES}")
    if isinstance(row, (DS, CN)) and row.exp_ratio not in (None, 1.0):
        raise ValueError(f"{name}: a {row.kind} block does not expand; exp_ratio must be absent or 1, got {row}")
    if isinstance(row, DS) and row.pw_act and row.skip is not None:
        raise ValueError(f"DS: a dsa block (pw_act=True) never has a skip in timm; leave skip=None, got {row}")
    if isinstance(row, UIR) and row.stride > 1 and not (row.dw_kernel_size_start or row.dw_kernel_size_mid
                                                        or row.dw_kernel_size_end):
        raise ValueError(f"UIR: a stride-2 block needs a depthwise conv to carry the stride, got {row}")
    return row


# ---- timm block strings ---------------------------------------------------------------------------
# token -> field name, per kind; the order of _ORDER is the order tokens are written in.
_ORDER = ("r", "a", "k", "h", "s", "v", "e", "d", "p", "c", "se")
_FIELDS = {
    DS: {"r": "repeats", "k": "dw_kernel_size", "s": "stride", "e": "exp_ratio", "c": "out_chs",
         "se": "se_ratio"},
    IR: {"r": "repeats", "k": "dw_kernel_size", "s": "stride", "e": "exp_ratio", "c": "out_chs",
         "se": "se_ratio"},
    ER: {"r": "repeats", "k": "exp_kernel_size", "s": "stride", "e": "exp_ratio", "c": "out_chs",
         "se": "se_ratio"},
    CN: {"r": "repeats", "k": "kernel_size", "s": "stride", "e": "exp_ratio", "c": "out_chs"},
    UIR: {"r": "repeats", "a": "dw_kernel_size_start", "k": "dw_kernel_size_mid", "s": "stride",
          "e": "exp_ratio", "p": "dw_kernel_size_end", "c": "out_chs", "se": "se_ratio"},
    MQA: {"r": "repeats", "k": "dw_kernel_size", "h": "num_heads", "s": "stride", "v": "kv_stride",
          "d": "key_dim", "c": "out_chs"},
}
_FLOAT_FIELDS = {"exp_ratio", "se_ratio"}
_KINDS = {"ds": DS, "dsa": DS, "ir": IR, "er": ER, "cn": CN, "uir": UIR, "mqa": MQA}
# Tokens timm requires in a string of each kind.
_REQUIRED = {DS: ("r", "k", "c"), IR: ("r", "k", "e", "c"), ER: ("r", "k", "e", "c"), CN: ("r", "k", "c"),
             UIR: ("r", "k", "e", "c"), MQA: ("r", "k", "h", "d", "c")}
# Tokens a row of each kind writes even when they hold the default (timm's own strings do).
_ALWAYS = {DS: ("r", "k", "s", "c"), IR: ("r", "k", "s", "e", "c"), ER: ("r", "k", "s", "e", "c"),
           CN: ("r", "k", "s", "c"), UIR: ("r", "a", "k", "s", "e", "c"),
           MQA: ("r", "k", "h", "s", "d", "c")}


def _num(v):
    """6.0 -> '6', 2.5 -> '2.5', 3.67 -> '3.67' (repr keeps every float exact)."""
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def to_block_str(row):
    """The timm block string of a row, e.g. ``IR(5, 3, 40, 0.25, 'relu', 3, 2)`` -> ``ir_r3_k5_s2_e3_c40_se0.25_nre``."""
    validate_row(row)
    cls = type(row)
    defaults = {f.name: f.default for f in fields(cls)}
    parts = [row.kind]
    for tok in _ORDER:
        name = _FIELDS[cls].get(tok)
        if name is None:
            continue
        v = getattr(row, name)
        if v is None or (tok not in _ALWAYS[cls] and v == defaults[name]):
            continue
        parts.append(tok + _num(v))
    if getattr(row, "act", None) is not None:
        if row.act not in _TOKEN_OF_ACT:
            raise ValueError(f"to_block_str: activation {row.act!r} has no timm block-string token")
        parts.append("n" + _TOKEN_OF_ACT[row.act])
    if row.skip is not None:
        parts.append("skip" if row.skip else "noskip")
    return "_".join(parts)


def parse_block_str(s):
    """A timm block string -> its row.  Raises ValueError naming the bad token."""
    if not isinstance(s, str) or not s:
        raise ValueError(f"parse_block_str: expected a block string such as 'ir_r1_k3_s2_e6_c24', got {s!r}")
    kind, *tokens = s.split("_")
    if kind not in _KINDS:
        raise ValueError(f"parse_block_str({s!r}): unknown block kind {kind!r}; expected one of {sorted(_KINDS)}")
    cls = _KINDS[kind]
    by_token = _FIELDS[cls]
    kw = {"pw_act": True} if kind == "dsa" else {}
    for tok in tokens:
        if tok in ("skip", "noskip"):
            kw["skip"] = tok == "skip"
            continue
        if tok.startswith("n") and tok[1:] in ACT_TOKENS:
            kw["act"] = ACT_TOKENS[tok[1:]]
            continue
        m = re.fullmatch(r"([a-z]+)(\d+(?:\.\d+)?)", tok)
        if m is None or m.group(1) not in by_token:
            raise ValueError(f"parse_block_str({s!r}): token {tok!r} is not understood for a {kind!r} block "
                             f"(known: {', '.join(sorted(by_token))}, n{{re,r6,hs}}, skip, noskip)")
        name, value = by_token[m.group(1)], m.group(2)
        kw[name] = float(value) if name in _FLOAT_FIELDS else _int(value, s, tok)
    for tok in _REQUIRED[cls]:
        if by_token[tok] not in kw:
            raise ValueError(f"parse_block_str({s!r}): missing the {tok!r} token ({by_token[tok]})")
    kw.setdefault("stride", 1)
    if kind == "dsa":
        kw.pop("skip", None)  # timm: a dsa block never has a skip, whatever the string says
    return validate_row(cls(**kw))


def _int(value, s, tok):
    if "." in value:
        raise ValueError(f"parse_block_str({s!r}): token {tok!r} needs an integer")
    return int(value)


def from_arch_def(arch_def):
    """timm's ``arch_def`` (list of lists of strings) -> a tuple of stages of rows."""
    return tuple(tuple(parse_block_str(s) for s in stage) for stage in arch_def)


# ---- human labels, derived from the row data (never typed by hand) -------------------------------
def label(row):
    """What the papers call the block: DS, IR, FusedIB, Conv, IB/ExtraDW/ConvNeXt/FFN, MQA."""
    if isinstance(row, UIR):
        a, k = row.dw_kernel_size_start, row.dw_kernel_size_mid
        name = {(True, True): "ExtraDW", (False, True): "IB", (True, False): "ConvNeXt",
                (False, False): "FFN"}[(bool(a), bool(k))]
        return name + ("+DWend" if row.dw_kernel_size_end else "")
    if isinstance(row, MQA):
        return "MQA"
    name = {DS: "DS", IR: "IR", ER: "FusedIB", CN: "Conv"}[type(row)]
    return name + ("-SE" if getattr(row, "se_ratio", 0.0) else "")
