"""Multi-query attention (MQA): many query heads, one shared key and one shared value.

MobileNetV4's Mobile MQA (Qin et al., "MobileNetV4 - Universal Models for the Mobile Ecosystem",
arXiv 2404.10518, Sec. 3.2) uses the multi-query attention of Shazeer ("Fast Transformer
Decoding: One Write-Head is All You Need", arXiv 1911.02150): every head has its own query, but
all heads read the *same* keys and values.  For one image, with heads h = 1..H,

    S_h = s * Q_h K^T            (Lq, Lkv)      s = dk ** -0.5               (1)
    P_h = softmax(S_h) row-wise  (Lq, Lkv)      softmax over the Lkv keys    (2)
    O_h = P_h V                  (Lq, dv)                                     (3)

Shapes used throughout: q (N, heads, Lq, dk), k (N, Lkv, dk), v (N, Lkv, dv),
out (N, heads, Lq, dv).  Lq and Lkv are numbers of spatial positions (H*W of a feature map).

Two paths with identical results (tested equal):

* plain: ``einsum`` with the subscripts of equations (1)-(3) and a per-head reading;
* fast: because K and V are shared, the heads fold into the query-length axis:
  q (N, heads, Lq, dk) -> (N, heads*Lq, dk), and each of (1) and (3) becomes ONE matrix product
  per image instead of one per head.  That is the point of MQA.  The work is all matrix products
  (BLAS) and a softmax (elementwise), which NumPy already runs at full speed, so this op needs no
  Numba kernel: the fast path is plain NumPy too.

Also here: the reshapes between (N, C, H, W) maps and the token layouts above (timm's channel
order, channel = head * d + j), and the query-stride resampling (average pooling before the query
projection, bilinear upsampling after the attention) that timm's ``MultiQueryAttention2d`` adds
when ``query_strides > 1`` (no released MobileNetV4 uses it).
"""
from __future__ import annotations

import numpy as np

from . import backend


# ---- the attention core ----------------------------------------------------------------------
def _check_qkv(q, k, v):
    if not all(isinstance(t, np.ndarray) for t in (q, k, v)):
        raise TypeError("mqa_forward: q, k and v must be numpy.ndarrays, got "
                        f"{type(q).__name__}, {type(k).__name__}, {type(v).__name__}")
    if q.ndim != 4 or k.ndim != 3 or v.ndim != 3:
        raise ValueError(f"mqa_forward: expected q (N, heads, Lq, dk), k (N, Lkv, dk), "
                         f"v (N, Lkv, dv); got q {q.shape}, k {k.shape}, v {v.shape}")
    n, _, _, dk = q.shape
    if k.shape[0] != n or v.shape[0] != n or k.shape[2] != dk or v.shape[1] != k.shape[1]:
        raise ValueError(f"mqa_forward: shapes do not fit together: q {q.shape} (N, heads, Lq, dk), "
                         f"k {k.shape} (N, Lkv, dk), v {v.shape} (N, Lkv, dv)")
    if not (q.dtype == k.dtype == v.dtype) or not np.issubdtype(q.dtype, np.floating):
        raise TypeError(f"mqa_forward: q, k, v must share one float dtype; got "
                        f"{q.dtype}, {k.dtype}, {v.dtype}")


def _softmax_lastaxis(s):
    """Row-wise softmax, in place on ``s``: subtracting the row max first keeps exp() <= 1, so
    large scores cannot overflow (softmax is unchanged by a per-row shift)."""
    s -= s.max(axis=-1, keepdims=True)
    np.exp(s, out=s)
    s /= s.sum(axis=-1, keepdims=True)
    return s


def _mqa_forward_plain(q, k, v, scale):
    s = scale * np.einsum("nhld,npd->nhlp", q, k)     # (1): every head h against the one K
    p = _softmax_lastaxis(s)                          # (2)
    out = np.einsum("nhlp,npe->nhle", p, v)           # (3): every head reads the one V
    return out, p


def _mqa_forward_fast(q, k, v, scale):
    n, heads, lq, dk = q.shape
    qf = q.reshape(n, heads * lq, dk)                 # heads folded into rows: K is shared
    s = np.matmul(qf, k.transpose(0, 2, 1))
    s *= scale
    p = _softmax_lastaxis(s)
    out = np.matmul(p, v)                             # (N, heads*Lq, dv)
    return out.reshape(n, heads, lq, v.shape[2]), p.reshape(n, heads, lq, k.shape[1])


