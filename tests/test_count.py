"""Exact counts: every model's parameters and core MAdds equal the reference to the unit, layer rows
add up to the totals, the elementwise breakdown is consistent, the table states its convention,
the published figures are shown beside ours, and summary() leaves the model as it found it."""
import math
from functools import lru_cache

import numpy as np
import pytest

import npmobilenet
from npmobilenet import count, create_model, summary
from npmobilenet.ops.conv import Conv2d

# ---- the reference counts -------------------------------------------------------------------------
# (name, resolution): (params, MAdds).  timm 1.0.31, measured with forward hooks (conv
# Ho*Wo*Cout*Cin/groups*k*k, linear in*out, MQA heads*Lq*Lkv*(dk+dv)); reference_numbers.json,
# keys "timm/<name>" (params, macs, macs_at_resolution), "timm_gen/<name>" for mobilenetv1_075/050/025
# (timm's _gen_mobilenet_v1, not registered).
REFERENCE = {
    ("mobilenetv1_025", 224): (470_072, 41_030_272),
    ("mobilenetv1_050", 224): (1_331_592, 149_497_088),
    ("mobilenetv1_075", 224): (2_585_560, 325_400_448),
    ("mobilenetv1_100", 224): (4_231_976, 568_740_352),
    ("mobilenetv1_100h", 224): (5_282_600, 620_120_576),
    ("mobilenetv1_125", 224): (6_270_840, 879_516_800),
    ("mobilenetv2_035", 224): (1_677_128, 59_285_808),
    ("mobilenetv2_050", 224): (1_968_680, 97_131_840),
    ("mobilenetv2_075", 224): (2_636_424, 209_069_792),
    ("mobilenetv2_100", 224): (3_504_872, 300_774_272),
    ("mobilenetv2_140", 224): (6_108_776, 582_195_824),
    ("mobilenetv3_large_075", 224): (3_993_528, 154_560_624),
    ("mobilenetv3_large_100", 224): (5_483_032, 216_589_760),
    ("mobilenetv3_small_050", 224): (1_593_224, 24_188_688),
    ("mobilenetv3_small_075", 224): (2_041_872, 43_399_344),
    ("mobilenetv3_small_100", 224): (2_542_856, 56_510_400),
    ("mobilenetv4_conv_small", 224): (3_774_024, 186_005_568),
    ("mobilenetv4_conv_small", 256): (3_774_024, 242_178_048),
    ("mobilenetv4_conv_medium", 224): (9_715_512, 827_649_984),
    ("mobilenetv4_conv_medium", 256): (9_715_512, 1_080_244_224),
    ("mobilenetv4_conv_large", 224): (32_590_864, 2_171_341_312),
    ("mobilenetv4_conv_large", 256): (32_590_864, 2_835_269_632),
    ("mobilenetv4_conv_large", 384): (32_590_864, 6_376_220_672),
    ("mobilenetv4_hybrid_medium", 224): (11_074_648, 966_311_360),
    ("mobilenetv4_hybrid_medium", 256): (11_074_648, 1_271_183_360),
    ("mobilenetv4_hybrid_large", 224): (37_764_624, 2_549_568_000),
    ("mobilenetv4_hybrid_large", 384): (37_764_624, 7_711_877_120),
    ("mobilenetv4_conv_small_050", 224): (2_238_952, 64_741_408),
    ("mobilenetv4_hybrid_medium_075", 224): (7_313_528, 649_844_400),
    ("mobilenetv4_hybrid_medium_075", 256): (7_313_528, 857_932_800),
    ("mobilenetv4_hybrid_large_075", 384): (22_754_984, 4_767_518_720),
}
# timm 1.0.31, measured with the same forward hooks for this test (names and resolutions that
# reference_numbers.json does not list; odd sizes check ceil(H / stride) through the whole network).
MEASURED_HERE = {
    ("mobilenetv2_110d", 224): (4_516_520, 430_516_080),
    ("mobilenetv2_120d", 224): (5_831_144, 668_857_568),
    ("mobilenetv3_large_150d", 224): (14_622_320, 775_198_160),
    ("mobilenetv3_large_150d", 256): (14_622_320, 1_010_021_120),
    ("mobilenetv4_conv_small_035", 224): (1_905_384, 47_723_040),
    ("mobilenetv4_conv_small_035", 256): (1_905_384, 61_808_640),
    ("mobilenetv4_conv_small_050", 256): (2_238_952, 83_980_288),
    ("mobilenetv4_hybrid_large", 256): (37_764_624, 3_345_008_640),
    ("mobilenetv4_hybrid_large_075", 224): (22_754_984, 1_547_465_600),
    ("mobilenetv4_hybrid_medium", 384): (11_074_648, 2_974_991_360),
    ("mobilenetv4_hybrid_medium", 250): (11_074_648, 1_263_840_272),
    ("mobilenetv3_small_100", 225): (2_542_856, 65_379_560),
    ("mobilenetv1_100", 199): (4_231_976, 488_077_696),
    ("mobilenetv4_conv_small", 161): (3_774_024, 115_120_416),
}
# MQA attention products (QK^T and AV) inside the totals above: reference_numbers.json
# "attention_matmul_macs_at_resolution" (timm 1.0.31, forward hooks); 250/256 (Hybrid-L) and 224
# (Hybrid-L 0.75) and 384 (Hybrid-M) measured here likewise.
ATTENTION = {
    ("mobilenetv4_hybrid_medium", 224): 24_586_240, ("mobilenetv4_hybrid_medium", 256): 41_943_040,
    ("mobilenetv4_hybrid_large", 224): 39_337_984, ("mobilenetv4_hybrid_large", 384): 339_738_624,
    ("mobilenetv4_hybrid_medium_075", 224): 24_586_240, ("mobilenetv4_hybrid_medium_075", 256): 41_943_040,
    ("mobilenetv4_hybrid_large_075", 384): 339_738_624, ("mobilenetv4_hybrid_large_075", 224): 39_337_984,
    ("mobilenetv4_hybrid_large", 256): 67_108_864, ("mobilenetv4_hybrid_medium", 384): 212_336_640,
    ("mobilenetv4_hybrid_medium", 250): 41_943_040,
}
# torchvision 0.29.1 (weights=None, width_mult=w), forward hooks; reference_numbers.json
# "torchvision/mobilenet_v3_*_w<w>" and "torchvision/mobilenet_v2_w<w>" (V2 1.3: reference_specs.md
# section 1, "torchvision width 1.3").
TORCHVISION = {
    ("mobilenetv3_large_100", 0.75): (3_377_576, 140_033_816), ("mobilenetv3_small_100", 0.75): (1_653_920, 39_115_576),
    ("mobilenetv3_large_100", 0.5): (1_734_576, 64_962_192), ("mobilenetv3_small_100", 0.5): (917_264, 18_970_736),
    ("mobilenetv2_100", 0.35): (1_677_128, 59_285_808), ("mobilenetv2_100", 0.5): (1_968_680, 97_131_840),
    ("mobilenetv2_100", 0.75): (2_636_424, 209_069_792), ("mobilenetv2_100", 1.4): (6_108_776, 582_195_824),
    ("mobilenetv2_100", 1.3): (5_386_792, 509_374_560),
}

