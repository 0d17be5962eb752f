"""Depthwise-separable block (Howard et al., 2017, "MobileNets", Sec. 3.1, Fig. 3): timm
``DepthwiseSeparableConv`` (``ds`` / ``dsa`` rows).

    conv_dw  k x k depthwise, stride s      (N, C, H, W) -> (N, C, H/s, W/s)
    bn1, act1
    [se]     squeeze-excite on C            (V3-Small's first block)
    conv_pw  1x1, C -> out
    bn2, [act2]                             act only for ``pw_act`` (V1's ``dsa``); linear otherwise
    + x      when stride 1, C == out and not noskip (timm: never for ``dsa``)

A standard k x k conv C -> out costs k^2 C out per pixel; this costs k^2 C + C out, a
reduction of 1/out + 1/k^2 (paper eq. 5): about 8-9x fewer MAdds for k = 3.
"""
from ..ops.batchnorm import BatchNorm2d
from ..ops.conv import Conv2d
from ..ops.squeeze_excite import SqueezeExcite
from .base import ChainBlock, as_rng, make_act


class DepthwiseSeparableConv(ChainBlock):
    """timm ``DepthwiseSeparableConv``; ``rd_channels``: SE squeeze width (None: no SE)."""

    def __init__(self, in_chs, out_chs, dw_kernel_size=3, stride=1, noskip=False, pw_act=False,
                 act_layer="relu", rd_channels=None, rng=None):
        rng = as_rng(rng)
        layers = {"conv_dw": Conv2d(in_chs, in_chs, dw_kernel_size, stride=stride, groups=in_chs, rng=rng),
                  "bn1": BatchNorm2d(in_chs),
                  "act1": make_act(act_layer)}
        if rd_channels:
            layers["se"] = SqueezeExcite(in_chs, rd_channels, rng=rng)
        layers["conv_pw"] = Conv2d(in_chs, out_chs, 1, rng=rng)
        layers["bn2"] = BatchNorm2d(out_chs)
        if pw_act:
            layers["act2"] = make_act(act_layer)
        has_skip = stride == 1 and in_chs == out_chs and not noskip and not pw_act
        super().__init__(layers, in_chs, out_chs, has_skip)