def mqa_forward(q, k, v, scale=None):
    """Multi-query attention, equations (1)-(3) of the module docstring.

    Inputs:
    - q: queries, (N, heads, Lq, dk)
    - k: keys shared by all heads, (N, Lkv, dk)
    - v: values shared by all heads, (N, Lkv, dv)
    - scale: score scale s; default dk ** -0.5 (timm ``MultiQueryAttention2d.scale``)

    Returns a tuple of:
    - out: (N, heads, Lq, dv)
    - cache: (q, k, v, p, scale) with p the attention weights (N, heads, Lq, Lkv)
    """
    _check_qkv(q, k, v)
    if scale is None:
        scale = q.shape[-1] ** -0.5
    impl = _mqa_forward_fast if backend.fast() else _mqa_forward_plain
    out, p = impl(q, k, v, scale)
    return out, (q, k, v, p, scale)


def _mqa_backward_plain(dout, q, k, v, p, scale):
    dp = np.einsum("nhle,npe->nhlp", dout, v)
    dv = np.einsum("nhlp,nhle->npe", p, dout)
    ds = p * (dp - np.sum(dp * p, axis=-1, keepdims=True))
    dq = scale * np.einsum("nhlp,npd->nhld", ds, k)
    dk = scale * np.einsum("nhlp,nhld->npd", ds, q)
    return dq, dk, dv


def _mqa_backward_fast(dout, q, k, v, p, scale):
    n, heads, lq, dk_ = q.shape
    rows = heads * lq
    pf, df, qf = p.reshape(n, rows, -1), dout.reshape(n, rows, -1), q.reshape(n, rows, dk_)
    dp = np.matmul(df, v.transpose(0, 2, 1))
    dv = np.matmul(pf.transpose(0, 2, 1), df)          # the row sum adds up the heads
    dp -= np.sum(dp * pf, axis=-1, keepdims=True)      # dp is our own temporary: reuse it
    dp *= pf
    dp *= scale                                        # now s * dS
    dq = np.matmul(dp, k).reshape(q.shape)
    dk = np.matmul(dp.transpose(0, 2, 1), qf)
    return dq, dk, dv


def mqa_backward(dout, cache):
    """Backward of ``mqa_forward``.

    Inputs:
    - dout: upstream gradient dL/dout, (N, heads, Lq, dv); not modified
    - cache: from ``mqa_forward``

    Returns a tuple of:
    - dq: (N, heads, Lq, dk)
    - dk: (N, Lkv, dk)
    - dv: (N, Lkv, dv)

    Equations (per image; h = head, l = query, p = key position, d/e = feature):

        out[h,l,e] = sum_p P[h,l,p] v[p,e]
          => dP[h,l,p] = sum_e dout[h,l,e] v[p,e]             dP = dout V^T
          => dv[p,e]   = sum_{h,l} P[h,l,p] dout[h,l,e]       dv = sum_h P_h^T dout_h
             (v is shared, so the gradients of all heads add up)
        P[h,l,:] = softmax(S[h,l,:]),  dP_i/dS_j = P_i (delta_ij - P_j)
          => dS[h,l,p] = P[h,l,p] (dP[h,l,p] - sum_p' dP[h,l,p'] P[h,l,p'])
             dS = P * (dP - sum(dP * P, -1))
        S[h,l,p] = s sum_d q[h,l,d] k[p,d]
          => dq[h,l,d] = s sum_p dS[h,l,p] k[p,d]             dq = s dS K
          => dk[p,d]   = s sum_{h,l} dS[h,l,p] q[h,l,d]       dk = s sum_h dS_h^T Q_h
             (k is shared: again a sum over heads)

    The scale s is a constant (no gradient).
    """
    q, k, v, p, scale = cache
    if dout.shape != q.shape[:3] + (v.shape[2],):
        raise ValueError(f"mqa_backward: dout has shape {dout.shape}; expected "
                         f"{q.shape[:3] + (v.shape[2],)} (N, heads, Lq, dv)")
    impl = _mqa_backward_fast if backend.fast() else _mqa_backward_plain
    return impl(dout, q, k, v, p, scale)


