"""MobileNet V3 (Howard et al., 2019, "Searching for MobileNetV3", arXiv 1905.02244), Tables 1, 2.

The paper's columns are: operator (kernel), exp size, #out, SE, NL (RE = ReLU, HS = hard-swish),
s.  The rows keep timm's *expansion ratio* (exp size / input width) rather than the absolute exp
size, because timm's width multiplier rounds ``input * ratio`` (the paper's exp size is in the
comment).  ``act=None`` means the model default, hard-swish; ``'relu'`` is the paper's RE.
SE squeezes to ``make_divisible(exp * 0.25)`` channels (ReLU inside, hard-sigmoid gate).

The first row has exp size = input (no expansion conv): timm builds it as a depthwise-separable
block (``ds``).  Last conv ("conv2d 1x1, 960 / 576, HS") is a ``cn`` row; then the "efficient
head": pool -> 1x1 conv with bias, no BN (1280 / 1024) -> HS -> classifier.
"""
from .table import CN, DS, IR, Arch

_RE = "relu"

# Table 1 (Large), input 224.                                                        exp size, in
LARGE = (
    (DS(dw_kernel_size=3, exp_ratio=1, out_chs=16, act=_RE, stride=1),),             # 16,  112^2 x 16
    (IR(dw_kernel_size=3, exp_ratio=4, out_chs=24, act=_RE, stride=2),               # 64,  112^2 x 16
     IR(dw_kernel_size=3, exp_ratio=3, out_chs=24, act=_RE, stride=1)),              # 72,  56^2 x 24
    (IR(dw_kernel_size=5, exp_ratio=3, out_chs=40, se_ratio=0.25, act=_RE, repeats=3, stride=2),),  # 72, 120, 120
    (IR(dw_kernel_size=3, exp_ratio=6, out_chs=80, stride=2),                        # 240, 28^2 x 40
     IR(dw_kernel_size=3, exp_ratio=2.5, out_chs=80, stride=1),                      # 200, 14^2 x 80
     IR(dw_kernel_size=3, exp_ratio=2.3, out_chs=80, repeats=2, stride=1)),          # 184 (80 * 2.3)
    (IR(dw_kernel_size=3, exp_ratio=6, out_chs=112, se_ratio=0.25, repeats=2, stride=1),),  # 480, 672
    (IR(dw_kernel_size=5, exp_ratio=6, out_chs=160, se_ratio=0.25, repeats=3, stride=2),),  # 672, 960, 960
    (CN(kernel_size=1, out_chs=960, stride=1),),                                     # conv2d 1x1, 7^2 x 160
)

# Table 2 (Small), input 224.
SMALL = (
    (DS(dw_kernel_size=3, exp_ratio=1, out_chs=16, se_ratio=0.25, act=_RE, stride=2),),  # 16, 112^2 x 16
    (IR(dw_kernel_size=3, exp_ratio=4.5, out_chs=24, act=_RE, stride=2),             # 72,  56^2 x 16
     IR(dw_kernel_size=3, exp_ratio=3.67, out_chs=24, act=_RE, stride=1)),           # 88,  28^2 x 24
    (IR(dw_kernel_size=5, exp_ratio=4, out_chs=40, se_ratio=0.25, stride=2),         # 96,  28^2 x 24
     IR(dw_kernel_size=5, exp_ratio=6, out_chs=40, se_ratio=0.25, repeats=2, stride=1)),  # 240, 240
    (IR(dw_kernel_size=5, exp_ratio=3, out_chs=48, se_ratio=0.25, repeats=2, stride=1),),  # 120, 144
    (IR(dw_kernel_size=5, exp_ratio=6, out_chs=96, se_ratio=0.25, repeats=3, stride=2),),  # 288, 576, 576
    (CN(kernel_size=1, out_chs=576, stride=1),),                                     # conv2d 1x1, 7^2 x 96
)

_COMMON = dict(stem_size=16, act="hard_swish", head="efficient", stem_fixed_below=0.75, exp_column="size")
V3_LARGE = Arch(name="mobilenetv3_large", paper="Howard et al. 2019, arXiv 1905.02244, Table 1",
                stages=LARGE, num_features=1280, **_COMMON)
V3_SMALL = Arch(name="mobilenetv3_small", paper="Howard et al. 2019, arXiv 1905.02244, Table 2",
                stages=SMALL, num_features=1024, **_COMMON)
