"""The model zoo: every MobileNet built from its table matches timm, runs, and differentiates correctly.

Reference numbers are written here with their source; nothing is read from outside the repository.
"timm 1.0.31 sum(p.numel())" counts were measured with ``timm.create_model(name, pretrained=False)``
(1000 classes), as recorded in the project's reference numbers (reference_numbers.json), or, where
marked "measured for this test", the same way with timm 1.0.31.
"""
import json
import math
import pathlib
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import npmobilenet
from npmobilenet.arch import (CN, DS, ER, IR, MQA, UIR, V1, V2, V3_LARGE, V3_SMALL, V4_CONV_LARGE, V4_CONV_MEDIUM,
                              V4_CONV_SMALL, V4_HYBRID_LARGE, V4_HYBRID_MEDIUM, Arch, from_arch_def, label,
                              parse_block_str, to_block_str)
from npmobilenet.build import (MODELS, build_model, create_model, make_divisible, plan, scale_depth,
                               torchvision_channels, timm_channels)
from npmobilenet.module import BackwardBeforeForward
from model_checks import directional_check, perturb

TABLES = {"mobilenetv1_100": V1, "mobilenetv2_100": V2, "mobilenetv3_large_100": V3_LARGE,
          "mobilenetv3_small_100": V3_SMALL, "mobilenetv4_conv_small": V4_CONV_SMALL,
          "mobilenetv4_conv_medium": V4_CONV_MEDIUM, "mobilenetv4_conv_large": V4_CONV_LARGE,
          "mobilenetv4_hybrid_medium": V4_HYBRID_MEDIUM, "mobilenetv4_hybrid_large": V4_HYBRID_LARGE}
MAIN = list(TABLES)

_CACHE = {}


def built(name):
    """One float32 model per name for the structural tests (building the large ones takes a while)."""
    if name not in _CACHE:
        _CACHE[name] = create_model(name, seed=0)
    return _CACHE[name]


# ---- parameter counts -----------------------------------------------------------------------------
# timm 1.0.31 sum(p.numel()) (reference_numbers.json "timm/<name>"; "timm_gen/<name>" for V1 0.75/0.5/0.25,
# built by timm's _gen_mobilenet_v1 but not registered)
PARAMS = {
    "mobilenetv1_100": 4_231_976, "mobilenetv1_100h": 5_282_600, "mobilenetv1_125": 6_270_840,
    "mobilenetv1_075": 2_585_560, "mobilenetv1_050": 1_331_592, "mobilenetv1_025": 470_072,
    "mobilenetv2_035": 1_677_128, "mobilenetv2_050": 1_968_680, "mobilenetv2_075": 2_636_424,
    "mobilenetv2_100": 3_504_872, "mobilenetv2_140": 6_108_776,
    "mobilenetv3_large_075": 3_993_528, "mobilenetv3_large_100": 5_483_032,
    "mobilenetv3_small_050": 1_593_224, "mobilenetv3_small_075": 2_041_872, "mobilenetv3_small_100": 2_542_856,
    "mobilenetv4_conv_small": 3_774_024, "mobilenetv4_conv_medium": 9_715_512,
    "mobilenetv4_conv_large": 32_590_864, "mobilenetv4_hybrid_medium": 11_074_648,
    "mobilenetv4_hybrid_large": 37_764_624, "mobilenetv4_conv_small_050": 2_238_952,
    "mobilenetv4_hybrid_medium_075": 7_313_528, "mobilenetv4_hybrid_large_075": 22_754_984,
    # timm 1.0.31 sum(p.numel()), measured for this test (not in reference_numbers.json)
    "mobilenetv2_110d": 4_516_520, "mobilenetv2_120d": 5_831_144, "mobilenetv3_large_150d": 14_622_320,
    "mobilenetv4_conv_small_035": 1_905_384,
}


def test_every_registered_name_has_a_reference_count():
    assert sorted(PARAMS) == npmobilenet.list_models()


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_parameter_count_equals_timm(name):
    model = built(name) if name in TABLES else create_model(name)
    assert model.num_parameters() == PARAMS[name]
    assert sum(p.size for p in model.parameters().values()) == PARAMS[name]


# torchvision 0.29.1 sum(p.numel()) (reference_numbers.json "torchvision/..."): same layers, torchvision's widths
TORCHVISION = [("mobilenetv3_large_100", 0.75, 3_377_576), ("mobilenetv3_small_100", 0.75, 1_653_920),
               ("mobilenetv3_large_100", 0.5, 1_734_576), ("mobilenetv3_small_100", 0.5, 917_264),
               ("mobilenetv2_100", 0.35, 1_677_128), ("mobilenetv2_100", 0.5, 1_968_680),
               ("mobilenetv2_100", 0.75, 2_636_424), ("mobilenetv2_100", 1.4, 6_108_776)]


@pytest.mark.parametrize("name,width,params", TORCHVISION)
def test_torchvision_width_rule_equals_torchvision(name, width, params):
    assert create_model(name, width_mult=width, width_rule="torchvision").num_parameters() == params


def test_the_two_width_rules_differ_where_the_libraries_do():
    # reference_specs.md section 5.4: V3-Large 0.75 is 3,993,528 in timm and 3,377,576 in torchvision
    assert create_model("v3-large", width_mult=0.75).num_parameters() == 3_993_528
    row = IR(dw_kernel_size=3, exp_ratio=6, out_chs=80)
    # timm: mid from the actual (scaled) input 32 -> make_divisible(192) = 192; torchvision: the
    # table's exp size 240 (ref input 40 * 6) scaled -> make_divisible(180) = 184
    assert timm_channels(row, 32, 40, 0.75) == (192, 64)
    assert torchvision_channels(row, 32, 40, 0.75, exp_column="size") == (184, 64)
    assert torchvision_channels(row, 32, 40, 0.75, exp_column="ratio") == (192, 64)


