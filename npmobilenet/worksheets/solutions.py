"""Worked solutions of the FLOP worksheets: one (params, MAdds) formula per layer kind.

Conventions (the papers'; ``npmobilenet.count``): a conv's output is ceil(H / stride) on a side;
a conv costs out_pixels · C_out · (C_in / groups) · k² MAdds; biases, BN, activations, pooling, the
SE channel scale, layer scale and residual adds cost no MAdds; parameters include every bias, BN's
γ and β (2 per channel) and the layer-scale γ.  BN running statistics are buffers, not parameters.
"""


def out_size(size, stride):
    """ceil(size / stride): the output side of a 'same'-padded conv."""
    return -(-size // stride)


def standard_conv(L):
    ho, wo = out_size(L.h_in, L.stride), out_size(L.w_in, L.stride)
    params = L.c_out * L.c_in * L.k * L.k + (L.c_out if L.bias else 0)
    return params, ho * wo * L.c_out * L.c_in * L.k * L.k


def pointwise(L):
    ho, wo = out_size(L.h_in, L.stride), out_size(L.w_in, L.stride)
    return L.c_in * L.c_out + (L.c_out if L.bias else 0), ho * wo * L.c_in * L.c_out


def depthwise(L):
    ho, wo = out_size(L.h_in, L.stride), out_size(L.w_in, L.stride)
    return L.c * L.k * L.k + (L.c if L.bias else 0), ho * wo * L.c * L.k * L.k


def batchnorm(L):
    return 2 * L.c, 0


def classifier(L):
    return L.in_features * L.out_features + (L.out_features if L.bias else 0), L.in_features * L.out_features


def se(L):
    """Both 1x1 convs run on the pooled 1x1 map: C·S + S·C MAdds; both have biases."""
    return 2 * L.c * L.rd + L.rd + L.c, 2 * L.c * L.rd


def uib(L):
    """dw_start (a×a on c_in, no act) -> pw_exp -> dw_mid (k×k on mid) -> pw_proj, each with BN.

    The stride sits on dw_mid when there is one, else on dw_start.
    """
    hi, wi = L.h_in, L.w_in
    ho, wo = out_size(hi, L.stride), out_size(wi, L.stride)
    params = madds = 0
    if L.a:
        start_hw = (hi * wi) if L.k else (ho * wo)
        params += L.a * L.a * L.c_in + 2 * L.c_in
        madds += start_hw * L.c_in * L.a * L.a
    exp_hw = hi * wi if L.k else ho * wo
    params += L.c_in * L.mid + 2 * L.mid
    madds += exp_hw * L.c_in * L.mid
    if L.k:
        params += L.k * L.k * L.mid + 2 * L.mid
        madds += ho * wo * L.mid * L.k * L.k
    params += L.mid * L.c_out + 2 * L.c_out + (L.c_out if L.layer_scale else 0)
    madds += ho * wo * L.mid * L.c_out
    return params, madds


def mqa(L):
    """L = h·w queries; Lkv = ceil(h/v)·ceil(w/v) keys; K and V single-head (C -> d), no biases."""
    C, h, dk, dv, v = L.c, L.heads, L.key_dim, L.value_dim, L.kv_stride
    n_q = L.h * L.w
    n_kv = out_size(L.h, v) * out_size(L.w, v)
    params = 2 * C + C * h * dk + C * dk + C * dv + h * dv * C + (C if L.layer_scale else 0)
    madds = n_q * C * h * dk + n_kv * C * (dk + dv) + h * n_q * n_kv * (dk + dv) + n_q * h * dv * C
    if v > 1:  # a depthwise dw_k x dw_k stride-v conv + BN before each of K and V
        params += 2 * (C * L.dw_k ** 2 + 2 * C)
        madds += 2 * n_kv * C * L.dw_k ** 2
    return params, madds


FORMULAS = {"standard_conv": standard_conv, "pointwise": pointwise, "depthwise": depthwise,
            "batchnorm": batchnorm, "classifier": classifier, "se": se, "uib": uib, "mqa": mqa}
