"""The MobileNet module: stem, stages of blocks, head; one class for V1 to V4.

The children, in the order they run (and timm's ``state_dict`` order)::

    conv_stem  3x3 stride 2 (1 with small_input), in_chans -> stem      bn1, act1
    blocks     blocks.i.j: stage i, block j (built from the table by ``npmobilenet.build``)
    head, by table (``Arch.head``):
      "pool"           global_pool -> [dropout] -> classifier                           V1
      "conv"           conv_head 1x1 -> bn2 -> act2 -> global_pool -> [dropout] -> classifier  V1h, V2
      "efficient"      global_pool -> conv_head 1x1 (bias, no BN) -> act2 -> flatten -> [dropout] -> classifier  V3
      "efficient_norm" global_pool -> conv_head 1x1 (no bias) -> norm_head BN -> act2 -> flatten
                       -> [dropout] -> classifier                                       V4

The "efficient" heads pool *before* the 1x1 conv (Howard et al., 2019, Sec. 5.1.2): the 960 ->
1280 conv then runs on a 1x1 map, saving its MAdds at no loss.  ``features_only`` keeps the stem
and blocks only and returns the feature map of every resolution level as a list (timm's
``feature_info``); its backward takes a list of gradients, one per map (None: zero).
"""
import numpy as np

from .blocks.base import make_act
from .module import Sequential, _takes_input_grad, check_input
from .ops.batchnorm import BatchNorm2d
from .ops.conv import Conv2d
from .ops.dropout import Dropout
from .ops.linear import Linear
from .ops.pooling import Flatten, GlobalAvgPool2d