def test_make_divisible_examples():
    # reference_specs.md section 2.1 (timm/torchvision/Keras make_divisible)
    assert [make_divisible(v) for v in (18, 30, 36, 60, 11.2, 12, 8)] == [24, 32, 40, 64, 16, 16, 8]


def test_scale_depth_follows_timm():
    # timm 1.0.31 _efficientnet_builder._scale_stage_depth('ceil'), evaluated on these inputs: a stage's
    # total is ceil(sum * m), shared out from the last row backwards, at least 1 per row
    assert scale_depth([1, 1, 2], 1.2) == [1, 2, 2]
    assert scale_depth([4, 1, 2, 1], 1.4) == [6, 1, 3, 2]
    assert scale_depth([3], 1.4) == [5]
    assert scale_depth([2, 4], 0.5) == [1, 2]
    assert scale_depth([1, 1], 0.1) == [1, 1]


# Per-stage parameter subtotals, reference_specs.md sections 3, 4, 5.3, 6.5 (timm 1.0.31, exact)
SUBTOTALS = {
    "mobilenetv1_100": [928, 2_528, 27_200, 103_552, 1_478_912, 1_593_856, 0, 1_025_000],
    "mobilenetv2_100": [928, 896, 13_968, 39_696, 183_872, 303_168, 795_264, 473_920, 412_160, 1_281_000],
    "mobilenetv3_large_100": [464, 464, 7_880, 52_312, 130_824, 600_544, 2_023_944, 155_520, 1_230_080,
                              1_281_000],
    "mobilenetv3_small_100": [464, 744, 9_280, 128_264, 51_768, 680_040, 56_448, 590_848, 1_025_000],
    "mobilenetv4_conv_small": [928, 10_368, 34_112, 272_160, 819_296, 124_800, 1_231_360, 1_281_000],
    "mobilenetv4_conv_medium": [928, 43_360, 59_552, 1_521_040, 5_330_592, 247_680, 1_231_360, 1_281_000],
    "mobilenetv4_conv_large": [696, 25_632, 113_904, 3_216_288, 26_228_544, 493_440, 1_231_360, 1_281_000],
    "mobilenetv4_hybrid_medium": [928, 43_360, 59_712, 1_947_920, 6_262_688, 247_680, 1_231_360, 1_281_000],
    "mobilenetv4_hybrid_large": [696, 25_632, 114_096, 3_901_152, 30_717_248, 493_440, 1_231_360, 1_281_000],
}


@pytest.mark.parametrize("name", MAIN)
def test_stage_subtotals(name):
    params = built(name).parameters()

    def total(prefixes):
        return sum(v.size for k, v in params.items() if k.startswith(prefixes))

    n_stages = len(TABLES[name].stages)
    got = [total(("conv_stem.", "bn1."))] + [total(f"blocks.{i}.") for i in range(n_stages)]
    got += [total(("conv_head.", "bn2.", "norm_head.")), total("classifier.")]
    assert got == SUBTOTALS[name]     # V1's 0: no head conv


def test_layer_scale_only_in_hybrids():
    # reference_specs.md 6.1: layer-scale totals Hybrid-M 6,176, Hybrid-L 12,288; none in Conv-*
    for name, want in (("mobilenetv4_hybrid_medium", 6_176), ("mobilenetv4_hybrid_large", 12_288),
                       ("mobilenetv4_conv_medium", 0)):
        got = sum(v.size for k, v in built(name).parameters().items() if k.endswith("layer_scale.gamma"))
        assert got == want, name