# A real forward at 384 for the ~35M-parameter models takes seconds each on a busy machine: the
# largest variants, 384 and the extra resolutions of width variants run in the slow set (-m slow);
# every name at 224, the V4 papers' 256 and Hybrid-M's attention (224, 256, odd 250) stay in the default run.
SLOW = {"mobilenetv4_conv_large", "mobilenetv4_hybrid_large", "mobilenetv4_hybrid_large_075"}
SLOW_EXTRA = {("mobilenetv3_large_150d", 256), ("mobilenetv4_conv_small_035", 256), ("mobilenetv4_conv_small_050", 256)}
CASES = sorted({**REFERENCE, **MEASURED_HERE}.items())


def _param(case):
    (name, res), counts = case
    slow = name in SLOW or res == 384 or (name, res) in SLOW_EXTRA
    return pytest.param(name, res, counts, id=f"{name}@{res}", marks=[pytest.mark.slow] if slow else [])


@lru_cache(maxsize=2)  # consecutive cases share a model (one name at several resolutions)
def _model(name, width=None, rule="timm"):
    return create_model(name, width_mult=width, width_rule=rule)


@lru_cache(maxsize=None)
def _summary(name, res, width=None, rule="timm"):
    return summary(_model(name, width, rule), (3, res, res))


def _assert_rows_add_up(s, model):
    assert sum(r["params"] for r in s.rows) == s.total_params == model.num_parameters()
    assert sum(r["madds"] for r in s.rows) == s.total_madds
    assert sum(r["activation_bytes"] for r in s.rows) == s.total_activation_bytes


