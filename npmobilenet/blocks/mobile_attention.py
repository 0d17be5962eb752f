"""Mobile MQA: MobileNetV4's attention block (timm ``MultiQueryAttention2d`` and ``MobileAttention``).

Qin et al., "MobileNetV4 - Universal Models for the Mobile Ecosystem", arXiv 2404.10518, Sec. 3.2
("Mobile MQA"): multi-query attention (one key and one value head shared by all query heads,
Shazeer, arXiv 1911.02150) whose keys and values are computed on a spatially downsampled map
("Spatial Reduction", kv_stride 2 at 1/16 resolution in the hybrids).  For an input x (N, C, H, W):

    q = Conv1x1(x)                                  C -> heads*dk,   full resolution
    k = Conv1x1(BN(DWConv_kxk/stride v(x)))         C -> dk,         ceil(H/v) x ceil(W/v)
    v = Conv1x1(BN(DWConv_kxk/stride v(x)))         C -> dv,         its own DW conv + BN
    o = softmax(q k^T / sqrt(dk)) v                 per head; see ops/attention.py
    y = Conv1x1(o)                                  heads*dv -> C

(the depthwise conv + BN are present only when kv_stride > 1; no conv has a bias).  The block is
pre-norm with a layer-scaled residual:  out = x + gamma * MQA(BN(x)).

Parameter names are timm's state_dict keys: ``norm.*``, ``attn.query.proj.weight``,
``attn.key.down_conv.weight``, ``attn.key.norm.*``, ``attn.key.proj.weight``, the same under
``attn.value``, ``attn.output.proj.weight`` and ``layer_scale.gamma`` (plus ``attn.query.norm.*``
with query strides and ``conv_cpe_dw.*`` with ``use_cpe``, both unused by the released models).
"""
from __future__ import annotations

import numpy as np

from ..module import DEFAULT_DTYPE, Module, Sequential, check_input
from ..ops import attention as A
from ..ops.batchnorm import BatchNorm2d
from ..ops.conv import Conv2d
from ..ops.residual import LayerScale2d


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _timm_padding(padding, kernel_size, stride, where):
    """timm ``get_padding_value``: '' means symmetric ((stride-1) + (k-1)) // 2, 'valid' means 0."""
    if isinstance(padding, (int, np.integer)) and not isinstance(padding, bool):
        return int(padding)
    if padding == "":
        return ((stride - 1) + (kernel_size - 1)) // 2
    if padding == "valid":
        return 0
    raise ValueError(f"{where}: padding must be '' (timm's symmetric default, used by MobileNetV4), "
                     f"'valid' or an int; got {padding!r} (TF 'same' padding is not supported)")


def _conv_out(size, kernel_size, stride, padding):
    return (size + 2 * padding - kernel_size) // stride + 1


def _xavier_uniform(w, rng):
    """torch ``xavier_uniform_``: U(-b, b), b = sqrt(6 / (fan_in + fan_out)), fans counted as torch
    does (fan_in = w.shape[1]*k*k, fan_out = w.shape[0]*k*k, also for a depthwise conv)."""
    receptive = int(np.prod(w.shape[2:]))
    bound = np.sqrt(6.0 / ((w.shape[0] + w.shape[1]) * receptive))
    w[...] = rng.uniform(-bound, bound, size=w.shape)


class QueryDownPool(Module):
    """timm ``query.down_pool``: ``nn.AvgPool2d(kernel_size=query_strides)`` (no parameters)."""

    def __init__(self, stride):
        super().__init__()
        self.stride, self.cache = _pair(stride), None

    def forward(self, x):
        y, self.cache = A.avg_pool_forward(x, self.stride)
        return y

    def backward(self, dy):
        return A.avg_pool_backward(dy, self._need_cache(self.cache))


