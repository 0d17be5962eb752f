"""Conv + BN + activation units: timm's ``ConvNormAct`` (inside UIB) and ``ConvBnAct`` (the ``cn`` block).

The two compute the same thing and differ only in their names, which are timm's keys:
``ConvNormAct`` -> ``conv.weight``, ``bn.*`` (``blocks.i.j.pw_exp.conv.weight``);
``ConvBnAct``   -> ``conv.weight``, ``bn1.*`` (``blocks.4.0.conv.weight``, the V3/V4 last conv, and
MNv4 Conv-S's first four layers).  The conv is a full (groups 1) conv unless ``groups`` says
otherwise; no bias (BN follows).
"""
from ..ops.batchnorm import BatchNorm2d
from ..ops.conv import Conv2d
from .base import ChainBlock, as_rng, make_act


class ConvNormAct(ChainBlock):
    """k x k conv (stride, groups) -> BN -> act (``apply_act=False``: none).  timm ``ConvNormAct``."""

    def __init__(self, in_chs, out_chs, kernel_size, stride=1, groups=1, apply_act=True, act_layer="relu",
                 rng=None):
        rng = as_rng(rng)
        layers = {"conv": Conv2d(in_chs, out_chs, kernel_size, stride=stride, groups=groups, rng=rng),
                  "bn": BatchNorm2d(out_chs)}
        if apply_act:
            layers["act"] = make_act(act_layer)
        super().__init__(layers, in_chs, out_chs, has_skip=False)


class ConvBnAct(ChainBlock):
    """timm ``ConvBnAct`` (``cn`` rows): conv k x k (stride) -> bn1 -> act1, skip only if asked for."""

    def __init__(self, in_chs, out_chs, kernel_size, stride=1, skip=False, act_layer="relu", rng=None):
        rng = as_rng(rng)
        layers = {"conv": Conv2d(in_chs, out_chs, kernel_size, stride=stride, rng=rng),
                  "bn1": BatchNorm2d(out_chs),
                  "act1": make_act(act_layer)}
        super().__init__(layers, in_chs, out_chs, has_skip=skip and stride == 1 and in_chs == out_chs)
