"""One builder for every MobileNet: walk a table (``npmobilenet.arch``), get a model.

The walk (``plan``) is the only place where a table turns into numbers, as timm's
``EfficientNetBuilder`` does.  In one pass over the rows it

* applies the width multiplier (``timm_channels`` or ``torchvision_channels``, two named rules) and
  the depth multiplier (``scale_depth``, timm's per-stage rule),
* gives a stage's stride to its first block only (later rows of a stage run at stride 1),
* records ``feature_info``: for each resolution level, the stage, the reduction (total stride so
  far), the channels and the module name, as timm records them.

``create_model`` then builds the blocks from the plan (``make_block``) and assembles the model
(``npmobilenet.model.MobileNet``).  The summary table reads the same plan.

>>> p = plan(MODELS["mobilenetv3_large_100"])
>>> [(f["stage"], f["reduction"], f["num_chs"], f["module"]) for f in p.feature_info]
[(1, 2, 16, 'blocks.0'), (2, 4, 24, 'blocks.1'), (3, 8, 40, 'blocks.2'), (5, 16, 112, 'blocks.4'), (7, 32, 960, 'blocks.6')]
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from .arch.registry import MODELS, ModelEntry, list_models, resolve  # noqa: F401  (list_models: public)
from .arch.table import CN, DS, ER, IR, MQA, UIR, label, to_block_str
from .blocks.conv_bn_act import ConvBnAct
from .blocks.depthwise_separable import DepthwiseSeparableConv
from .blocks.edge_residual import EdgeResidual
from .blocks.inverted_residual import InvertedResidual
from .blocks.universal_inverted_residual import UniversalInvertedResidual


# ---- width -------------------------------------------------------------------------------------
def make_divisible(v, divisor=8, min_value=None, round_limit=0.9):
    """Nearest multiple of ``divisor`` (halves up), at least ``min_value``, and never 10 % below ``v``.

    The rule of TF-slim, Keras, torchvision and timm: make_divisible(18) = 24 (16 < 0.9 * 18).
    """
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < round_limit * v:
        new_v += divisor
    return new_v


def round_channels(channels, multiplier=1.0, divisor=8):
    """timm's ``round_channels``: make_divisible(channels * multiplier); unchanged for multiplier 0/None."""
    return make_divisible(channels * multiplier, divisor) if multiplier else channels


def _expands(row):
    return isinstance(row, (IR, ER, UIR))


def timm_channels(row, in_chs, ref_in_chs, multiplier, exp_column="ratio"):
    """timm's rule: out = round(out * w); mid = make_divisible(in * exp_ratio) of the ACTUAL input.

    Returns (mid_chs, out_chs); ``ref_in_chs`` (the width-1.0 input) and ``exp_column`` are not used.
    """
    out = round_channels(row.out_chs, multiplier)
    mid = make_divisible(in_chs * row.exp_ratio) if _expands(row) else in_chs
    return mid, out