class OutputUpsample(Module):
    """timm ``output.upsample``: ``nn.Upsample(scale_factor=query_strides, mode='bilinear')``."""

    def __init__(self, scale_factor):
        super().__init__()
        self.scale_factor, self.cache = _pair(scale_factor), None

    def forward(self, x):
        y, self.cache = A.upsample_bilinear_forward(x, self.scale_factor)
        return y

    def backward(self, dy):
        return A.upsample_bilinear_backward(dy, self._need_cache(self.cache))


class MultiQueryAttention2d(Module):
    """Multi-query attention on an (N, C, H, W) map with optional K/V (and query) downsampling.

    Arguments as timm 1.0.31 ``layers/attention2d.py::MultiQueryAttention2d``: ``dim`` in channels,
    ``dim_out`` (default dim), ``num_heads``, ``key_dim`` / ``value_dim`` (default dim//num_heads),
    ``query_strides``, ``kv_stride``, ``dw_kernel_size`` (of the K/V downsampling depthwise conv),
    ``padding``, ``use_bias`` (1x1 projections).  ``dilation`` must be 1 and the dropouts 0.
    ``norm_layer`` must be None or BatchNorm2d (the only norm here).  ``rng`` (a seed or a
    ``numpy.random.Generator``) draws the Xavier init of the projections and depthwise convs
    (timm's ``init_weights``); ``dtype`` is that of the parameters.
    """

    def __init__(self, dim, dim_out=None, num_heads=8, key_dim=None, value_dim=None,
                 query_strides=1, kv_stride=1, dw_kernel_size=3, dilation=1, padding="",
                 attn_drop=0.0, proj_drop=0.0, norm_layer=None, use_bias=False, rng=None,
                 dtype=DEFAULT_DTYPE):
        super().__init__()
        where = "MultiQueryAttention2d"
        if dilation != 1:
            raise ValueError(f"{where}: dilation must be 1 (no MobileNetV4 dilates attention), got {dilation}")
        if attn_drop or proj_drop:
            raise ValueError(f"{where}: attn_drop and proj_drop must be 0 (MobileNetV4 uses none); "
                             f"got attn_drop={attn_drop}, proj_drop={proj_drop}")
        if norm_layer not in (None, BatchNorm2d):
            raise ValueError(f"{where}: norm_layer must be None or BatchNorm2d, got {norm_layer!r}")
        for name, val in (("dim", dim), ("num_heads", num_heads), ("kv_stride", kv_stride),
                          ("dw_kernel_size", dw_kernel_size)):
            if not isinstance(val, (int, np.integer)) or val < 1:
                raise ValueError(f"{where}: {name} must be a positive int, got {val!r}")
        dim_out = dim_out or dim
        self.dim, self.dim_out, self.num_heads = dim, dim_out, num_heads
        self.key_dim = key_dim or dim // num_heads
        self.value_dim = value_dim or dim // num_heads
        if self.key_dim < 1 or self.value_dim < 1:
            raise ValueError(f"{where}: key_dim/value_dim must be >= 1; got {self.key_dim}/{self.value_dim}"
                             f" (default dim // num_heads = {dim} // {num_heads})")
        self.query_strides = _pair(query_strides)
        if not all(isinstance(s, (int, np.integer)) and s >= 1 for s in self.query_strides):
            raise ValueError(f"{where}: query_strides must be a positive int or pair, got {query_strides!r}")
        self.kv_stride, self.dw_kernel_size = kv_stride, dw_kernel_size
        self.has_query_strides = any(s > 1 for s in self.query_strides)
        self.scale = self.key_dim ** -0.5
        pad1 = _timm_padding(padding, 1, 1, where)
        pad_dw = _timm_padding(padding, dw_kernel_size, kv_stride, where)
        self.kv_padding = pad_dw
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)

        query = {}
        if self.has_query_strides:
            query["down_pool"] = QueryDownPool(self.query_strides)
            query["norm"] = BatchNorm2d(dim, dtype=dtype)
        query["proj"] = Conv2d(dim, num_heads * self.key_dim, 1, padding=pad1, bias=use_bias, rng=rng,
                               dtype=dtype)
        self.query = Sequential(query)
        for name, width in (("key", self.key_dim), ("value", self.value_dim)):
            path = {}
            if kv_stride > 1:  # K and V each get their own depthwise downsampler and BN
                path["down_conv"] = Conv2d(dim, dim, dw_kernel_size, stride=kv_stride,
                                           padding=pad_dw, groups=dim, rng=rng, dtype=dtype)
                path["norm"] = BatchNorm2d(dim, dtype=dtype)
            path["proj"] = Conv2d(dim, width, 1, padding=pad1, bias=use_bias, rng=rng, dtype=dtype)
            setattr(self, name, Sequential(path))
        output = {}
        if self.has_query_strides:
            output["upsample"] = OutputUpsample(self.query_strides)
        output["proj"] = Conv2d(self.value_dim * num_heads, dim_out, 1, padding=pad1, bias=use_bias,
                                rng=rng, dtype=dtype)
        self.output = Sequential(output)
        self.cache = None
        self.init_weights(rng)

    def init_weights(self, rng=None):
        """Xavier-uniform projections and depthwise convs, as timm (better MNv4-hybrid stability)."""
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        convs = [self.query.proj, self.key.proj, self.value.proj, self.output.proj]
        if self.kv_stride > 1:
            convs += [self.key.down_conv, self.value.down_conv]
        for conv in convs:
            _xavier_uniform(conv.weight, rng)

    def forward(self, x):
        """Inputs: x (N, dim, H, W).  Returns: y (N, dim_out, H', W'), H' = H unless query strides
        do not divide H (then (H // s) * s, as timm)."""
        check_input(self, x, channels=self.dim, dtype=self.dtype)
        q = self.query.forward(x)                              # (N, heads*dk, Hq, Wq)
        k = self.key.forward(x)                                # (N, dk, Hkv, Wkv)
        v = self.value.forward(x)                              # (N, dv, Hkv, Wkv)
        hq, wq = q.shape[2:]
        hkv, wkv = k.shape[2:]
        o, attn_cache = A.mqa_forward(A.split_heads(q, self.num_heads), A.to_tokens(k),
                                      A.to_tokens(v), self.scale)
        self.cache = (attn_cache, (hq, wq), (hkv, wkv))
        return self.output.forward(A.merge_heads(o, hq, wq))   # (N, dim_out, ...)

    def backward(self, dy):
        """Inputs: dy (N, dim_out, H', W').  Returns: dx (N, dim, H, W).

        x feeds three paths (query, key, value), so dx is the sum of the three paths' input
        gradients.  Each reshape is undone by its inverse (split_heads <-> merge_heads,
        to_tokens <-> from_tokens), which is also its backward.
        """
        attn_cache, (hq, wq), (hkv, wkv) = self._need_cache(self.cache)
        do = self.output.backward(dy)                           # (N, heads*dv, Hq, Wq)
        dq, dk, dv = A.mqa_backward(A.split_heads(do, self.num_heads), attn_cache)
        return (self.query.backward(A.merge_heads(dq, hq, wq))
                + self.key.backward(A.from_tokens(dk, hkv, wkv))
                + self.value.backward(A.from_tokens(dv, hkv, wkv)))

    # ---- multiply-adds (1 MAdd = one multiply-accumulate; the papers' core count) ---------------
    def _sizes(self, input_shape):
        n, c, h, w = _nchw(input_shape, self)
        hq, wq = h // self.query_strides[0], w // self.query_strides[1]
        if self.kv_stride > 1:
            hkv = _conv_out(h, self.dw_kernel_size, self.kv_stride, self.kv_padding)
            wkv = _conv_out(w, self.dw_kernel_size, self.kv_stride, self.kv_padding)
        else:
            hkv, wkv = h, w
        return n, c, (h, w), (hq, wq), (hkv, wkv)

    def attention_madds(self, input_shape):
        """heads * Lq * Lkv * (dk + dv) per image, times N: the QK^T and PV products."""
        n, _, _, (hq, wq), (hkv, wkv) = self._sizes(input_shape)
        return int(n * self.num_heads * hq * wq * hkv * wkv * (self.key_dim + self.value_dim))

    def madds(self, input_shape):
        """All core multiply-adds of the layer: the query, key, value, K/V-downsampling and
        output convs plus ``attention_madds``.  Excluded: BN, softmax, the scale, pooling and
        upsampling."""
        n, c, _, (hq, wq), (hkv, wkv) = self._sizes(input_shape)
        heads, dk, dv = self.num_heads, self.key_dim, self.value_dim
        total = n * hq * wq * c * heads * dk                      # query proj
        total += n * hkv * wkv * c * (dk + dv)                    # key and value proj
        if self.kv_stride > 1:                                     # two depthwise k x k convs
            total += 2 * n * hkv * wkv * c * self.dw_kernel_size ** 2
        ho, wo = (int(np.floor(hq * self.query_strides[0])), int(np.floor(wq * self.query_strides[1])))
        total += n * ho * wo * heads * dv * self.dim_out           # output proj (after upsampling)
        return int(total + self.attention_madds(input_shape))

    def extra_repr(self):
        return (f"dim={self.dim}, dim_out={self.dim_out}, num_heads={self.num_heads}, "
                f"key_dim={self.key_dim}, value_dim={self.value_dim}, kv_stride={self.kv_stride}, "
                f"query_strides={self.query_strides}")


