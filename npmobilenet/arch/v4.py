"""MobileNet V4 (Qin et al., 2024, "MobileNetV4", arXiv 2404.10518), the architecture tables.

The paper's table columns are: block, DW K1, DW K2, expanded dim, output dim, stride.  ``UIR``
rows hold DW K1 as ``dw_kernel_size_start`` (0 = "-"), DW K2 as ``dw_kernel_size_mid`` and the
expansion as timm's ratio of the block input.  Which UIB mode a row is (IB, ExtraDW, ConvNeXt,
FFN) follows from its two kernels (``table.label``); it is not written here.  Block lists as
released in TF Model Garden ``official/vision/modeling/backbones/mobilenet.py`` and timm
``_gen_mobilenet_v4`` (identical, block for block).

Every model: stem conv 3x3 s2 + BN + act, the stages below (the last is a 1x1 conv to 960), then
the head: pool -> 1x1 conv 960 -> 1280 *without* bias, BN + act -> classifier.  ReLU except
Hybrid-L (GELU).  The hybrids put a layer-scale gamma (init 1e-5) on every UIB and MQA block.
"""
from .table import CN, ER, MQA, UIR, Arch

# Conv-S (224 px).  The first two stages are plain convs, not a FusedIB.
CONV_SMALL = (
    (CN(kernel_size=3, exp_ratio=1, out_chs=32, stride=2),       # Conv2D 3x3, 112^2 x 32
     CN(kernel_size=1, exp_ratio=1, out_chs=32, stride=1)),      # Conv2D 1x1
    (CN(kernel_size=3, exp_ratio=1, out_chs=96, stride=2),       # Conv2D 3x3, 56^2 x 32
     CN(kernel_size=1, exp_ratio=1, out_chs=64, stride=1)),      # Conv2D 1x1
    #    DW K1                   DW K2                  exp           out                   s
    (UIR(dw_kernel_size_start=5, dw_kernel_size_mid=5, exp_ratio=3, out_chs=96, stride=2),   # 28^2 x 64
     UIR(dw_kernel_size_start=0, dw_kernel_size_mid=3, exp_ratio=2, out_chs=96, repeats=4),
     UIR(dw_kernel_size_start=3, dw_kernel_size_mid=0, exp_ratio=4, out_chs=96)),
    (UIR(dw_kernel_size_start=3, dw_kernel_size_mid=3, exp_ratio=6, out_chs=128, stride=2),  # 14^2 x 96
     UIR(dw_kernel_size_start=5, dw_kernel_size_mid=5, exp_ratio=4, out_chs=128),
     UIR(dw_kernel_size_start=0, dw_kernel_size_mid=5, exp_ratio=4, out_chs=128),
     UIR(dw_kernel_size_start=0, dw_kernel_size_mid=5, exp_ratio=3, out_chs=128),
     UIR(dw_kernel_size_start=0, dw_kernel_size_mid=3, exp_ratio=4, out_chs=128, repeats=2)),
    (CN(kernel_size=1, out_chs=960, stride=1),),                 # Conv2D 1x1, 7^2 x 128
)

# Conv-M (256 px).
CONV_MEDIUM = (
    (ER(exp_kernel_size=3, exp_ratio=4, out_chs=48, stride=2),),                             # 128^2 x 32
    (UIR(dw_kernel_size_start=3, dw_kernel_size_mid=5, exp_ratio=4, out_chs=80, stride=2),   # 64^2 x 48
     UIR(dw_kernel_size_start=3, dw_kernel_size_mid=3, exp_ratio=2, out_chs=80)),
    (UIR(dw_kernel_size_start=3, dw_kernel_size_mid=5, exp_ratio=6, out_chs=160, stride=2),  # 32^2 x 80
     UIR(dw_kernel_size_start=3, dw_kernel_size_mid=3, exp_ratio=4, out_chs=160, repeats=2),
     UIR(dw_kernel_size_start=3, dw_kernel_size_mid=5, exp_ratio=4, out_chs=160),
     UIR(dw_kernel_size_start=3, dw_kernel_size_mid=3, exp_ratio=4, out_chs=160),
     UIR(dw_kernel_size_start=3, dw_kernel_size_mid=0, exp_ratio=4, out_chs=160),
     UIR(dw_kernel_size_start=0, dw_kernel_size_mid=0, exp_ratio=2, out_chs=160),
     UIR(dw_kernel_size_start=3, dw_kernel_size_mid=0, exp_ratio=4, out_chs=160)),
    (UIR(dw_kernel_size_start=5, dw_kernel_size_mid=5, exp_ratio=6, out_chs=256, stride=2),  # 16^2 x 160
     UIR(dw_kernel_size_start=5, dw_kernel_size_mid=5, exp_ratio=4, out_chs=256),
     UIR(dw_kernel_size_start=3, dw_kernel_size_mid=5, exp_ratio=4, out_chs=256, repeats=2),
     UIR(dw_kernel_size_start=0, dw_kernel_size_mid=0, exp_ratio=4, out_chs=256),
     UIR(dw_kernel_size_start=3, dw_kernel_size_mid=0, exp_ratio=4, out_chs=256),
     UIR(dw_kernel_size_start=3, dw_kernel_size_mid=5, exp_ratio=2, out_chs=256),
     UIR(dw_kernel_size_start=5, dw_kernel_size_mid=5, exp_ratio=4, out_chs=256),
     UIR(dw_kernel_size_start=0, dw_kernel_size_mid=0, exp_ratio=4, out_chs=256, repeats=2),
     UIR(dw_kernel_size_start=5, dw_kernel_size_mid=0, exp_ratio=2, out_chs=256)),
    (CN(kernel_size=1, out_chs=960, stride=1),),                                             # 8^2 x 256
)