# ---- reshapes between feature maps and tokens (timm's layouts) ------------------------------
def split_heads(t, num_heads):
    """(N, heads*d, H, W) -> (N, heads, H*W, d); channel c = head*d + j, as timm's
    ``_reshape_projected_query``.  Its inverse (and its backward) is ``merge_heads``."""
    n, c, h, w = t.shape
    return np.ascontiguousarray(t.reshape(n, num_heads, c // num_heads, h * w).transpose(0, 1, 3, 2))


def merge_heads(t, height, width):
    """(N, heads, H*W, d) -> (N, heads*d, H, W), as timm's ``_reshape_output``.  Its inverse (and
    its backward) is ``split_heads``."""
    n, heads, _, d = t.shape
    return np.ascontiguousarray(t.transpose(0, 1, 3, 2).reshape(n, heads * d, height, width))


def to_tokens(t):
    """(N, d, H, W) -> (N, H*W, d), as timm's ``_reshape_input``.  Inverse: ``from_tokens``."""
    n, d, h, w = t.shape
    return np.ascontiguousarray(t.reshape(n, d, h * w).transpose(0, 2, 1))


def from_tokens(t, height, width):
    """(N, H*W, d) -> (N, d, H, W).  Inverse (and backward) of ``to_tokens``."""
    n, _, d = t.shape
    return np.ascontiguousarray(t.transpose(0, 2, 1).reshape(n, d, height, width))


# ---- query-stride resampling (timm's query.down_pool and output.upsample) -------------------
def avg_pool_forward(x, stride):
    """Non-overlapping average pooling, kernel = stride = (sh, sw), no padding, floor size
    (torch ``nn.AvgPool2d(kernel_size=stride)``): rows/columns past the last full window are
    dropped.

    Inputs:  x (N, C, H, W); stride (sh, sw).
    Returns: y (N, C, H//sh, W//sw), cache.
    """
    sh, sw = stride
    n, c, h, w = x.shape
    ho, wo = h // sh, w // sw
    y = x[:, :, :ho * sh, :wo * sw].reshape(n, c, ho, sh, wo, sw).mean(axis=(3, 5))
    return y, (x.shape, stride)


def avg_pool_backward(dy, cache):
    """Each input in a window receives dy / (sh*sw); the dropped edge rows/columns receive 0.

    Inputs:  dy (N, C, Ho, Wo); cache.   Returns: dx (N, C, H, W).
    """
    shape, (sh, sw) = cache
    n, c, ho, wo = dy.shape
    dx = np.zeros(shape, dtype=dy.dtype)
    share = np.broadcast_to((dy / (sh * sw))[:, :, :, None, :, None], (n, c, ho, sh, wo, sw))
    dx[:, :, :ho * sh, :wo * sw] = share.reshape(n, c, ho * sh, wo * sw)
    return dx


def bilinear_matrix(size_in, scale, dtype=np.float64):
    """The (size_out, size_in) matrix A of 1-D linear interpolation with ``align_corners=False``
    and an explicit scale factor, as torch ``nn.Upsample(scale_factor=s, mode='bilinear')``:
    size_out = floor(size_in * s); output i samples x at src = (i + 0.5) / s - 0.5, clamped at 0,
    mixing x[floor(src)] and its right neighbour (clamped at the last index)."""
    size_out = int(np.floor(size_in * scale))
    src = np.maximum((np.arange(size_out) + 0.5) / scale - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), size_in - 1)
    i1 = np.minimum(i0 + 1, size_in - 1)
    frac = src - i0
    a = np.zeros((size_out, size_in), dtype=dtype)
    rows = np.arange(size_out)
    np.add.at(a, (rows, i0), 1.0 - frac)
    np.add.at(a, (rows, i1), frac)
    return a


def upsample_bilinear_forward(x, scale):
    """Bilinear upsampling is separable: y = A_h x A_w^T for every (n, c) plane.

    Inputs:  x (N, C, H, W); scale (sh, sw).
    Returns: y (N, C, floor(H*sh), floor(W*sw)), cache.
    """
    ah = bilinear_matrix(x.shape[2], scale[0], x.dtype)
    aw = bilinear_matrix(x.shape[3], scale[1], x.dtype)
    return np.einsum("oh,nchw,pw->ncop", ah, x, aw, optimize=True), (ah, aw)


def upsample_bilinear_backward(dy, cache):
    """y = A_h x A_w^T is linear in x, so dx = A_h^T dy A_w.

    Inputs:  dy (N, C, Ho, Wo); cache.   Returns: dx (N, C, H, W).
    """
    ah, aw = cache
    return np.einsum("oh,ncop,pw->nchw", ah, dy, aw, optimize=True)