# ---- the tables and timm's arch strings -------------------------------------------------------------
# timm 1.0.31 arch_def literals: timm/models/efficientnet.py::_gen_mobilenet_v1/_v2 and
# timm/models/mobilenetv3.py::_gen_mobilenet_v3/_v4 (the lists passed to decode_arch_def)
TIMM_ARCH_DEFS = {
    "mobilenetv1_100": [
        ["dsa_r1_k3_s1_c64"],
        ["dsa_r2_k3_s2_c128"],
        ["dsa_r2_k3_s2_c256"],
        ["dsa_r6_k3_s2_c512"],
        ["dsa_r2_k3_s2_c1024"],
    ],
    "mobilenetv2_100": [
        ["ds_r1_k3_s1_c16"],
        ["ir_r2_k3_s2_e6_c24"],
        ["ir_r3_k3_s2_e6_c32"],
        ["ir_r4_k3_s2_e6_c64"],
        ["ir_r3_k3_s1_e6_c96"],
        ["ir_r3_k3_s2_e6_c160"],
        ["ir_r1_k3_s1_e6_c320"],
    ],
    "mobilenetv3_large_100": [
        ["ds_r1_k3_s1_e1_c16_nre"],
        ["ir_r1_k3_s2_e4_c24_nre", "ir_r1_k3_s1_e3_c24_nre"],
        ["ir_r3_k5_s2_e3_c40_se0.25_nre"],
        ["ir_r1_k3_s2_e6_c80", "ir_r1_k3_s1_e2.5_c80", "ir_r2_k3_s1_e2.3_c80"],
        ["ir_r2_k3_s1_e6_c112_se0.25"],
        ["ir_r3_k5_s2_e6_c160_se0.25"],
        ["cn_r1_k1_s1_c960"],
    ],
    "mobilenetv3_small_100": [
        ["ds_r1_k3_s2_e1_c16_se0.25_nre"],
        ["ir_r1_k3_s2_e4.5_c24_nre", "ir_r1_k3_s1_e3.67_c24_nre"],
        ["ir_r1_k5_s2_e4_c40_se0.25", "ir_r2_k5_s1_e6_c40_se0.25"],
        ["ir_r2_k5_s1_e3_c48_se0.25"],
        ["ir_r3_k5_s2_e6_c96_se0.25"],
        ["cn_r1_k1_s1_c576"],
    ],
    "mobilenetv4_conv_small": [
        ["cn_r1_k3_s2_e1_c32", "cn_r1_k1_s1_e1_c32"],
        ["cn_r1_k3_s2_e1_c96", "cn_r1_k1_s1_e1_c64"],
        ["uir_r1_a5_k5_s2_e3_c96", "uir_r4_a0_k3_s1_e2_c96", "uir_r1_a3_k0_s1_e4_c96"],
        ["uir_r1_a3_k3_s2_e6_c128", "uir_r1_a5_k5_s1_e4_c128", "uir_r1_a0_k5_s1_e4_c128",
         "uir_r1_a0_k5_s1_e3_c128", "uir_r2_a0_k3_s1_e4_c128"],
        ["cn_r1_k1_s1_c960"],
    ],
    "mobilenetv4_conv_medium": [
        ["er_r1_k3_s2_e4_c48"],
        ["uir_r1_a3_k5_s2_e4_c80", "uir_r1_a3_k3_s1_e2_c80"],
        ["uir_r1_a3_k5_s2_e6_c160", "uir_r2_a3_k3_s1_e4_c160", "uir_r1_a3_k5_s1_e4_c160",
         "uir_r1_a3_k3_s1_e4_c160", "uir_r1_a3_k0_s1_e4_c160", "uir_r1_a0_k0_s1_e2_c160",
         "uir_r1_a3_k0_s1_e4_c160"],
        ["uir_r1_a5_k5_s2_e6_c256", "uir_r1_a5_k5_s1_e4_c256", "uir_r2_a3_k5_s1_e4_c256",
         "uir_r1_a0_k0_s1_e4_c256", "uir_r1_a3_k0_s1_e4_c256", "uir_r1_a3_k5_s1_e2_c256",
         "uir_r1_a5_k5_s1_e4_c256", "uir_r2_a0_k0_s1_e4_c256", "uir_r1_a5_k0_s1_e2_c256"],
        ["cn_r1_k1_s1_c960"],
    ],
    "mobilenetv4_conv_large": [
        ["er_r1_k3_s2_e4_c48"],
        ["uir_r1_a3_k5_s2_e4_c96", "uir_r1_a3_k3_s1_e4_c96"],
        ["uir_r1_a3_k5_s2_e4_c192", "uir_r3_a3_k3_s1_e4_c192", "uir_r1_a3_k5_s1_e4_c192",
         "uir_r5_a5_k3_s1_e4_c192", "uir_r1_a3_k0_s1_e4_c192"],
        ["uir_r4_a5_k5_s2_e4_c512", "uir_r1_a5_k0_s1_e4_c512", "uir_r1_a5_k3_s1_e4_c512",
         "uir_r2_a5_k0_s1_e4_c512", "uir_r1_a5_k3_s1_e4_c512", "uir_r1_a5_k5_s1_e4_c512",
         "uir_r3_a5_k0_s1_e4_c512"],
        ["cn_r1_k1_s1_c960"],
    ],
    "mobilenetv4_hybrid_medium": [
        ["er_r1_k3_s2_e4_c48"],
        ["uir_r1_a3_k5_s2_e4_c80", "uir_r1_a3_k3_s1_e2_c80"],
        ["uir_r1_a3_k5_s2_e6_c160", "uir_r1_a0_k0_s1_e2_c160", "uir_r1_a3_k3_s1_e4_c160",
         "uir_r1_a3_k5_s1_e4_c160", "mqa_r1_k3_h4_s1_v2_d64_c160", "uir_r1_a3_k3_s1_e4_c160",
         "mqa_r1_k3_h4_s1_v2_d64_c160", "uir_r1_a3_k0_s1_e4_c160", "mqa_r1_k3_h4_s1_v2_d64_c160",
         "uir_r1_a3_k3_s1_e4_c160", "mqa_r1_k3_h4_s1_v2_d64_c160", "uir_r1_a3_k0_s1_e4_c160"],
        ["uir_r1_a5_k5_s2_e6_c256", "uir_r1_a5_k5_s1_e4_c256", "uir_r2_a3_k5_s1_e4_c256",
         "uir_r1_a0_k0_s1_e2_c256", "uir_r1_a3_k5_s1_e2_c256", "uir_r1_a0_k0_s1_e2_c256",
         "uir_r1_a0_k0_s1_e4_c256", "mqa_r1_k3_h4_s1_d64_c256", "uir_r1_a3_k0_s1_e4_c256",
         "mqa_r1_k3_h4_s1_d64_c256", "uir_r1_a5_k5_s1_e4_c256", "mqa_r1_k3_h4_s1_d64_c256",
         "uir_r1_a5_k0_s1_e4_c256", "mqa_r1_k3_h4_s1_d64_c256", "uir_r1_a5_k0_s1_e4_c256"],
        ["cn_r1_k1_s1_c960"],
    ],
    "mobilenetv4_hybrid_large": [
        ["er_r1_k3_s2_e4_c48"],
        ["uir_r1_a3_k5_s2_e4_c96", "uir_r1_a3_k3_s1_e4_c96"],
        ["uir_r1_a3_k5_s2_e4_c192", "uir_r3_a3_k3_s1_e4_c192", "uir_r1_a3_k5_s1_e4_c192",
         "uir_r2_a5_k3_s1_e4_c192", "mqa_r1_k3_h8_s1_v2_d48_c192", "uir_r1_a5_k3_s1_e4_c192",
         "mqa_r1_k3_h8_s1_v2_d48_c192", "uir_r1_a5_k3_s1_e4_c192", "mqa_r1_k3_h8_s1_v2_d48_c192",
         "uir_r1_a5_k3_s1_e4_c192", "mqa_r1_k3_h8_s1_v2_d48_c192", "uir_r1_a3_k0_s1_e4_c192"],
        ["uir_r4_a5_k5_s2_e4_c512", "uir_r1_a5_k0_s1_e4_c512", "uir_r1_a5_k3_s1_e4_c512",
         "uir_r2_a5_k0_s1_e4_c512", "uir_r1_a5_k3_s1_e4_c512", "uir_r1_a5_k5_s1_e4_c512",
         "mqa_r1_k3_h8_s1_d64_c512", "uir_r1_a5_k0_s1_e4_c512", "mqa_r1_k3_h8_s1_d64_c512",
         "uir_r1_a5_k0_s1_e4_c512", "mqa_r1_k3_h8_s1_d64_c512", "uir_r1_a5_k0_s1_e4_c512",
         "mqa_r1_k3_h8_s1_d64_c512", "uir_r1_a5_k0_s1_e4_c512"],
        ["cn_r1_k1_s1_c960"],
    ],
}


