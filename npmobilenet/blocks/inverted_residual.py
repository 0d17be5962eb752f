"""Inverted residual block (Sandler et al., 2018, "MobileNetV2", Sec. 3.3, Table 1; with the SE of
Howard et al., 2019, "MobileNetV3", Fig. 4): timm ``InvertedResidual`` (``ir`` rows).

    conv_pw   1x1, in -> mid                 expand (mid = make_divisible(in * exp_ratio))
    bn1, act1
    conv_dw   k x k depthwise on mid, stride s
    bn2, act2
    [se]      squeeze-excite on mid (V3: after the depthwise, before the projection)
    conv_pwl  1x1, mid -> out                project: linear, no activation (the "linear bottleneck")
    bn3
    + x       when stride 1 and in == out (the residual joins the thin bottlenecks)
"""
from ..ops.batchnorm import BatchNorm2d
from ..ops.conv import Conv2d
from ..ops.squeeze_excite import SqueezeExcite
from .base import ChainBlock, as_rng, make_act


class InvertedResidual(ChainBlock):
    """timm ``InvertedResidual``; ``mid_chs`` is the expanded width, ``rd_channels`` the SE squeeze (None: no SE)."""

    def __init__(self, in_chs, mid_chs, out_chs, dw_kernel_size=3, stride=1, noskip=False,
                 act_layer="relu", rd_channels=None, rng=None):
        rng = as_rng(rng)
        layers = {"conv_pw": Conv2d(in_chs, mid_chs, 1, rng=rng), "bn1": BatchNorm2d(mid_chs),
                  "act1": make_act(act_layer),
                  "conv_dw": Conv2d(mid_chs, mid_chs, dw_kernel_size, stride=stride, groups=mid_chs, rng=rng),
                  "bn2": BatchNorm2d(mid_chs), "act2": make_act(act_layer)}
        if rd_channels:
            layers["se"] = SqueezeExcite(mid_chs, rd_channels, rng=rng)
        layers["conv_pwl"] = Conv2d(mid_chs, out_chs, 1, rng=rng)
        layers["bn3"] = BatchNorm2d(out_chs)
        super().__init__(layers, in_chs, out_chs, has_skip=stride == 1 and in_chs == out_chs and not noskip)
