"""The FLOP worksheets: every worked solution agrees with npmobilenet.summary layer by layer, the
totals reproduce the reference counts, and planted mistakes are caught."""
import pytest

from npmobilenet import worksheets as ws
from npmobilenet.worksheets import solutions as S

# Small resolutions keep the quick run quick; the formulas take the size as a fact, and every kind
# of layer (stem conv, FusedIB, SE, UIB in all four modes, MQA with kv_stride 1 and 2) occurs.
QUICK = [("mobilenetv1_100", 64), ("mobilenetv3_small_100", 96), ("mobilenetv4_conv_small", 64),
         ("mobilenetv4_hybrid_medium", 64)]


def out(size, stride):
    return -(-size // stride)


@pytest.mark.parametrize("kind", list(ws.KINDS))
def test_solution_agrees_on_every_layer(kind):
    result = ws.check(kind, S.FORMULAS[kind], QUICK, verbose=False)
    assert result.passed, str(result)
    assert sum(total for _, total in result.per_network.values()) > 0


def test_every_uib_mode_and_both_kv_strides_are_checked():
    sheets = [L for _, L, _, _ in ws.layers("uib", QUICK)]
    modes = {(L.a > 0, L.k > 0) for L in sheets}
    assert modes == {(True, True), (False, True), (True, False), (False, False)}  # ExtraDW, IB, ConvNeXt, FFN
    assert {L.kv_stride for _, L, _, _ in ws.layers("mqa", QUICK)} == {1, 2}


# Exact totals: timm 1.0.31 sum(p.numel()) and forward-hook MACs at 224, per reference_numbers.json
# ("timm/mobilenetv1_100": 4,231,976 / 568,740,352; "timm/mobilenetv2_100": 3,504,872 / 300,774,272;
# "timm/mobilenetv3_large_100": 5,483,032 / 216,589,760).
@pytest.mark.parametrize("name,params,madds", [("mobilenetv1_100", 4231976, 568740352),
                                               ("mobilenetv2_100", 3504872, 300774272),
                                               ("mobilenetv3_large_100", 5483032, 216589760)])
def test_summed_solutions_reproduce_the_reference_totals(name, params, madds):
    yours, library = ws.check_total(S.FORMULAS, name, 224, verbose=False)
    assert yours == library == (params, madds)


def _dw_as_full_conv(L):
    ho, wo = out(L.h_in, L.stride), out(L.w_in, L.stride)
    return L.c * L.c * L.k ** 2, ho * wo * L.c * L.c * L.k ** 2


def _conv_at_input_resolution(L):       # forgets that the stride shrinks the output
    return S.standard_conv(L)[0], L.h_in * L.w_in * L.c_out * L.c_in * L.k ** 2


def _pointwise_without_bias(L):         # V3's head conv and the SE convs have biases
    return L.c_in * L.c_out, S.pointwise(L)[1]


def _bn_counting_running_stats(L):      # Keras' count: adds the two buffers per channel
    return 4 * L.c, 0


def _classifier_without_bias(L):
    return L.in_features * L.out_features, L.in_features * L.out_features


def _se_without_biases(L):
    return 2 * L.c * L.rd, 2 * L.c * L.rd


def _se_at_full_resolution(L):          # the SE convs run on the pooled 1x1 map, not on h x w
    return S.se(L)[0], 2 * L.c * L.rd * L.h * L.w


def _uib_mid_dw_on_input_channels(L):
    p, m = S.uib(L)
    if not L.k:
        return p, m
    ho, wo = out(L.h_in, L.stride), out(L.w_in, L.stride)
    return p - L.k ** 2 * (L.mid - L.c_in), m - ho * wo * L.k ** 2 * (L.mid - L.c_in)


def _uib_without_layer_scale(L):
    p, m = S.uib(L)
    return p - (L.c_out if L.layer_scale else 0), m


def _mqa_multi_head_kv(L):              # K and V are shared by all heads: C -> d, not C -> h*d
    p, m = S.mqa(L)
    extra = (L.heads - 1) * L.c * (L.key_dim + L.value_dim)
    n_kv = out(L.h, L.kv_stride) * out(L.w, L.kv_stride)
    return p + extra, m + n_kv * extra


def _mqa_attention_at_full_kv(L):       # forgets the kv_stride in the attention products
    p, m = S.mqa(L)
    n_q, n_kv = L.h * L.w, out(L.h, L.kv_stride) * out(L.w, L.kv_stride)
    return p, m + L.heads * n_q * (n_q - n_kv) * (L.key_dim + L.value_dim)


PLANTED = [("depthwise", _dw_as_full_conv), ("standard_conv", _conv_at_input_resolution),
           ("pointwise", _pointwise_without_bias), ("batchnorm", _bn_counting_running_stats),
           ("classifier", _classifier_without_bias), ("se", _se_without_biases), ("se", _se_at_full_resolution),
           ("uib", _uib_mid_dw_on_input_channels), ("uib", _uib_without_layer_scale),
           ("mqa", _mqa_multi_head_kv), ("mqa", _mqa_attention_at_full_kv)]


@pytest.mark.parametrize("kind,wrong", PLANTED, ids=[f.__name__.strip("_") for _, f in PLANTED])
def test_planted_mistake_is_caught(kind, wrong):
    with pytest.raises(AssertionError, match=f"the {kind} formula disagrees"):
        ws.check(kind, wrong, QUICK, verbose=False)
    result = ws.check(kind, wrong, QUICK, strict=False, verbose=False)
    assert not result.passed and result.mismatches


def test_unwritten_formula_is_reported_not_failed(capsys):
    result = ws.check("depthwise", lambda L: (None, None), QUICK[:1])
    assert not result.written and not result.passed
    assert "not written yet" in capsys.readouterr().out
    assert ws.check_total({k: (lambda L: (None, None)) for k in S.FORMULAS}, *QUICK[0], verbose=False) is None


def test_unknown_kind_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown layer kind 'dw'"):
        ws.layers("dw", QUICK[:1])


@pytest.mark.slow
def test_solutions_agree_on_every_network_at_its_resolution():
    for kind, result in ws.check_all(S.FORMULAS, ws.NETWORKS, verbose=False).items():
        assert result.passed, str(result)