@pytest.mark.parametrize("name", MAIN)
def test_table_writes_timm_arch_def(name):
    assert TABLES[name].arch_def() == TIMM_ARCH_DEFS[name]


@pytest.mark.parametrize("name", MAIN)
def test_timm_arch_def_reads_back_to_the_table(name):
    assert from_arch_def(TIMM_ARCH_DEFS[name]) == TABLES[name].stages


# The block strings quoted in reference_specs.md (sections 4, 5.4, 6.1, 6.3, 6.6)
SPEC_STRINGS = {
    "ds_r1_k3_s1_c16": DS(dw_kernel_size=3, out_chs=16),
    "ir_r3_k5_s2_e3_c40_se0.25_nre": IR(dw_kernel_size=5, exp_ratio=3, out_chs=40, se_ratio=0.25, act="relu",
                                        repeats=3, stride=2),
    "cn_r1_k1_s1_c960": CN(kernel_size=1, out_chs=960),
    "uir_r2_a3_k5_s1_e4_c256": UIR(dw_kernel_size_start=3, dw_kernel_size_mid=5, exp_ratio=4, out_chs=256,
                                   repeats=2),
    "uir_r1_a0_k0_s1_e2_c160": UIR(dw_kernel_size_start=0, dw_kernel_size_mid=0, exp_ratio=2, out_chs=160),
}


@pytest.mark.parametrize("s", sorted(SPEC_STRINGS))
def test_spec_strings_round_trip(s):
    row = parse_block_str(s)
    assert row == SPEC_STRINGS[s]
    assert to_block_str(row) == s


def test_labels_are_derived_from_the_kernels():
    # reference_specs.md 6.2: the four UIB modes; 6.6 notes timm's comment calls the a0_k0 row "ExtraDW"
    assert label(parse_block_str("uir_r1_a0_k0_s1_e2_c160")) == "FFN"
    assert label(parse_block_str("uir_r1_a3_k5_s2_e6_c160")) == "ExtraDW"
    assert label(parse_block_str("uir_r4_a0_k3_s1_e2_c96")) == "IB"
    assert label(parse_block_str("uir_r1_a3_k0_s1_e4_c96")) == "ConvNeXt"
    assert [label(parse_block_str(s)) for s in ("er_r1_k3_s2_e4_c48", "mqa_r1_k3_h4_s1_v2_d64_c160",
                                                "ir_r2_k3_s1_e6_c112_se0.25", "dsa_r1_k3_s1_c64")] == \
        ["FusedIB", "MQA", "IR-SE", "DS"]


def test_conv_medium_block_column_matches_the_spec():
    # reference_specs.md 6.6, "Conv-M", the block column of rows 1-23 (x2 rows expanded)
    want = (["FusedIB"] + ["ExtraDW"] * 2 + ["ExtraDW"] * 5 + ["ConvNeXt", "FFN", "ConvNeXt"]
            + ["ExtraDW"] * 4 + ["FFN", "ConvNeXt", "ExtraDW", "ExtraDW", "FFN", "FFN", "ConvNeXt", "Conv"])
    p = plan(MODELS["mobilenetv4_conv_medium"])
    assert [b.label for stage in p.stages for b in stage] == want


def test_describe_gives_stage_input_resolutions():
    rows = plan(MODELS["mobilenetv4_conv_small"]).describe(224)
    # reference_specs.md 6.6 Conv-S: block 5 (ExtraDW 5/5, s2) maps 28 -> 14, the last conv runs at 7
    extra = [r for r in rows if r[0] == "blocks.2.0"][0]
    assert extra[1:] == ("ExtraDW", "uir_r1_a5_k5_s2_e3_c96", "64 -> 192 -> 96", 2, 28, 14)
    assert rows[-1][-2:] == (7, 7)


