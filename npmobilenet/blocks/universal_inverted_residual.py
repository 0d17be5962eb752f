"""Universal Inverted Bottleneck (Qin et al., 2024, "MobileNetV4", Sec. 3.1, Fig. 4): timm
``UniversalInvertedResidual`` (``uir`` rows).  Two optional depthwise convs around an inverted
bottleneck; which are present gives the four modes (``arch.table.label``):

    dw_start  a x a depthwise on in, + BN, NO act      present iff a > 0   (ConvNeXt, ExtraDW)
    pw_exp    1x1, in -> mid, + BN + act                 mid = make_divisible(in * exp_ratio)
    dw_mid    k x k depthwise on mid, + BN + act         present iff k > 0   (IB, ExtraDW)
    [se]
    pw_proj   1x1, mid -> out, + BN, linear
    dw_end    p x p depthwise on out, + BN, no act       present iff p > 0 (no released model)
    layer_scale  y * gamma (C,)                          MNv4 hybrids only
    + x       when stride 1 and in == out

    a, k > 0: ExtraDW     a = 0, k > 0: IB     a > 0, k = 0: ConvNeXt     a = k = 0: FFN

The stride goes on dw_mid when it exists, else on dw_start, else on dw_end (timm, and TF's
``middle_dw_downsample=True``).  Each conv+BN(+act) is a ``ConvNormAct`` child, so the keys are
``dw_start.conv.weight``, ``dw_start.bn.weight`` ..., ``layer_scale.gamma``: timm's.
"""
from ..ops.residual import LayerScale2d
from ..ops.squeeze_excite import SqueezeExcite
from .base import ChainBlock, as_rng
from .conv_bn_act import ConvNormAct


class UniversalInvertedResidual(ChainBlock):
    """timm ``UniversalInvertedResidual``; ``mid_chs`` expanded width; ``rd_channels`` SE squeeze (None: no SE)."""

    def __init__(self, in_chs, mid_chs, out_chs, dw_kernel_size_start=0, dw_kernel_size_mid=3,
                 dw_kernel_size_end=0, stride=1, noskip=False, act_layer="relu", rd_channels=None,
                 layer_scale_init_value=None, rng=None):
        rng = as_rng(rng)
        if stride > 1 and not (dw_kernel_size_start or dw_kernel_size_mid or dw_kernel_size_end):
            raise ValueError(f"UniversalInvertedResidual({in_chs}->{out_chs}): stride {stride} needs a "
                             "depthwise conv to carry it (dw_kernel_size_start, _mid or _end > 0)")
        unit = dict(act_layer=act_layer, rng=rng)
        layers = {}
        if dw_kernel_size_start:
            layers["dw_start"] = ConvNormAct(in_chs, in_chs, dw_kernel_size_start,
                                             stride=1 if dw_kernel_size_mid else stride, groups=in_chs,
                                             apply_act=False, **unit)
        layers["pw_exp"] = ConvNormAct(in_chs, mid_chs, 1, **unit)
        if dw_kernel_size_mid:
            layers["dw_mid"] = ConvNormAct(mid_chs, mid_chs, dw_kernel_size_mid, stride=stride, groups=mid_chs,
                                           **unit)
        if rd_channels:
            layers["se"] = SqueezeExcite(mid_chs, rd_channels, rng=rng)
        layers["pw_proj"] = ConvNormAct(mid_chs, out_chs, 1, apply_act=False, **unit)
        if dw_kernel_size_end:
            end_stride = stride if not (dw_kernel_size_start or dw_kernel_size_mid) else 1
            layers["dw_end"] = ConvNormAct(out_chs, out_chs, dw_kernel_size_end, stride=end_stride,
                                           groups=out_chs, apply_act=False, **unit)
        if layer_scale_init_value is not None:
            layers["layer_scale"] = LayerScale2d(out_chs, layer_scale_init_value)
        super().__init__(layers, in_chs, out_chs, has_skip=stride == 1 and in_chs == out_chs and not noskip)