class MobileNet(Sequential):
    """A MobileNet built from a plan (see ``npmobilenet.build.create_model``, which is how to make one)."""

    def __init__(self, name, plan, stages, num_classes=1000, in_chans=3, drop_rate=0.0, features_only=False,
                 rng=None):
        arch, act = plan.arch, plan.arch.act
        layers = {"conv_stem": Conv2d(in_chans, plan.stem_size, 3, stride=plan.stem_stride, rng=rng),
                  "bn1": BatchNorm2d(plan.stem_size), "act1": make_act(act),
                  "blocks": Sequential(*[Sequential(*stage) for stage in stages])}
        width = plan.stages[-1][-1].out_chs
        if not features_only:
            head, nf = arch.head, plan.num_features
            if head == "conv":
                layers.update(conv_head=Conv2d(width, nf, 1, rng=rng), bn2=BatchNorm2d(nf), act2=make_act(act))
                width = nf
            layers["global_pool"] = GlobalAvgPool2d(flatten=head in ("pool", "conv"))
            if head.startswith("efficient"):
                layers["conv_head"] = Conv2d(width, nf, 1, bias=head == "efficient", rng=rng)
                if head == "efficient_norm":
                    layers["norm_head"] = BatchNorm2d(nf)
                layers.update(act2=make_act(act), flatten=Flatten())
                width = nf
            if drop_rate > 0:
                layers["dropout"] = Dropout(drop_rate, seed=rng.integers(2**63) if rng is not None else None)
            if num_classes > 0:
                layers["classifier"] = Linear(width, num_classes, rng=rng)
        super().__init__(layers)
        self.name, self.plan, self.in_chans = name, plan, in_chans
        self.num_classes = num_classes if not features_only else 0
        self.num_features = width
        self.features_only = bool(features_only)
        self.feature_info = [dict(f) for f in plan.feature_info]
        self._feature_stages = [int(f["module"].split(".")[1]) for f in plan.feature_info if f["stage"] > 0]
        self._stem_feature = plan.feature_info[0]["stage"] == 0
        self.cache = None

    def _label(self):
        return f"MobileNet({self.name})"

    def extra_repr(self):
        return self.name

    def check_input(self, x):
        """Rank, dtype, channels, and a size the total stride can divide down to at least 1x1."""
        check_input(self, x, channels=self.in_chans, ndim=4, dtype=self.conv_stem.weight.dtype)
        s = self.plan.total_stride
        if min(x.shape[2:]) < s:
            hint = "" if s <= 8 else " (or create_model(..., small_input=True) for 32x32 images)"
            raise ValueError(f"{self._label()}: input is {x.shape[2]}x{x.shape[3]} but the network downsamples "
                             f"by {s}; the input must be at least {s}x{s}{hint}")
        # Training-mode BN normalises each channel over N*H*W values and needs two of them; the
        # last stage has ceil(H/s)*ceil(W/s) pixels, and a BN after the pool (V4 norm_head) one.
        last = 1 if "norm_head" in self._children else -(-x.shape[2] // s) * -(-x.shape[3] // s)
        if self.training and x.shape[0] * last < 2:
            raise ValueError(f"{self._label()}: training-mode batch norm needs at least two values per channel;"
                             f" a {x.shape[2]}x{x.shape[3]} input leaves {last} per image at the last BN, so use a"
                             f" batch of at least 2 (got {x.shape[0]}) or call .eval()")
        return x

    def forward(self, x):
        """x (N, in_chans, H, W) -> logits (N, num_classes), or the list of feature maps (features_only)."""
        self.check_input(x)
        if not self.features_only:
            y = super().forward(x)
            self.cache = x.shape
            return y
        x = self.act1(self.bn1(self.conv_stem(x)))
        feats = [x] if self._stem_feature else []
        for i, stage in enumerate(self.blocks):
            x = stage(x)
            if i in self._feature_stages:
                feats.append(x)
        self.cache = [f.shape for f in feats]
        return feats

    def backward(self, dy, input_grad=True):
        """dy: dL/dlogits -> dL/dx.  features_only: dy is a list, one gradient (or None) per feature map.
        ``input_grad=False`` (training on images, which need no gradient): the stem conv computes its
        weight gradient alone and None is returned, as PyTorch skips an input without ``requires_grad``."""
        shapes = self._need_cache(self.cache)
        if not self.features_only:
            return super().backward(dy, input_grad)
        if not isinstance(dy, (list, tuple)) or len(dy) != len(shapes):
            raise ValueError(f"{self._label()}.backward: features_only needs a list of {len(shapes)} gradients "
                             f"(one per feature map, None for unused), got {type(dy).__name__}"
                             f"{'' if not isinstance(dy, (list, tuple)) else f' of length {len(dy)}'}")
        dtype = self.conv_stem.weight.dtype
        dys = [np.zeros(s, dtype) if g is None else g for g, s in zip(dy, shapes)]
        for g, s in zip(dys, shapes):
            if np.shape(g) != s:
                raise ValueError(f"{self._label()}.backward: a feature gradient has shape {np.shape(g)}, expected {s}")
        k, g = len(dys) - 1, None
        for i in reversed(range(len(self.blocks))):
            if i in self._feature_stages:
                g = dys[k] if g is None else g + dys[k]
                k -= 1
            g = self.blocks[i].backward(g)
        if self._stem_feature:
            g = g + dys[0]
        g = self.bn1.backward(self.act1.backward(g))
        if not input_grad and _takes_input_grad(self.conv_stem):
            self.conv_stem.backward(g, input_grad=False)
            return None
        dx = self.conv_stem.backward(g)
        return dx if input_grad else None


def init_weights(model, rng=None, bn_eps=None, bn_momentum=None):
    """timm's initialisation (``_init_weight_goog``, as in the TF MobileNet/EfficientNet reference):

    conv weight ~ N(0, 2 / fan_out), fan_out = k*k*out/groups (He, fan-out mode), bias 0; BN weight 1,
    bias 0; Linear weight ~ U(+-1/sqrt(out)), bias 0; then each module's own ``init_weights`` (the
    MQA's Xavier projections).  Also sets BN eps/momentum when given.
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    for arg, v in (("bn_eps", bn_eps), ("bn_momentum", bn_momentum)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1
                              or (arg == "bn_eps" and v == 0)):
            raise ValueError(f"create_model: {arg} must be a number in {'(0, 1]' if arg == 'bn_eps' else '[0, 1]'},"
                             f" got {v!r}")
    for _, m in model.named_modules():
        if isinstance(m, Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            m.weight[...] = rng.normal(0.0, np.sqrt(2.0 / fan_out), m.weight.shape)
            if "bias" in m._params:
                m.bias[...] = 0
        elif isinstance(m, BatchNorm2d):
            m.weight[...], m.bias[...] = 1, 0
            m.eps = m.eps if bn_eps is None else float(bn_eps)
            m.momentum = m.momentum if bn_momentum is None else float(bn_momentum)
        elif isinstance(m, Linear):
            bound = 1.0 / np.sqrt(m.weight.shape[0])
            m.weight[...] = rng.uniform(-bound, bound, m.weight.shape)
            m.bias[...] = 0
    for _, m in model.named_modules():
        if hasattr(type(m), "init_weights"):
            m.init_weights(rng)
    return model