def torchvision_channels(row, in_chs, ref_in_chs, multiplier, exp_column="ratio"):
    """torchvision's rule: every width the paper's table gives is scaled by itself.

    V3 (``bneck_conf.adjust_channels``; the table gives an exp *size*): input, expanded and output
    widths of the width-1.0 table are each scaled, mid = make_divisible(exp_size * w) with
    exp_size = make_divisible(ref_in * exp_ratio); the last conv is 6 x its input (960/160, 576/96),
    kept as that ratio.  V2 (the table gives a ratio t): mid = round(in * t) of the scaled input,
    which is timm's rule.  Returns (mid_chs, out_chs).
    """
    if exp_column == "ratio":
        return timm_channels(row, in_chs, ref_in_chs, multiplier)
    if isinstance(row, CN) and row.out_chs % ref_in_chs == 0:
        return in_chs, in_chs * (row.out_chs // ref_in_chs)
    out = round_channels(row.out_chs, multiplier)
    mid = make_divisible(make_divisible(ref_in_chs * row.exp_ratio) * multiplier) if _expands(row) else in_chs
    return mid, out


WIDTH_RULES = {"timm": timm_channels, "torchvision": torchvision_channels}


# ---- depth -------------------------------------------------------------------------------------
def scale_depth(repeats, multiplier=1.0):
    """timm's ``_scale_stage_depth`` ('ceil'): scale a stage's total repeats, then share them out
    over its rows from the last row backwards (so the first row is the least likely to grow)."""
    total = sum(repeats)
    target = int(math.ceil(total * multiplier))
    out = []
    for r in repeats[::-1]:
        rs = max(1, round(r / total * target))
        out.append(rs)
        total -= r
        target -= rs
    return out[::-1]


# ---- the walk ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class BlockSpec:
    """One block as built: where it sits, its widths and stride, and the table row it came from."""
    stage: int
    index: int
    row: object          # the row with this block's own stride and repeats=1
    in_chs: int
    mid_chs: int
    out_chs: int
    stride: int
    act: str
    rd_channels: int | None
    has_skip: bool

    @property
    def name(self):
        return f"blocks.{self.stage}.{self.index}"

    @property
    def label(self):
        return label(self.row)


@dataclass
class Plan:
    """The walked table: stem, blocks per stage, head width, feature_info and total stride."""
    arch: object
    stem_size: int
    stem_stride: int
    stages: list = field(default_factory=list)
    feature_info: list = field(default_factory=list)
    num_features: int = 0
    total_stride: int = 1

    def describe(self, img_size=224, in_chans=3):
        """Rows of (name, label, timm string, in -> mid -> out, stride, input and output resolution).

        The labels and resolutions are derived (``table.label``, ceil(H / stride)), never typed.
        """
        res = math.ceil(img_size / self.stem_stride)
        rows = [("conv_stem", "Conv", "", f"{in_chans} -> {self.stem_size}", self.stem_stride, img_size, res)]
        for stage in self.stages:
            for b in stage:
                out = math.ceil(res / b.stride)
                rows.append((b.name, b.label, to_block_str(b.row), f"{b.in_chs} -> {b.mid_chs} -> {b.out_chs}",
                             b.stride, res, out))
                res = out
        return rows


def _check_multiplier(name, v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        raise ValueError(f"create_model: {name} must be a positive number, got {v!r}")
    return float(v)


def plan(entry, width=None, depth=None, width_rule="timm", small_input=False):
    """Walk ``entry`` (a ``ModelEntry``) into a ``Plan``.  ``width``/``depth`` override the entry's.

    small_input: for 32x32 images (CIFAR-style MobileNets): the stem and the first strided block
        run at stride 1, so the network downsamples by 8 instead of 32; parameters are unchanged.
    """
    arch = entry.arch
    w = _check_multiplier("width_mult", entry.width if width is None else width)
    d = _check_multiplier("depth_mult", entry.depth if depth is None else depth)
    if width_rule not in WIDTH_RULES:
        raise ValueError(f"create_model: width_rule must be one of {sorted(WIDTH_RULES)}, got {width_rule!r}")
    if width_rule == "torchvision" and not arch.name.startswith(("mobilenetv2", "mobilenetv3")):
        raise ValueError(f"create_model: width_rule='torchvision' applies to V2 and V3 (torchvision has no "
                         f"{arch.name}); use width_rule='timm'")
    tv = width_rule == "torchvision"
    channels = WIDTH_RULES[width_rule]
    fixed_stem = entry.fix_first_last or (not tv and w < arch.stem_fixed_below)
    stem = arch.stem_size if fixed_stem else round_channels(arch.stem_size, w)
    p = Plan(arch, stem, stem_stride=1 if small_input else 2)
    stride, in_chs, ref_in = p.stem_stride, stem, arch.stem_size
    unstrided = small_input  # the first strided block loses its stride too
    if arch.stages[0][0].stride > 1:  # timm: the stem output is the first feature level
        p.feature_info.append(dict(stage=0, reduction=stride, num_chs=stem, module="bn1"))
    for si, rows in enumerate(arch.stages):
        fix = entry.fix_first_last and si in (0, len(arch.stages) - 1)
        repeats = scale_depth([r.repeats for r in rows], 1.0 if fix else d)
        blocks = []
        for row, n in zip(rows, repeats):
            for _ in range(n):
                s = row.stride if not blocks else 1
                if s > 1 and unstrided:
                    s, unstrided = 1, False
                blocks.append(_spec(arch, row, si, len(blocks), in_chs, ref_in, w, s, channels, tv))
                in_chs, ref_in, stride = blocks[-1].out_chs, row.out_chs, stride * s
        p.stages.append(blocks)
        last = si + 1 == len(arch.stages)
        if last or arch.stages[si + 1][0].stride > 1:
            p.feature_info.append(dict(stage=si + 1, reduction=stride, num_chs=in_chs, module=f"blocks.{si}"))
    p.total_stride = stride
    nf = arch.num_features
    if tv and arch.head == "efficient":
        nf = make_divisible(nf * w)
    elif arch.head_scales_up and not entry.fix_first_last:
        nf = max(nf, round_channels(nf, w))
    p.num_features = nf
    return p


def _spec(arch, row, stage, index, in_chs, ref_in, w, stride, channels, tv):
    mid, out = channels(row, in_chs, ref_in, w, arch.exp_column)
    se = getattr(row, "se_ratio", 0.0)
    rd = (make_divisible(int(mid * se)) if tv else make_divisible(mid * se)) if se else None
    if isinstance(row, CN):
        skip = bool(row.skip) and stride == 1 and in_chs == out
    else:
        skip = stride == 1 and in_chs == out and row.skip is not False and not getattr(row, "pw_act", False)
    return BlockSpec(stage, index, replace(row, stride=stride, repeats=1), in_chs, mid, out, stride,
                     getattr(row, "act", None) or arch.act, rd, skip)


# ---- blocks from the plan ----------------------------------------------------------------------
def make_block(spec, layer_scale_init_value=None, rng=None):
    """The block module for one ``BlockSpec`` (timm's ``EfficientNetBuilder._make_block``)."""
    r, common = spec.row, dict(stride=spec.stride, act_layer=spec.act, rng=rng)
    if isinstance(r, DS):
        return DepthwiseSeparableConv(spec.in_chs, spec.out_chs, r.dw_kernel_size, noskip=r.skip is False,
                                      pw_act=r.pw_act, rd_channels=spec.rd_channels, **common)
    if isinstance(r, IR):
        return InvertedResidual(spec.in_chs, spec.mid_chs, spec.out_chs, r.dw_kernel_size,
                                noskip=r.skip is False, rd_channels=spec.rd_channels, **common)
    if isinstance(r, ER):
        return EdgeResidual(spec.in_chs, spec.mid_chs, spec.out_chs, r.exp_kernel_size,
                            noskip=r.skip is False, rd_channels=spec.rd_channels, **common)
    if isinstance(r, CN):
        return ConvBnAct(spec.in_chs, spec.out_chs, r.kernel_size, skip=bool(r.skip), **common)
    if isinstance(r, UIR):
        return UniversalInvertedResidual(spec.in_chs, spec.mid_chs, spec.out_chs, r.dw_kernel_size_start,
                                         r.dw_kernel_size_mid, r.dw_kernel_size_end, noskip=r.skip is False,
                                         rd_channels=spec.rd_channels,
                                         layer_scale_init_value=layer_scale_init_value, **common)
    if isinstance(r, MQA):
        from .blocks.mobile_attention import MobileAttention
        return MobileAttention(spec.in_chs, spec.out_chs, stride=spec.stride, dw_kernel_size=r.dw_kernel_size,
                               num_heads=r.num_heads, key_dim=r.key_dim, value_dim=r.key_dim,
                               use_multi_query=True, kv_stride=r.kv_stride, noskip=r.skip is False,
                               layer_scale_init_value=layer_scale_init_value, rng=rng)
    raise TypeError(f"make_block: no block for row {r!r}")


def create_model(name, num_classes=1000, in_chans=3, drop_rate=0.0, features_only=False, width_mult=None,
                 depth_mult=None, width_rule="timm", small_input=False, bn_eps=None, bn_momentum=None,
                 seed=None, dtype=np.float32):
    """Build a MobileNet by timm name or alias (``'mobilenetv3_large_100'``, ``'v3-large'``, ``'v4-conv-small'``).

    Inputs:
      num_classes: classifier outputs (0: no classifier; the model returns pooled features).
      in_chans: input channels.  drop_rate: dropout before the classifier.
      features_only: return the feature maps at each resolution level (strides 2 ... 32) as a list.
      width_mult / depth_mult: override the name's multipliers; width_rule: 'timm' or 'torchvision'.
      small_input: stem and first strided block at stride 1 (total stride 8), for 32x32 images.
      bn_eps / bn_momentum: BatchNorm settings (default 1e-5 / 0.1, timm's and PyTorch's).
      seed: seeds timm's initialisation.  dtype: float32 (default) or float64.
    Returns: a ``MobileNet`` whose ``state_dict()`` keys and shapes are timm's for the same name.

    >>> m = create_model("v3-small", num_classes=10)
    >>> m.num_parameters(), m(np.zeros((1, 3, 224, 224), np.float32)).shape
    (1528106, (1, 10))
    """
    canonical, entry = resolve(name)
    return build_model(entry, canonical, num_classes, in_chans, drop_rate, features_only, width_mult, depth_mult,
                       width_rule, small_input, bn_eps, bn_momentum, seed, dtype)


def build_model(entry, name=None, num_classes=1000, in_chans=3, drop_rate=0.0, features_only=False,
                width_mult=None, depth_mult=None, width_rule="timm", small_input=False, bn_eps=None,
                bn_momentum=None, seed=None, dtype=np.float32):
    """``create_model`` for any table: ``entry`` is a ``ModelEntry`` or an ``Arch`` (width 1, depth 1)."""
    from .model import MobileNet, init_weights
    entry = entry if isinstance(entry, ModelEntry) else ModelEntry(entry)
    for arg, v in (("num_classes", num_classes), ("in_chans", in_chans)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < (0 if arg == "num_classes" else 1):
            raise ValueError(f"create_model: {arg} must be a {'non-negative' if arg == 'num_classes' else 'positive'}"
                             f" int, got {v!r}")
    if isinstance(drop_rate, bool) or not isinstance(drop_rate, (int, float)) or not 0 <= drop_rate < 1:
        raise ValueError(f"create_model: drop_rate must be in [0, 1), got {drop_rate!r}")
    if np.dtype(dtype) not in (np.float32, np.float64):
        raise ValueError(f"create_model: dtype must be float32 or float64, got {np.dtype(dtype)}")
    p = plan(entry, width_mult, depth_mult, width_rule, small_input)
    rng = np.random.default_rng(seed)
    ls = p.arch.layer_scale_init_value
    stages = [[make_block(b, ls, rng) for b in stage] for stage in p.stages]
    model = MobileNet(name or p.arch.name, p, stages, num_classes=int(num_classes), in_chans=int(in_chans),
                      drop_rate=float(drop_rate), features_only=features_only, rng=rng)
    init_weights(model, rng, bn_eps=bn_eps, bn_momentum=bn_momentum)
    return model.to(dtype) if np.dtype(dtype) != np.float32 else model
