"""Deterministic, numerically healthy weights for the parity golden files.

``fill_state(keys_and_shapes, seed)`` draws every tensor of a MobileNet state dict from NumPy
alone, so the golden files (written once with timm) and the parity test (run without torch) see
the very same weights.  Only key names (timm's) and shapes are needed.

Why not timm's own initialisation: it leaves BatchNorm as the identity (weight 1, bias 0, running
mean 0, variance 1) and the MobileNet-V4 layer scale at 1e-5, so a wrong BN or attention branch
would hardly move the logits.  Every tensor here is non-trivial instead, and sized so that the
activations stay O(1) through 50+ layers in eval mode, where BN applies these running statistics
and nothing renormalises:

=================================  =========================================================
key (last name, ndim)              distribution
=================================  =========================================================
``*.num_batches_tracked``          skipped (not returned)
``*.running_mean``                 N(0, 0.1^2)
``*.running_var``                  U(0.5, 1.5)
``*.gamma`` (layer scale)          U(0.5, 1.5) x branch scale   -- not 1e-5: the branch matters
``*.weight``, ndim 1 (norm scale)  U(0.5, 1.5) (x branch scale, see below)
``*.bias``, ndim 1                 N(0, 0.1^2)
``*.weight``, ndim 4 (conv)        N(0, gain / fan_in), fan_in = in/groups * kh * kw;
                                   gain 2 (He) when an activation follows, 1 for the linear
                                   convs (timm names ``conv_pwl``, ``pw_proj.conv``,
                                   ``dw_start.conv``, attention ``*proj``, ``down_conv``)
``*.weight``, ndim 2 (linear)      N(0, 1 / fan_in), fan_in = in_features
=================================  =========================================================

Branch scale.  In eval mode a residual block adds a branch as large as its input, so without care
the variance doubles per block and the deep V4 models reach logits of 1e10 (saturating every
hard-sigmoid and softmax).  The last scale of each residual branch -- ``bn3.weight`` of an inverted
residual, ``pw_proj.bn.weight`` of a universal inverted bottleneck, ``layer_scale.gamma`` -- in
block ``blocks.<stage>.<b>`` with ``b >= 1`` is therefore multiplied by ``0.5 / sqrt(b + 1)``.
(In every timm MobileNet, the blocks with ``b >= 1`` of a stage are exactly the ones with a skip
connection; block 0 changes stride or width and is left alone.)

Each tensor has its own stream, ``np.random.default_rng([seed, zlib.crc32(key)])``, so the fill
does not depend on the order (or the presence) of the other keys.  Values are float64.
"""
import re
import zlib

import numpy as np

__all__ = ["fill_state", "tensor_stream", "projection_direction", "branch_scale"]

# The last multiplicative parameter of a residual branch, in block ``blocks.<stage>.<b>``.
_BRANCH_END = re.compile(
    r"^blocks\.\d+\.(\d+)\.(bn3\.weight|pw_proj\.bn\.weight|layer_scale\.gamma)$")

# Convolutions whose output goes on without an activation (He's factor 2 would double the
# variance there instead of compensating a ReLU).
_LINEAR_CONV = re.compile(r"(conv_pwl|pw_proj\.conv|dw_start\.conv|proj|down_conv)\.weight$")


def tensor_stream(key, seed):
    """The NumPy generator of one tensor: seeded by ``seed`` and a stable hash of ``key``."""
    return np.random.default_rng([int(seed), zlib.crc32(key.encode("utf-8"))])


def branch_scale(block_index):
    """Multiplier of a residual branch's last scale in block ``block_index`` (>= 1) of a stage."""
    return 0.5 / np.sqrt(block_index + 1.0)


def _draw(key, shape, seed):
    rng = tensor_stream(key, seed)
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "running_mean":
        return rng.normal(0.0, 0.1, shape)
    if leaf in ("running_var", "gamma"):
        return rng.uniform(0.5, 1.5, shape)
    if leaf == "bias" and len(shape) == 1:
        return rng.normal(0.0, 0.1, shape)
    if leaf == "weight" and len(shape) == 1:
        return rng.uniform(0.5, 1.5, shape)
    if leaf == "weight" and len(shape) == 4:
        fan_in = shape[1] * shape[2] * shape[3]
        gain = 1.0 if _LINEAR_CONV.search(key) else 2.0
        return rng.normal(0.0, np.sqrt(gain / fan_in), shape)
    if leaf == "weight" and len(shape) == 2:
        return rng.normal(0.0, np.sqrt(1.0 / shape[1]), shape)
    raise ValueError(f"fill_state: no fill rule for key {key!r} with shape {shape}; "
                     "add one to tests/golden/fill.py and regenerate the golden files")


def _fill_one(key, shape, seed):
    value = _draw(key, shape, seed)
    match = _BRANCH_END.match(key)
    if match and int(match.group(1)) >= 1:
        value *= branch_scale(int(match.group(1)))
    return value


def fill_state(keys_and_shapes, seed):
    """Fill a whole state dict.

    Inputs:
    - keys_and_shapes: a mapping ``key -> shape`` or an iterable of ``(key, shape)`` pairs, with
      timm's state-dict names (``num_batches_tracked`` entries are allowed and skipped).
    - seed: int, the base seed.

    Returns:
    - dict ``key -> float64 ndarray`` in the given key order, without ``num_batches_tracked``.
    """
    items = keys_and_shapes.items() if hasattr(keys_and_shapes, "items") else keys_and_shapes
    out = {}
    for key, shape in items:
        if key.endswith("num_batches_tracked"):
            continue
        out[key] = _fill_one(key, tuple(int(s) for s in shape), seed)
    return out


def projection_direction(key, shape, seed):
    """A fixed unit-norm random tensor for ``key``: the golden files store ``<grad, u>`` for
    every parameter (one number per tensor instead of the whole gradient)."""
    u = tensor_stream(key, seed).standard_normal(tuple(int(s) for s in shape))
    return u / np.linalg.norm(u)