@pytest.mark.parametrize("name,res,counts", [_param(c) for c in CASES])
def test_totals_equal_the_reference_to_the_unit(name, res, counts):
    s = _summary(name, res)
    assert (s.total_params, s.total_madds) == counts
    _assert_rows_add_up(s, _model(name))
    assert s.attention_madds == ATTENTION.get((name, res), 0)


@pytest.mark.parametrize("name,width", sorted(TORCHVISION))
def test_torchvision_width_rule_totals(name, width):
    s = _summary(name, 224, width, "torchvision")
    assert (s.total_params, s.total_madds) == TORCHVISION[(name, width)]


def test_every_registered_model_is_counted():
    assert {name for (name, _), _ in CASES} == set(npmobilenet.list_models())
    assert set(ATTENTION) <= set(dict(CASES))


@pytest.mark.parametrize("name,res", [("mobilenetv4_hybrid_medium", 256), ("mobilenetv4_hybrid_medium", 250)])
def test_attention_rows_follow_the_formula(name, res):
    """One attention row per MQA: heads * Lq * Lkv * (dk + dv), Lkv from the K/V map's own size."""
    s, modules = _summary(name, res), dict(_model(name).named_modules())
    rows = [r for r in s.rows if r["kind"].startswith("attention")]
    assert len(rows) == 8 and sum(r["madds"] for r in rows) == ATTENTION[(name, res)]
    for r in rows:
        mqa, (_, _, h, w) = modules[r["name"]], r["input_shape"]
        v = mqa.kv_stride
        lkv = math.ceil(h / v) * math.ceil(w / v)
        assert r["madds"] == mqa.num_heads * h * w * lkv * (mqa.key_dim + mqa.value_dim)


@pytest.mark.parametrize("name,res", [("mobilenetv3_large_100", 224), ("mobilenetv4_hybrid_medium", 250),
                                      ("mobilenetv3_small_100", 225)])