_ints = st.integers(1, 9)
_ratios = st.sampled_from([1.0, 2.0, 2.3, 2.5, 3.0, 3.67, 4.0, 4.5, 6.0])
_acts = st.sampled_from([None, "relu", "relu6", "hard_swish"])
_skips = st.sampled_from([None, True, False])
ROWS = st.one_of(
    st.builds(DS, dw_kernel_size=_ints, exp_ratio=st.sampled_from([None, 1.0]), out_chs=_ints, act=_acts,
              se_ratio=st.sampled_from([0.0, 0.25]), repeats=_ints, stride=st.sampled_from([1, 2]), skip=_skips),
    st.builds(DS, dw_kernel_size=_ints, out_chs=_ints, pw_act=st.just(True), repeats=_ints),
    st.builds(IR, dw_kernel_size=_ints, exp_ratio=_ratios, out_chs=_ints, se_ratio=st.sampled_from([0.0, 0.25]),
              act=_acts, repeats=_ints, stride=st.sampled_from([1, 2]), skip=_skips),
    st.builds(ER, exp_kernel_size=_ints, exp_ratio=_ratios, out_chs=_ints, act=_acts, stride=st.sampled_from([1, 2])),
    st.builds(CN, kernel_size=_ints, out_chs=_ints, act=_acts, skip=_skips),
    st.builds(UIR, dw_kernel_size_start=st.integers(0, 7), dw_kernel_size_mid=st.integers(1, 7),
              exp_ratio=_ratios, out_chs=_ints, dw_kernel_size_end=st.integers(0, 5), repeats=_ints),
    st.builds(MQA, num_heads=_ints, key_dim=_ints, kv_stride=st.sampled_from([1, 2]), out_chs=_ints,
              dw_kernel_size=_ints),
)


@settings(deadline=None, max_examples=200)
@given(ROWS)
def test_any_row_round_trips_through_its_string(row):
    assert parse_block_str(to_block_str(row)) == row


@pytest.mark.parametrize("bad,match", [
    ("xx_r1_k3_s1_c16", "unknown block kind"),
    ("ir_r1_k3_s1_c16", "missing the 'e' token"),
    ("ir_r1_k3_s1_e6_c16_q7", "token 'q7'"),
    ("ir_r1_k3.5_s1_e6_c16", "needs an integer"),
    ("ir_r1_k3_s3_e6_c16", "stride 1 or 2"),
    ("cn_r1_k3_s1_e4_c16", "does not expand"),
    ("uir_r1_a0_k0_s2_e4_c16", "needs a depthwise conv"),
    ("", "expected a block string"),
])
def test_bad_block_strings_are_rejected(bad, match):
    with pytest.raises(ValueError, match=match):
        parse_block_str(bad)


def test_rows_are_frozen():
    with pytest.raises(Exception):
        V2.stages[1][0].out_chs = 32


# ---- structure: timm's keys, feature_info, shapes ------------------------------------------------------
# timm 1.0.31 model.state_dict() (shapes), a few keys per family; the complete lists are compared
# against tests/golden/timm_state_dict_keys.json below when that file is present.
TIMM_KEYS = {
    "mobilenetv1_100": [("conv_stem.weight", (32, 3, 3, 3)), ("blocks.0.0.conv_dw.weight", (32, 1, 3, 3)),
                        ("blocks.0.0.conv_pw.weight", (64, 32, 1, 1)), ("blocks.4.1.bn2.running_var", (1024,)),
                        ("classifier.weight", (1000, 1024))],
    "mobilenetv2_100": [("blocks.0.0.conv_pw.weight", (16, 32, 1, 1)), ("blocks.1.0.conv_pw.weight", (96, 16, 1, 1)),
                        ("blocks.1.0.conv_pwl.weight", (24, 96, 1, 1)), ("conv_head.weight", (1280, 320, 1, 1)),
                        ("bn2.weight", (1280,))],
    "mobilenetv3_small_100": [("blocks.0.0.se.conv_reduce.weight", (8, 16, 1, 1)),
                              ("blocks.0.0.se.conv_expand.bias", (16,)), ("blocks.5.0.conv.weight", (576, 96, 1, 1)),
                              ("blocks.5.0.bn1.weight", (576,)), ("conv_head.weight", (1024, 576, 1, 1)),
                              ("conv_head.bias", (1024,))],
    "mobilenetv4_hybrid_medium": [("blocks.0.0.conv_exp.weight", (128, 32, 3, 3)),
                                  ("blocks.2.1.pw_exp.conv.weight", (320, 160, 1, 1)),
                                  ("blocks.2.1.layer_scale.gamma", (160,)), ("blocks.2.4.norm.weight", (160,)),
                                  ("blocks.2.4.attn.key.down_conv.weight", (160, 1, 3, 3)),
                                  ("blocks.2.4.attn.value.proj.weight", (64, 160, 1, 1)),
                                  ("blocks.2.4.attn.output.proj.weight", (160, 256, 1, 1)),
                                  ("norm_head.running_mean", (1280,))],
}


@pytest.mark.parametrize("name", sorted(TIMM_KEYS))
def test_timm_keys_present(name):
    sd = built(name).state_dict()
    for key, shape in TIMM_KEYS[name]:
        assert sd[key].shape == shape, key


GOLDEN_KEYS = pathlib.Path(__file__).parent / "golden" / "timm_state_dict_keys.json"


def _golden_keys():
    """{variant: [(key, shape), ...]} from the golden file (written by tests/golden/make_golden.py)."""
    data = json.loads(GOLDEN_KEYS.read_text())
    return {name: [(k, tuple(shape)) for k, shape in entries] for name, entries in data.items()
            if not name.startswith("_")}


@pytest.mark.skipif(not GOLDEN_KEYS.exists(), reason="tests/golden/timm_state_dict_keys.json not generated yet")
def test_state_dict_keys_and_order_equal_timm_golden():
    golden = _golden_keys()
    checked = 0
    for name, entries in golden.items():
        if name not in MODELS:
            continue
        entries = [(k, s) for k, s in entries if not k.endswith("num_batches_tracked")]
        mine = [(k, v.shape) for k, v in (built(name) if name in TABLES else create_model(name)).state_dict().items()]
        assert mine == entries, name
        checked += 1
    assert checked >= 1


@pytest.mark.parametrize("name", MAIN)
def test_features_only_has_timm_keys_and_no_head(name):
    full = built(name).state_dict()
    feats = create_model(name, features_only=True).state_dict()
    assert list(feats) == [k for k in full if k.startswith(("conv_stem.", "bn1.", "blocks."))]