# Conv-L (384 px).
CONV_LARGE = (
    (ER(exp_kernel_size=3, exp_ratio=4, out_chs=48, stride=2),),                             # 192^2 x 24
    (UIR(dw_kernel_size_start=3, dw_kernel_size_mid=5, exp_ratio=4, out_chs=96, stride=2),   # 96^2 x 48
     UIR(dw_kernel_size_start=3, dw_kernel_size_mid=3, exp_ratio=4, out_chs=96)),
    (UIR(dw_kernel_size_start=3, dw_kernel_size_mid=5, exp_ratio=4, out_chs=192, stride=2),  # 48^2 x 96
     UIR(dw_kernel_size_start=3, dw_kernel_size_mid=3, exp_ratio=4, out_chs=192, repeats=3),
     UIR(dw_kernel_size_start=3, dw_kernel_size_mid=5, exp_ratio=4, out_chs=192),
     UIR(dw_kernel_size_start=5, dw_kernel_size_mid=3, exp_ratio=4, out_chs=192, repeats=5),
     UIR(dw_kernel_size_start=3, dw_kernel_size_mid=0, exp_ratio=4, out_chs=192)),
    (UIR(dw_kernel_size_start=5, dw_kernel_size_mid=5, exp_ratio=4, out_chs=512, stride=2, repeats=4),  # 24^2
     UIR(dw_kernel_size_start=5, dw_kernel_size_mid=0, exp_ratio=4, out_chs=512),
     UIR(dw_kernel_size_start=5, dw_kernel_size_mid=3, exp_ratio=4, out_chs=512),
     UIR(dw_kernel_size_start=5, dw_kernel_size_mid=0, exp_ratio=4, out_chs=512, repeats=2),
     UIR(dw_kernel_size_start=5, dw_kernel_size_mid=3, exp_ratio=4, out_chs=512),
     UIR(dw_kernel_size_start=5, dw_kernel_size_mid=5, exp_ratio=4, out_chs=512),
     UIR(dw_kernel_size_start=5, dw_kernel_size_mid=0, exp_ratio=4, out_chs=512, repeats=3)),
    (CN(kernel_size=1, out_chs=960, stride=1),),                                             # 12^2 x 512
)

# Hybrid-M (256 px): Conv-M's stages 0-1, then UIBs interleaved with Mobile MQA.
_MQA_M16 = MQA(num_heads=4, key_dim=64, kv_stride=2, out_chs=160)   # 16^2 tokens, K/V at 8^2
_MQA_M32 = MQA(num_heads=4, key_dim=64, kv_stride=1, out_chs=256)
HYBRID_MEDIUM = CONV_MEDIUM[:2] + (
    (UIR(dw_kernel_size_start=3, dw_kernel_size_mid=5, exp_ratio=6, out_chs=160, stride=2),  # 32^2 x 80
     UIR(dw_kernel_size_start=0, dw_kernel_size_mid=0, exp_ratio=2, out_chs=160),
     UIR(dw_kernel_size_start=3, dw_kernel_size_mid=3, exp_ratio=4, out_chs=160),
     UIR(dw_kernel_size_start=3, dw_kernel_size_mid=5, exp_ratio=4, out_chs=160),
     _MQA_M16,
     UIR(dw_kernel_size_start=3, dw_kernel_size_mid=3, exp_ratio=4, out_chs=160),
     _MQA_M16,
     UIR(dw_kernel_size_start=3, dw_kernel_size_mid=0, exp_ratio=4, out_chs=160),
     _MQA_M16,
     UIR(dw_kernel_size_start=3, dw_kernel_size_mid=3, exp_ratio=4, out_chs=160),
     _MQA_M16,
     UIR(dw_kernel_size_start=3, dw_kernel_size_mid=0, exp_ratio=4, out_chs=160)),
    (UIR(dw_kernel_size_start=5, dw_kernel_size_mid=5, exp_ratio=6, out_chs=256, stride=2),  # 16^2 x 160
     UIR(dw_kernel_size_start=5, dw_kernel_size_mid=5, exp_ratio=4, out_chs=256),
     UIR(dw_kernel_size_start=3, dw_kernel_size_mid=5, exp_ratio=4, out_chs=256, repeats=2),
     UIR(dw_kernel_size_start=0, dw_kernel_size_mid=0, exp_ratio=2, out_chs=256),
     UIR(dw_kernel_size_start=3, dw_kernel_size_mid=5, exp_ratio=2, out_chs=256),
     UIR(dw_kernel_size_start=0, dw_kernel_size_mid=0, exp_ratio=2, out_chs=256),
     UIR(dw_kernel_size_start=0, dw_kernel_size_mid=0, exp_ratio=4, out_chs=256),
     _MQA_M32,
     UIR(dw_kernel_size_start=3, dw_kernel_size_mid=0, exp_ratio=4, out_chs=256),
     _MQA_M32,
     UIR(dw_kernel_size_start=5, dw_kernel_size_mid=5, exp_ratio=4, out_chs=256),
     _MQA_M32,
     UIR(dw_kernel_size_start=5, dw_kernel_size_mid=0, exp_ratio=4, out_chs=256),
     _MQA_M32,
     UIR(dw_kernel_size_start=5, dw_kernel_size_mid=0, exp_ratio=4, out_chs=256)),
    (CN(kernel_size=1, out_chs=960, stride=1),),
)

