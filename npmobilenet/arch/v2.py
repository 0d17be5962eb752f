"""MobileNet V2 (Sandler et al., 2018, "MobileNetV2", arXiv 1801.04381), Table 2.

Table 2 lists (t, c, n, s): expansion t, output channels c, repeats n, stride s of the first
repeat.  The t = 1 row has no expansion conv, so timm builds it as a linear depthwise-separable
block (``ds``; no skip since 32 != 16); every other row is an inverted residual (``ir``):
1x1 expand + BN + ReLU6, 3x3 depthwise (stride) + BN + ReLU6, 1x1 project + BN (linear), and a
residual when the stride is 1 and the widths agree.

Head ("conv2d 1x1" to 1280, then "avgpool 7x7", then "conv2d 1x1" to k classes): timm's
``EfficientNet`` head, conv_head 1x1 + bn2 + ReLU6 -> pool -> classifier.  The 1280 is scaled only
for width multipliers above 1 (1792 at 1.4).
"""
from .table import DS, IR, Arch

STAGES = (
    #                    t                c            n          s          Table 2 input
    (DS(dw_kernel_size=3,               out_chs=16,  repeats=1, stride=1),),  # 112^2 x 32, t = 1
    (IR(dw_kernel_size=3, exp_ratio=6, out_chs=24,  repeats=2, stride=2),),  # 112^2 x 16
    (IR(dw_kernel_size=3, exp_ratio=6, out_chs=32,  repeats=3, stride=2),),  # 56^2 x 24
    (IR(dw_kernel_size=3, exp_ratio=6, out_chs=64,  repeats=4, stride=2),),  # 28^2 x 32
    (IR(dw_kernel_size=3, exp_ratio=6, out_chs=96,  repeats=3, stride=1),),  # 14^2 x 64
    (IR(dw_kernel_size=3, exp_ratio=6, out_chs=160, repeats=3, stride=2),),  # 14^2 x 96
    (IR(dw_kernel_size=3, exp_ratio=6, out_chs=320, repeats=1, stride=1),),  # 7^2 x 160
)

V2 = Arch(
    name="mobilenetv2", paper="Sandler et al. 2018, arXiv 1801.04381, Table 2",
    stem_size=32,          # "conv2d, -, 32, 1, 2"
    act="relu6",
    stages=STAGES,
    head="conv", num_features=1280, head_scales_up=True,
)
