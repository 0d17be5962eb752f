"""Edge residual, a.k.a. FusedIB / FusedMBConv (Gupta & Tan, 2019, "EfficientNet-EdgeTPU"; MNv4's
first stage): timm ``EdgeResidual`` (``er`` rows).  The expansion and the spatial mixing are fused
into one full k x k conv, which runs faster than 1x1 + depthwise on accelerators at high resolution.

    conv_exp  k x k full conv, in -> mid, stride s     (mid = make_divisible(in * exp_ratio))
    bn1, act1
    [se]
    conv_pwl  1x1, mid -> out, linear
    bn2
    + x       when stride 1 and in == out
"""
from ..ops.batchnorm import BatchNorm2d
from ..ops.conv import Conv2d
from ..ops.squeeze_excite import SqueezeExcite
from .base import ChainBlock, as_rng, make_act


class EdgeResidual(ChainBlock):
    """timm ``EdgeResidual``; ``mid_chs`` is the expanded width, ``rd_channels`` the SE squeeze (None: no SE)."""

    def __init__(self, in_chs, mid_chs, out_chs, exp_kernel_size=3, stride=1, noskip=False,
                 act_layer="relu", rd_channels=None, rng=None):
        rng = as_rng(rng)
        layers = {"conv_exp": Conv2d(in_chs, mid_chs, exp_kernel_size, stride=stride, rng=rng),
                  "bn1": BatchNorm2d(mid_chs), "act1": make_act(act_layer)}
        if rd_channels:
            layers["se"] = SqueezeExcite(mid_chs, rd_channels, rng=rng)
        layers["conv_pwl"] = Conv2d(mid_chs, out_chs, 1, rng=rng)
        layers["bn2"] = BatchNorm2d(out_chs)
        super().__init__(layers, in_chs, out_chs, has_skip=stride == 1 and in_chs == out_chs and not noskip)