# timm 1.0.31 feature_info (reduction, num_chs, module) of features_only=True models
TIMM_FEATURE_INFO = {
    "mobilenetv1_100": [(2, 64, "blocks.0"), (4, 128, "blocks.1"), (8, 256, "blocks.2"), (16, 512, "blocks.3"),
                        (32, 1024, "blocks.4")],
    "mobilenetv2_100": [(2, 16, "blocks.0"), (4, 24, "blocks.1"), (8, 32, "blocks.2"), (16, 96, "blocks.4"),
                        (32, 320, "blocks.6")],
    "mobilenetv3_large_100": [(2, 16, "blocks.0"), (4, 24, "blocks.1"), (8, 40, "blocks.2"), (16, 112, "blocks.4"),
                              (32, 960, "blocks.6")],
    "mobilenetv3_small_100": [(2, 16, "bn1"), (4, 16, "blocks.0"), (8, 24, "blocks.1"), (16, 48, "blocks.3"),
                              (32, 576, "blocks.5")],
    "mobilenetv4_hybrid_medium": [(2, 32, "bn1"), (4, 48, "blocks.0"), (8, 80, "blocks.1"), (16, 160, "blocks.2"),
                                  (32, 960, "blocks.4")],
}


@pytest.mark.parametrize("name", sorted(TIMM_FEATURE_INFO))
def test_feature_info_equals_timm(name):
    model = create_model(name, features_only=True)
    assert [(f["reduction"], f["num_chs"], f["module"]) for f in model.feature_info] == TIMM_FEATURE_INFO[name]


@pytest.mark.parametrize("name", MAIN)
def test_forward_shapes_and_features(name):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 64, 64)).astype(np.float32)
    model = built(name).eval()
    y = model(x)
    assert y.shape == (2, 1000) and y.dtype == np.float32 and np.all(np.isfinite(y))
    feats = create_model(name, features_only=True, seed=0).eval()
    maps = feats(x)
    assert [m.shape for m in maps] == [(2, f["num_chs"], 64 // f["reduction"], 64 // f["reduction"])
                                       for f in feats.feature_info]
    assert [f["reduction"] for f in feats.feature_info] == [2, 4, 8, 16, 32]
    if TABLES[name].head == "pool":   # V1: the classifier sees the pooled last feature map
        feats.load_state_dict({k: v for k, v in model.state_dict().items() if k in feats.state_dict()})
        pooled = create_model(name, num_classes=0).eval()
        pooled.load_state_dict({k: v for k, v in model.state_dict().items() if k in pooled.state_dict()})
        np.testing.assert_allclose(pooled(x), feats(x)[-1].mean(axis=(2, 3)), rtol=1e-5, atol=1e-6)


def test_heads_follow_timm():
    v1, v2, v3, v4 = (built(n) for n in ("mobilenetv1_100", "mobilenetv2_100", "mobilenetv3_large_100",
                                          "mobilenetv4_conv_small"))
    names = lambda m: [k for k, _ in m.named_children()][4:]  # noqa: E731  (after conv_stem, bn1, act1, blocks)
    assert names(v1) == ["global_pool", "classifier"]
    assert names(v2) == ["conv_head", "bn2", "act2", "global_pool", "classifier"]
    assert names(v3) == ["global_pool", "conv_head", "act2", "flatten", "classifier"]
    assert names(v4) == ["global_pool", "conv_head", "norm_head", "act2", "flatten", "classifier"]
    assert "bias" in v3.conv_head.parameters() and "bias" not in v4.conv_head.parameters()
    assert names(create_model("mobilenetv1_100h"))[:3] == ["conv_head", "bn2", "act2"]
    assert type(create_model("v4-hybrid-large").act2).__name__ == "GELU"


def test_stride_only_on_a_stages_first_block():
    for name in MAIN:
        for stage, rows in zip(plan(MODELS[name]).stages, TABLES[name].stages):
            assert [b.stride for b in stage] == [rows[0].stride] + [1] * (len(stage) - 1), name


def test_aliases_and_list_models():
    assert create_model("v3-large").name == "mobilenetv3_large_100"
    assert create_model("V4_Hybrid_Medium").name == "mobilenetv4_hybrid_medium"
    assert create_model("mobilenet_v2").name == "mobilenetv2_100"
    assert npmobilenet.list_models("mobilenetv4_conv*") == ["mobilenetv4_conv_large", "mobilenetv4_conv_medium",
                                                           "mobilenetv4_conv_small", "mobilenetv4_conv_small_035",
                                                           "mobilenetv4_conv_small_050"]
    assert npmobilenet.create_model is create_model


def test_load_state_dict_round_trip_and_dtype():
    a, b = create_model("v3-small", seed=1), create_model("v3-small", seed=2)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a.eval()(x), b.eval()(x))
    c = create_model("v3-small", seed=1, dtype=np.float64).eval()
    assert c(x.astype(np.float64)).dtype == np.float64
    np.testing.assert_allclose(c(x.astype(np.float64)), a(x), rtol=1e-4, atol=1e-5)