# Hybrid-L (384 px, GELU): Conv-L's stages 0-1, then UIBs interleaved with Mobile MQA.
_MQA_L16 = MQA(num_heads=8, key_dim=48, kv_stride=2, out_chs=192)   # 24^2 tokens, K/V at 12^2
_MQA_L32 = MQA(num_heads=8, key_dim=64, kv_stride=1, out_chs=512)
_EXTRA_DW_L16 = UIR(dw_kernel_size_start=5, dw_kernel_size_mid=3, exp_ratio=4, out_chs=192)
_CONVNEXT_L32 = UIR(dw_kernel_size_start=5, dw_kernel_size_mid=0, exp_ratio=4, out_chs=512)
HYBRID_LARGE = CONV_LARGE[:2] + (
    (UIR(dw_kernel_size_start=3, dw_kernel_size_mid=5, exp_ratio=4, out_chs=192, stride=2),  # 48^2 x 96
     UIR(dw_kernel_size_start=3, dw_kernel_size_mid=3, exp_ratio=4, out_chs=192, repeats=3),
     UIR(dw_kernel_size_start=3, dw_kernel_size_mid=5, exp_ratio=4, out_chs=192),
     UIR(dw_kernel_size_start=5, dw_kernel_size_mid=3, exp_ratio=4, out_chs=192, repeats=2),
     _MQA_L16, _EXTRA_DW_L16, _MQA_L16, _EXTRA_DW_L16, _MQA_L16, _EXTRA_DW_L16, _MQA_L16,
     UIR(dw_kernel_size_start=3, dw_kernel_size_mid=0, exp_ratio=4, out_chs=192)),
    (UIR(dw_kernel_size_start=5, dw_kernel_size_mid=5, exp_ratio=4, out_chs=512, stride=2, repeats=4),  # 24^2
     UIR(dw_kernel_size_start=5, dw_kernel_size_mid=0, exp_ratio=4, out_chs=512),
     UIR(dw_kernel_size_start=5, dw_kernel_size_mid=3, exp_ratio=4, out_chs=512),
     UIR(dw_kernel_size_start=5, dw_kernel_size_mid=0, exp_ratio=4, out_chs=512, repeats=2),
     UIR(dw_kernel_size_start=5, dw_kernel_size_mid=3, exp_ratio=4, out_chs=512),
     UIR(dw_kernel_size_start=5, dw_kernel_size_mid=5, exp_ratio=4, out_chs=512),
     _MQA_L32, _CONVNEXT_L32, _MQA_L32, _CONVNEXT_L32, _MQA_L32, _CONVNEXT_L32, _MQA_L32, _CONVNEXT_L32),
    (CN(kernel_size=1, out_chs=960, stride=1),),
)

_PAPER = "Qin et al. 2024, arXiv 2404.10518, architecture tables (MNv4-{})"
_COMMON = dict(head="efficient_norm", num_features=1280, stem_fixed_below=1.0, exp_column="size")
V4_CONV_SMALL = Arch(name="mobilenetv4_conv_small", paper=_PAPER.format("Conv-S"), stem_size=32, act="relu",
                     stages=CONV_SMALL, **_COMMON)
V4_CONV_MEDIUM = Arch(name="mobilenetv4_conv_medium", paper=_PAPER.format("Conv-M"), stem_size=32, act="relu",
                      stages=CONV_MEDIUM, **_COMMON)
V4_CONV_LARGE = Arch(name="mobilenetv4_conv_large", paper=_PAPER.format("Conv-L"), stem_size=24, act="relu",
                     stages=CONV_LARGE, **_COMMON)
V4_HYBRID_MEDIUM = Arch(name="mobilenetv4_hybrid_medium", paper=_PAPER.format("Hybrid-M"), stem_size=32,
                        act="relu", stages=HYBRID_MEDIUM, layer_scale_init_value=1e-5, **_COMMON)
V4_HYBRID_LARGE = Arch(name="mobilenetv4_hybrid_large", paper=_PAPER.format("Hybrid-L"), stem_size=24,
                       act="gelu", stages=HYBRID_LARGE, layer_scale_init_value=1e-5, **_COMMON)