def _nchw(input_shape, layer):
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 3:
        shape = (1,) + shape
    if len(shape) != 4:
        raise ValueError(f"{layer._label()}: input_shape must be (N, C, H, W) or (C, H, W), got {input_shape}")
    return shape


class MobileAttention(Module):
    """MobileNetV4 Mobile MQA block: ``x + layer_scale(attn(norm(x)))`` (timm ``MobileAttention``).

    Arguments as timm 1.0.31 ``models/_efficientnet_blocks.py::MobileAttention``.  Used here:
    ``in_chs``, ``out_chs``, ``stride`` (timm uses it only to decide the skip: the block never
    downsamples), ``dw_kernel_size``, ``pad_type``, ``num_heads`` (None: in_chs // key_dim),
    ``key_dim``, ``value_dim``, ``use_multi_query`` (must be True: the MQA path; timm's builder
    passes it for 'mqa' blocks), ``query_strides``, ``kv_stride``, ``cpe_dw_kernel_size``,
    ``use_cpe``, ``noskip``, ``layer_scale_init_value`` (None: no layer scale).  Accepted and
    ignored as in timm: ``group_size``, ``act_layer`` (the norm has no activation), ``aa_layer``,
    ``use_bias`` (timm does not forward it to the MQA).  ``dilation`` must be 1 and
    ``drop_path_rate``, ``attn_drop``, ``proj_drop`` must be 0.  ``rng`` and ``dtype`` as in
    ``MultiQueryAttention2d``.

    The attention-product MAdds are reported by the child ``attn.attention_madds`` only (a
    counter walking the modules must see them once); ``madds`` gives the block's total.
    """

    def __init__(self, in_chs, out_chs, stride=1, dw_kernel_size=3, dilation=1, group_size=1,
                 pad_type="", num_heads=8, key_dim=64, value_dim=64, use_multi_query=False,
                 query_strides=(1, 1), kv_stride=1, cpe_dw_kernel_size=3, noskip=False,
                 act_layer=None, norm_layer=None, aa_layer=None, drop_path_rate=0.0,
                 attn_drop=0.0, proj_drop=0.0, layer_scale_init_value=1e-5, use_bias=False,
                 use_cpe=False, rng=None, dtype=DEFAULT_DTYPE):
        super().__init__()
        where = "MobileAttention"
        if not use_multi_query:
            raise ValueError(f"{where}: only Mobile MQA is implemented: pass use_multi_query=True "
                             "(timm's builder does for 'mqa' blocks; its 'mha' path is not used by MobileNetV4)")
        if drop_path_rate:
            raise ValueError(f"{where}: drop_path_rate must be 0, got {drop_path_rate}")
        if dilation != 1:
            raise ValueError(f"{where}: dilation must be 1, got {dilation}")
        self.in_chs, self.out_chs, self.stride = in_chs, out_chs, stride
        self.has_skip = (stride == 1 and in_chs == out_chs) and not noskip
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        if use_cpe:  # conditional position encoding: x + DWConv(x), with bias
            self.conv_cpe_dw = Conv2d(in_chs, in_chs, cpe_dw_kernel_size,
                                      padding=(cpe_dw_kernel_size - 1) // 2, groups=in_chs, bias=True,
                                      rng=rng, dtype=dtype)
        else:
            self.conv_cpe_dw = None
        self.norm = BatchNorm2d(in_chs, dtype=dtype)  # timm BatchNormAct2d(apply_act=False): a plain BN
        if num_heads is None:
            if in_chs % key_dim:
                raise ValueError(f"{where}: num_heads=None needs key_dim to divide in_chs; "
                                 f"got in_chs={in_chs}, key_dim={key_dim}")
            num_heads = in_chs // key_dim
        self.attn = MultiQueryAttention2d(
            in_chs, dim_out=out_chs, num_heads=num_heads, key_dim=key_dim, value_dim=value_dim,
            query_strides=query_strides, kv_stride=kv_stride, dw_kernel_size=dw_kernel_size,
            dilation=dilation, padding=pad_type, attn_drop=attn_drop, proj_drop=proj_drop,
            norm_layer=norm_layer, rng=rng, dtype=dtype)
        if layer_scale_init_value is not None:
            self.layer_scale = LayerScale2d(out_chs, layer_scale_init_value, dtype=dtype)
        else:
            self.layer_scale = None
        self.cache = None

    def forward(self, x):
        """Inputs: x (N, in_chs, H, W).  Returns: (N, out_chs, H', W') (H' = H, see the MQA)."""
        check_input(self, x, channels=self.in_chs, dtype=self.dtype)
        if self.conv_cpe_dw is not None:
            x = x + self.conv_cpe_dw.forward(x)
        y = self.attn.forward(self.norm.forward(x))
        if self.layer_scale is not None:
            y = self.layer_scale.forward(y)
        if self.has_skip:
            if y.shape != x.shape:
                raise ValueError(f"{self._label()}: the residual needs the attention output {y.shape} "
                                 f"to match the input {x.shape}; query_strides must divide H and W")
            y = y + x
        self.cache = x.shape
        return y

    def backward(self, dy):
        """Inputs: dy (N, out_chs, H', W').  Returns: dx (N, in_chs, H, W).

            x1 = x + cpe(x)              => dx  = dx1 + cpe^T dx1       (only with use_cpe)
            y  = x1 + gamma * attn(norm(x1))
                                         => dx1 = dy + norm^T attn^T (gamma * dy)
        """
        self._need_cache(self.cache)
        d = self.layer_scale.backward(dy) if self.layer_scale is not None else dy
        dx = self.norm.backward(self.attn.backward(d))
        if self.has_skip:
            dx = dx + dy
        if self.conv_cpe_dw is not None:
            dx = dx + self.conv_cpe_dw.backward(dx)
        return dx

    def madds(self, input_shape):
        """The MQA's multiply-adds (convs + attention products), plus the CPE depthwise conv."""
        n, c, h, w = _nchw(input_shape, self)
        cpe = n * h * w * c * self.conv_cpe_dw.weight[0].size if self.conv_cpe_dw is not None else 0
        return int(cpe + self.attn.madds((n, c, h, w)))

    def extra_repr(self):
        return f"in_chs={self.in_chs}, out_chs={self.out_chs}, has_skip={self.has_skip}"