def test_seed_makes_init_reproducible_and_follows_timm():
    a, b = create_model("v4-conv-small", seed=3), create_model("v4-conv-small", seed=3)
    for (k, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        np.testing.assert_array_equal(p, q, err_msg=k)
    w = a.conv_head.weight          # timm: N(0, 2 / fan_out), fan_out = 1 * 1 * 1280
    assert abs(w.std() - math.sqrt(2 / 1280)) < 0.05 * math.sqrt(2 / 1280)
    assert np.all(a.bn1.weight == 1) and np.all(a.classifier.bias == 0)


def test_small_input_for_32px_images():
    big, small = create_model("v2", num_classes=10), create_model("v2", num_classes=10, small_input=True)
    assert list(small.state_dict()) == list(big.state_dict()) and small.num_parameters() == big.num_parameters()
    assert small.plan.total_stride == 8 and small.conv_stem.stride == (1, 1)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    assert small(x).shape == (2, 10)
    feats = create_model("v2", features_only=True, small_input=True)
    assert [m.shape[-1] for m in feats(x)] == [32, 32, 16, 8, 4]
    assert [f["reduction"] for f in feats.feature_info] == [1, 1, 2, 4, 8]
    with pytest.raises(ValueError, match="small_input=True"):
        big(x[:, :, :16, :16])


def test_dropout_before_the_classifier():
    model = create_model("v3-small", num_classes=10, drop_rate=0.5, seed=0)
    x = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)
    assert "dropout" in dict(model.named_children())
    model.eval()
    np.testing.assert_array_equal(model(x), model(x))
    model.train()
    y = model(x)
    assert model.backward(np.ones_like(y)).shape == x.shape


# ---- errors ---------------------------------------------------------------------------------------------
def test_unknown_name_lists_close_matches():
    with pytest.raises(ValueError, match="mobilenetv3_large_100"):
        create_model("mobilenetv3_large_10")
    with pytest.raises(ValueError, match="unknown model 'resnet50'"):
        create_model("resnet50")


@pytest.mark.parametrize("kw,match", [
    (dict(width_mult=0), "width_mult must be a positive"), (dict(width_mult=-1.0), "width_mult"),
    (dict(width_mult=float("nan")), "width_mult"), (dict(depth_mult=0), "depth_mult"),
    (dict(num_classes=-1), "num_classes"), (dict(in_chans=0), "in_chans"), (dict(drop_rate=1.0), "drop_rate"),
    (dict(width_rule="keras"), "width_rule"), (dict(bn_eps=0.0), "bn_eps"), (dict(dtype=np.int32), "dtype"),
])
def test_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        create_model("v3-small", **kw)


def test_torchvision_rule_only_where_torchvision_has_the_model():
    with pytest.raises(ValueError, match="torchvision has no"):
        create_model("v4-conv-small", width_rule="torchvision")


def test_bad_inputs_fail_before_any_compute():
    model = create_model("v3-small", in_chans=3)
    for x, err, match in [(np.zeros((2, 1, 64, 64), np.float32), ValueError, "1 channels"),
                          (np.zeros((2, 3, 16, 64), np.float32), ValueError, "downsamples by 32"),
                          (np.zeros((3, 64, 64), np.float32), ValueError, "dimensions"),
                          (np.zeros((2, 3, 64, 64), np.float64), TypeError, "float64"),
                          ([[1.0]], TypeError, "ndarray")]:
        with pytest.raises(err, match=match):
            model(x)
        assert model.conv_stem.cache is None, "the stem ran before the input was checked"
    assert create_model("v3-small", in_chans=1).eval()(np.zeros((1, 1, 32, 32), np.float32)).shape == (1, 1000)
    # training-mode BN needs two values per channel: V4's norm_head sees one per image
    with pytest.raises(ValueError, match="batch of at least 2"):
        create_model("v4-conv-small")(np.zeros((1, 3, 64, 64), np.float32))
    with pytest.raises(ValueError, match="batch of at least 2"):
        model(np.zeros((1, 3, 32, 32), np.float32))
    assert model.conv_stem.cache is None


def test_backward_contracts():
    model = create_model("v4-hybrid-medium", num_classes=5, width_mult=0.25, seed=0)
    with pytest.raises(BackwardBeforeForward):
        model.backward(np.zeros((2, 5), np.float32))
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    dy = np.random.default_rng(1).standard_normal(model(x).shape).astype(np.float32)
    dy0 = dy.copy()
    dx1 = model.backward(dy)
    g1 = {k: g.copy() for k, g in model.grads().items()}
    dx2 = model.backward(dy)
    np.testing.assert_array_equal(dy, dy0)
    np.testing.assert_array_equal(dx1, dx2)
    for k, g in model.grads().items():
        np.testing.assert_array_equal(g, g1[k], err_msg=k)
        assert g.shape == model.parameters()[k].shape and np.all(np.isfinite(g)), k


def test_features_backward_takes_one_gradient_per_map():
    model = create_model("v3-small", features_only=True, width_mult=0.5, seed=0, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64))
    maps = model(x)
    rng = np.random.default_rng(1)
    gs = [rng.standard_normal(m.shape) for m in maps]
    dx_all = model.backward(gs)
    # linearity: the gradient of a sum of losses is the sum of the gradients of each
    dx_sum = sum(model.backward([g if i == k else None for i, g in enumerate(gs)]) for k in range(len(gs)))
    np.testing.assert_allclose(dx_all, dx_sum, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="list of 5 gradients"):
        model.backward(gs[:4])
    with pytest.raises(ValueError, match="shape"):
        model.backward(gs[:4] + [gs[0]])


# ---- gradient checks (STYLE.md G3, G4) -------------------------------------------------------------------
# Loss <logits, r> with a fixed Gaussian r, float64, h = 1e-5, one direction per parameter tensor, one
# for the input and one over all parameters; pass iff |num-ana| <= 1e-6(|num|+|ana|) + 1e-9 ||grad||_2.
# Directions that carry a pre-activation across a ReLU/ReLU6/hard-swish kink are redrawn (G4), see
# tests/model_checks.py.  Train mode normalises with batch statistics: a stride-32 network ends on a
# 1x1 map at 32x32 and MNv4's norm_head always sees a 1x1 map, so a batch of 2 would make those BNs
# two-point normalisations, whose curvature (~1/|x1 - x2|) puts the h = 1e-5 truncation error above
# the tolerance (the error then falls as h^2 with smaller h: ill-conditioning, not a wrong gradient).
# Train mode therefore uses a batch of 8 (>= 8 values per BN channel, as 2x2 x batch 2 would give);
# eval mode a batch of 2.
TRAIN_BATCH, EVAL_BATCH = 8, 2