def test_each_conv_and_linear_row_follows_the_formula(name, res):
    s, modules = _summary(name, res), dict(_model(name).named_modules())
    convs = 0
    for r in s.rows:
        m = modules[r["name"]]
        if r["op"] == "Conv2d":
            n, c, h, w = r["input_shape"]
            ho, wo = math.ceil(h / m.stride[0]), math.ceil(w / m.stride[1])       # 'same' padding
            assert r["output_shape"] == (n, m.out_channels, ho, wo)
            kh, kw = m.kernel_size
            assert r["madds"] == ho * wo * m.out_channels * (c // m.groups) * kh * kw
            assert r["params"] == m.weight.size + (m.out_channels if "bias" in m._params else 0)
            convs += 1
        elif r["op"] == "Linear":
            assert r["madds"] == r["input_shape"][1] * r["output_shape"][1]
        elif not r["kind"].startswith("attention"):
            assert r["madds"] == 0       # BN, activations, pooling, SE scale, ...: not in the headline
    assert convs == sum(type(m).__name__ == "Conv2d" for m in modules.values())


def test_formulas():
    # MobileNetV1's stem at 224: 112 * 112 * 32 * 3 * 3 * 3
    assert count.conv_madds(1, 3, 32, 3, (112, 112)) == 10_838_016
    assert count.conv_madds(2, 64, 64, 3, (56, 56), groups=64) == 2 * 56 * 56 * 64 * 9
    assert count.conv_params(240, 64, 1, bias=True) == 240 * 64 + 64
    assert count.linear_madds(1, 1280, 1000) == 1_280_000
    assert count.attention_madds(1, 4, 256, 64, 64, 64) == 4 * 256 * 64 * 128
    assert [count.out_size(s, 2) for s in (224, 7, 1)] == [112, 4, 1]


def test_kind_column():
    s = _summary("mobilenetv1_100", 224)
    kinds = {r["name"]: r["kind"] for r in s.rows}
    assert kinds["conv_stem"] == "conv 3x3 s2" and kinds["blocks.1.0.conv_dw"] == "dw 3x3 s2"
    assert kinds["blocks.1.0.conv_pw"] == "pw 1x1" and kinds["classifier"] == "linear"
    assert kinds["bn1"] == "batchnorm" and kinds["act1"] == "relu6"
    assert s.rows[0]["name"] == "conv_stem" and s.rows[-1]["name"] == "classifier"   # the order they ran


# ---- the elementwise breakdown (F3) ------------------------------------------------------------------
def _numel(shape):
    return int(np.prod(shape))


def test_batchnorm_elements_are_the_bn_outputs():
    for name, res in [("mobilenetv3_large_100", 224), ("mobilenetv4_hybrid_medium", 256)]:
        s = _summary(name, res)
        assert s.elementwise["batchnorm"] == sum(_numel(r["output_shape"]) for r in s.rows if r["op"] == "BatchNorm2d")
        assert s.elementwise["relu"] == sum(_numel(r["output_shape"]) for r in s.rows if r["op"] == "ReLU")


def test_v1_breakdown_from_the_paper_table():
    """V1 (Howard et al. 2017, Table 1): every conv is followed by BN and ReLU6; no residuals."""
    dw_pw = [(32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 512, 2)] + \
        [(512, 512, 1)] * 5 + [(512, 1024, 2), (1024, 1024, 1)]
    res, bn = 112, 32 * 112 * 112
    for c_in, c_out, stride in dw_pw:
        res //= stride
        bn += (c_in + c_out) * res * res       # the depthwise's BN on c_in, the pointwise's on c_out
    e = _summary("mobilenetv1_100", 224).elementwise
    assert e["batchnorm"] == e["relu6"] == bn
    assert e["pooling (input elements)"] == 1024 * 7 * 7 and e["bias add"] == 1000
    assert "residual add" not in e and "SE channel scale" not in e


def test_v2_residual_adds_from_the_paper_table():
    """V2 (Sandler et al. 2018, Table 2): (t, c, n, s); a block adds its input iff stride 1 and in == out."""
    table = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
    res, c_in, adds = 112, 32, 0
    for _, c, n, s in table:
        for i in range(n):
            stride = s if i == 0 else 1
            res //= stride
            adds += c * res * res if stride == 1 and c_in == c else 0
            c_in = c
    assert _summary("mobilenetv2_100", 224).elementwise["residual add"] == adds


def test_v3_squeeze_excite_from_the_paper_table():
    """V3-Large (Howard et al. 2019, Table 1): SE on the expanded width after the depthwise; squeeze
    make_divisible(C / 4); the gate is a hard-sigmoid on a 1x1 map; 960->1280 head conv and classifier have biases."""
    se = [(72, 28), (120, 28), (120, 28), (480, 14), (672, 14), (672, 7), (960, 7), (960, 7)]   # (C, map side)
    rd = {72: 24, 120: 32, 480: 120, 672: 168, 960: 240}
    e = _summary("mobilenetv3_large_100", 224).elementwise
    assert e["SE channel scale"] == e["SE pooling (input elements)"] == sum(c * r * r for c, r in se)
    assert e["hardsigmoid"] == sum(c for c, _ in se)
    assert e["bias add"] == sum(rd[c] + c for c, _ in se) + 1280 + 1000
    assert e["pooling (input elements)"] == 960 * 7 * 7


def test_attention_softmax_visits_every_logit():
    e = _summary("mobilenetv4_hybrid_medium", 256).elementwise
    assert e["softmax"] == e["attention scale"] == 41_943_040 // (64 + 64)   # heads*Lq*Lkv; dk = dv = 64
    assert "layer scale" in e and "hardswish" not in e


def test_breakdown_never_enters_the_headline():
    s = _summary("mobilenetv4_hybrid_medium", 256)
    core = sum(r["madds"] for r in s.rows if r["op"] in ("Conv2d", "Linear") or r["kind"].startswith("attention"))
    assert core == s.total_madds
    assert list(s.elementwise)[0] == "batchnorm" and all(v > 0 for v in s.elementwise.values())


# ---- the table -----------------------------------------------------------------------------------------
def test_table_states_its_convention_and_totals():
    s = _summary("mobilenetv3_large_100", 224)
    text = str(s)
    assert "1 MAdd = 1 multiply + 1 add; FLOPs ≈ 2 × MAdds" in text
    for col in ("layer", "kind", "input", "output", "params", "MAdds", "%", "cumulative", "train mem"):
        assert col in text.splitlines()[3]
    last = next(line for line in text.splitlines() if line.startswith("classifier"))
    assert last.split()[-3] == f"{s.total_madds:,}"           # the cumulative column ends at the total
    assert f"{s.total_params:,}" in text and "elementwise work" in text
    assert "blocks.0.0.conv_dw" in text and "1x16x112x112" in text


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_grouped_rows_add_up(depth):
    s = _summary("mobilenetv4_hybrid_medium", 256)
    g = s.grouped(depth)
    for k in ("params", "madds", "activation_bytes"):
        assert sum(r[k] for r in g) == sum(r[k] for r in s.rows)
    assert len({r["name"] for r in g}) == len(g)
    assert all(len(r["name"].split(".")) <= depth for r in g)
    assert str(s.to_string(depth)).count("\n") < str(s).count("\n")


def test_grouped_rows_have_the_blocks_shapes_and_labels():
    s = _summary("mobilenetv4_hybrid_medium", 256)
    stages = {r["name"]: r for r in s.grouped(2)}
    assert stages["blocks.1"]["input_shape"] == (1, 48, 64, 64)
    assert stages["blocks.1"]["output_shape"] == (1, 80, 32, 32) and stages["blocks.1"]["kind"] == "stage 1"
    blocks = {r["name"]: r for r in s.grouped(3)}
    assert blocks["blocks.2.4"]["kind"] == "MQA" and blocks["blocks.2.1"]["kind"] == "FFN"
    assert blocks["blocks.2.4"]["madds"] == 30_855_168 and blocks["conv_stem"]["kind"] == "conv 3x3 s2"
    with pytest.raises(ValueError, match="depth"):
        s.grouped(0)


# ---- the published figures -----------------------------------------------------------------------------
def test_published_figures_beside_ours():
    v1 = _summary("mobilenetv1_100", 224)
    assert len(v1.published) == 1 and "4.2M params, 569M MAdds at 224x224" in v1.published[0]
    assert "Table 6" in v1.published[0] and "M = 10^6" in v1.published[0]
    assert "rounded alike: 4.2M params, 569M MAdds" in v1.published[0] and v1.published[0] in str(v1)
    cm = _summary("mobilenetv4_conv_medium", 256)
    assert "9.2M params, 1.0G MAdds at 256x256" in cm.published[0] and "2^30" in cm.published[0]
    assert "1.1G (1.0G in 2^30) MAdds" in cm.published[0]   # 1,080,244,224: 1.08e9, or 1.006 x 2^30
    assert "not comparable" in _summary("mobilenetv4_conv_medium", 224).published[0]
    assert len(_summary("mobilenetv2_140", 224).published) == 2       # the paper and the TF-slim README


def test_published_only_for_the_published_configuration():
    assert summary(create_model("mobilenetv1_025", num_classes=10), (3, 64, 64)).published == []
    assert summary(create_model("mobilenetv1_025", width_mult=0.5), (3, 64, 64)).published == []
    assert summary(create_model("mobilenetv1_025"), (3, 64, 64)).published   # (MAdds: not comparable)
    assert set(count.PUBLISHED) <= set(npmobilenet.list_models())


def test_rounding_like_the_paper():
    assert count._rounded(186_005_568, "0.2G") == "0.2G"
    assert count._rounded(1_080_244_224, "1.0G", binary=True) == "1.0G"
    assert count._rounded(6_376_220_672, "5.9G", binary=True) == "5.9G"
    assert count._rounded(216_589_760, "219M") == "217M"      # the V3 paper's 219M: reference_specs 1.2


# ---- the measuring forward pass ---------------------------------------------------------------------
def test_summary_restores_the_model():
    model = create_model("mobilenetv3_small_050", drop_rate=0.2, seed=0).eval()
    params = model.parameters()
    state = model.state_dict()
    rng_state = model.dropout.rng.bit_generator.state
    s = summary(model, (3, 64, 64))
    assert not model.training and model.dtype == np.float32
    after = model.parameters()
    assert all(after[k] is params[k] for k in params)       # the live arrays, not copies
    assert all(np.array_equal(v, model.state_dict()[k]) for k, v in state.items())
    assert model.dropout.rng.bit_generator.state == rng_state
    assert all(m.__dict__.get("cache") is None for m in model.modules())
    assert not any("forward" in m.__dict__ for m in model.modules())
    assert s.total_params == model.num_parameters()


def test_memory_is_what_backward_keeps_without_the_weights():
    conv = Conv2d(8, 16, 3, rng=0)
    s = summary(conv, (8, 10, 10))
    assert s.rows[0]["activation_bytes"] == 8 * 10 * 10 * 4     # the input x; the cached weight is a parameter
    s64 = summary(conv, (8, 10, 10), dtype=np.float64)
    assert s64.rows[0]["activation_bytes"] == 8 * 10 * 10 * 8 and conv.dtype == np.float32
    v2 = _summary("mobilenetv2_100", 224)
    assert v2.rows[0]["activation_bytes"] == 3 * 224 * 224 * 4
    assert 50 * 2**20 < v2.total_activation_bytes < 200 * 2**20


def test_batch_one_train_forward_where_bn_sees_one_value():
    # MobileNetV4's norm_head always, and every BN of the last stage at 32x32, normalise one value
    # per channel at batch 1: such a call uses the running statistics (no warning, no error).
    s = summary(create_model("mobilenetv4_conv_small_035"), (3, 32, 32))
    assert any(r["name"] == "norm_head" for r in s.rows)
    s = summary(create_model("mobilenetv1_025"), (3, 32, 32))
    assert s.rows[-2]["output_shape"] == (1, 256) and s.total_params == 470_072


def test_features_only_and_blocks():
    feats = create_model("mobilenetv3_small_050", features_only=True)
    s = summary(feats, (3, 64, 64))
    assert s.total_params == feats.num_parameters() and s.published == []


@pytest.mark.parametrize("bad", [(224, 224), (3, 0, 224), (3, 224.0, 224)])
def test_bad_input_size(bad):
    with pytest.raises(ValueError, match="input_size"):
        summary(create_model("mobilenetv1_025"), bad)
