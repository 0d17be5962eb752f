"""MobileNet V1 (Howard et al., 2017, "MobileNets", arXiv 1704.04861), Table 1.

Each row is one "Conv dw / s + Conv 1x1 / s1" pair of Table 1, i.e. timm's ``dsa`` block: a 3x3
depthwise conv (carrying the stride) + BN + ReLU6, then a 1x1 conv + BN + ReLU6, no residual.
The paper's 13th row reads "Conv dw / s2" on a 7x7 input; that is a typo (every implementation,
timm's included, uses stride 1 there): the builder gives a stage's stride to its first block only.

ReLU6 instead of the paper's ReLU, as in TF-slim, Keras and timm.  Head: global average pool ->
FC 1024 -> 1000 (``mobilenetv1_100``); timm's ``mobilenetv1_100h`` adds a 1x1 conv 1024 -> 1024
+ BN + act before the pool (``V1_HEAD``).
"""
from dataclasses import replace

from .table import DS, Arch

# Table 1, input 224x224.  Stage = run of rows ending where the resolution halves next.
STAGES = (
    #   dw k                 out                          n           s         Table 1 rows, input
    (DS(dw_kernel_size=3, out_chs=64,   pw_act=True, repeats=1, stride=1),),  # 112^2 x 32
    (DS(dw_kernel_size=3, out_chs=128,  pw_act=True, repeats=2, stride=2),),  # 112^2 x 64
    (DS(dw_kernel_size=3, out_chs=256,  pw_act=True, repeats=2, stride=2),),  # 56^2 x 128
    (DS(dw_kernel_size=3, out_chs=512,  pw_act=True, repeats=6, stride=2),),  # 28^2 x 256 (then 5x 14^2)
    (DS(dw_kernel_size=3, out_chs=1024, pw_act=True, repeats=2, stride=2),),  # 14^2 x 512 (13th: s1)
)

V1 = Arch(
    name="mobilenetv1", paper="Howard et al. 2017, arXiv 1704.04861, Table 1",
    stem_size=32,          # "Conv / s2, 3x3x3x32"
    act="relu6",
    stages=STAGES,
    head="pool",           # "Avg Pool / s1, Pool 7x7" -> "FC / s1, 1024x1000"
)

V1_HEAD = replace(V1, name="mobilenetv1_h", head="conv", num_features=1024, head_scales_up=True)