def _check_model(model, mode, size, seed=0):
    rng = np.random.default_rng(seed)
    perturb(model, rng)
    getattr(model, mode)()
    shape = (TRAIN_BATCH if mode == "train" else EVAL_BATCH, model.in_chans, size, size)
    report, verified = directional_check(model, lambda k: np.random.default_rng([seed, k]).standard_normal(shape))
    assert set(verified) == {r["name"] for r in report.rows}  # every tensor, the input and the all-direction
    return report


# Small tables holding every block kind and every head, built by the same builder as the zoo.
TINY = {
    "pool": Arch("tiny_v1", "test table", 8, "relu6", head="pool", stages=(
        (DS(dw_kernel_size=3, out_chs=8, pw_act=True),),
        (DS(dw_kernel_size=3, out_chs=16, pw_act=True, stride=2), DS(dw_kernel_size=3, out_chs=16, pw_act=True)))),
    "conv": Arch("tiny_v2", "test table", 8, "relu6", head="conv", num_features=24, head_scales_up=True, stages=(
        (DS(dw_kernel_size=3, out_chs=8),),                                   # linear pw, skip
        (IR(dw_kernel_size=3, exp_ratio=6, out_chs=16, stride=2), IR(dw_kernel_size=3, exp_ratio=6, out_chs=16)))),
    "efficient": Arch("tiny_v3", "test table", 8, "hard_swish", head="efficient", num_features=24, stages=(
        (DS(dw_kernel_size=3, exp_ratio=1, out_chs=8, se_ratio=0.25, act="relu"),),     # SE on the input, skip
        (IR(dw_kernel_size=3, exp_ratio=3, out_chs=16, act="relu", stride=2),
         IR(dw_kernel_size=5, exp_ratio=2.5, out_chs=16, se_ratio=0.25)),
        (CN(kernel_size=1, out_chs=24),))),
    "efficient_norm": Arch("tiny_v4", "test table", 8, "relu", head="efficient_norm", num_features=24,
                           layer_scale_init_value=1e-5, stages=(
        (CN(kernel_size=3, exp_ratio=1, out_chs=8, stride=2), ER(exp_kernel_size=3, exp_ratio=2, out_chs=8)),
        (UIR(dw_kernel_size_start=5, dw_kernel_size_mid=5, exp_ratio=3, out_chs=16, stride=2),
         UIR(dw_kernel_size_start=3, dw_kernel_size_mid=3, exp_ratio=2, out_chs=16),   # ExtraDW
         UIR(dw_kernel_size_start=0, dw_kernel_size_mid=3, exp_ratio=2, out_chs=16),   # IB
         UIR(dw_kernel_size_start=3, dw_kernel_size_mid=0, exp_ratio=2, out_chs=16),   # ConvNeXt
         UIR(dw_kernel_size_start=0, dw_kernel_size_mid=0, exp_ratio=2, out_chs=16),   # FFN
         MQA(num_heads=2, key_dim=8, kv_stride=2, out_chs=16), MQA(num_heads=2, key_dim=8, out_chs=16)),
        (CN(kernel_size=1, out_chs=24),))),
}
TINY["efficient_norm_gelu"] = replace(TINY["efficient_norm"], name="tiny_v4_gelu", act="gelu")


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("head", sorted(TINY))
def test_gradcheck_every_block_kind_and_head(head, mode):
    model = build_model(TINY[head], num_classes=5, seed=0, dtype=np.float64)
    _check_model(model, mode, size=16)


def test_gradcheck_features_only():
    model = build_model(TINY["efficient_norm"], features_only=True, seed=0, dtype=np.float64)
    rng = np.random.default_rng(0)
    perturb(model, rng)
    x = rng.standard_normal((EVAL_BATCH, 3, 16, 16))
    rs = [rng.standard_normal(m.shape) for m in model.eval()(x)]

    def loss(maps):  # L = sum_k <map_k, r_k>: every feature map contributes
        return float(sum(np.sum(m * r) for m, r in zip(maps, rs))), rs

    npmobilenet.gradcheck(model, x, mode="directional", loss=loss).assert_passed()


def test_directional_check_catches_a_wrong_gradient():
    """The whole-model check is not vacuous: a planted bug in one layer's backward is found."""
    model = build_model(TINY["efficient"], num_classes=5, seed=0, dtype=np.float64)
    conv = model.blocks[1][1].conv_pwl
    backward = type(conv).backward

    def wrong(dy):
        dx = backward(conv, dy)
        conv.grads()["weight"][0, 0] *= 1.01
        return dx

    conv.backward = wrong
    with pytest.raises(AssertionError, match="blocks.1.1.conv_pwl.weight"):
        _check_model(model, "eval", size=16)


# Every variant of the zoo, at 32x32 (the smallest size the total stride of 32 allows).  The two largest
# run at half width (width_mult=0.5; the same tables and code paths, a quarter of the parameters).
ZOO_WIDTH = {"mobilenetv4_conv_large": 0.5, "mobilenetv4_hybrid_large": 0.5}


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("name", MAIN)
def test_gradcheck_whole_model(name, mode):
    model = create_model(name, num_classes=10, width_mult=ZOO_WIDTH.get(name), seed=0, dtype=np.float64)
    _check_model(model, mode, size=32)
