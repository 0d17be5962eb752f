"""torchvision's MobileNet V2 / V3 weights on the timm-named models, and back.

torchvision numbers its layers (``features.4.block.2.fc1.weight``); timm names them
(``blocks.2.0.se.conv_reduce.weight``).  The same tensors appear in the same order in both, so the
key map is *generated* from the model's own ``state_dict()`` by the rules below, never typed out
key by key (a typed table of 262 keys is where a typo hides):

1. ``conv_stem``, ``bn1`` -> ``features.0.0``, ``features.0.1``.
2. The blocks ``blocks.i.j`` in order are ``features.1``, ``features.2``, ...  Inside a block, the
   modules (in state-dict order) group into *units*: each ``conv*`` starts a unit, the ``bn*``
   after it joins that unit, and ``se.*`` is one unit of its own.  Unit ``u`` is then named
   - V3 (``InvertedResidual.block``): ``block.{u}.0`` (conv), ``block.{u}.1`` (bn);
     an SE unit ``block.{u}.fc1`` / ``.fc2`` (for ``conv_reduce`` / ``conv_expand``);
   - V2 (``InvertedResidual.conv``): ``conv.{u}.0`` / ``conv.{u}.1``, except the last unit (the
     linear projection, a bare conv and BN in torchvision): ``conv.{u}`` and ``conv.{u+1}``;
   - a plain conv-BN-act block (timm V3's final 1x1 conv to 960/576): ``features.N.0`` / ``.1``.
3. The head.  V2: ``conv_head``, ``bn2`` -> ``features.{last}.0`` / ``.1``, ``classifier`` ->
   ``classifier.1``.  V3: ``conv_head`` (a 1x1 conv with bias in timm, shape (1280, 960, 1, 1))
   -> ``classifier.0`` (a Linear in torchvision, shape (1280, 960)), ``classifier`` ->
   ``classifier.3``.

BatchNorm: torchvision's V3 uses ``eps=1e-3, momentum=0.01`` (``mobilenetv3.py``:
``partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)``), timm's default is ``1e-5`` / ``0.1``.
The weights were trained with the former, so the import builds the model with
``bn_eps=1e-3, bn_momentum=0.01``; its outputs then equal torchvision's.  V2 uses the defaults.

Only the width-1.0 models are covered: torchvision's width multipliers round channel counts
differently from timm's (see ``reference_specs.md`` section 5.4), so their shapes differ.
"""
from __future__ import annotations

import re

import numpy as np

from .errors import CheckpointError

# torchvision model -> (timm name, create_model keywords the weights need).
TORCHVISION_MODELS = {
    "mobilenet_v2": ("mobilenetv2_100", {}),
    "mobilenet_v3_large": ("mobilenetv3_large_100", {"bn_eps": 1e-3, "bn_momentum": 0.01}),
    "mobilenet_v3_small": ("mobilenetv3_small_100", {"bn_eps": 1e-3, "bn_momentum": 0.01}),
}
_BLOCK = re.compile(r"^blocks\.(\d+)\.(\d+)\.(.+)$")

# torchvision's published weights, by the hash in their file name -> (weights enum, resize size).
# Their eval transform (torchvision ``ImageClassification``): resize the shorter side (bilinear),
# centre-crop 224, ImageNet mean/std.  Source: torchvision 0.29.1 mobilenetv2.py, mobilenetv3.py.
TORCHVISION_WEIGHTS = {
    "b0353104": ("MobileNet_V2_Weights.IMAGENET1K_V1", 256),
    "7ebf99e0": ("MobileNet_V2_Weights.IMAGENET1K_V2", 232),
    "8738ca79": ("MobileNet_V3_Large_Weights.IMAGENET1K_V1", 256),
    "5c1a4163": ("MobileNet_V3_Large_Weights.IMAGENET1K_V2", 232),
    "047dcff4": ("MobileNet_V3_Small_Weights.IMAGENET1K_V1", 256),
}
_HASH = re.compile(r"-([0-9a-f]{8})\.pth?$")


def torchvision_data_config(path, name):
    """torchvision's eval preprocessing for a weights file (its name's hash picks V1 or V2)."""
    m = _HASH.search(str(path))
    weights, resize = TORCHVISION_WEIGHTS.get(m.group(1) if m else "", ("torchvision", 256))
    return {"architecture": name, "tag": weights, "input_size": (3, 224, 224), "resize_size": resize,
            "crop_pct": 224 / resize, "interpolation": "bilinear", "mean": (0.485, 0.456, 0.406),
            "std": (0.229, 0.224, 0.225), "crop_mode": "center", "num_classes": 1000}


def detect_torchvision(state):
    """The torchvision model a state dict comes from (a key of ``TORCHVISION_MODELS``), or None."""
    keys = [k for k in state if not k.endswith("num_batches_tracked")]
    if not keys or not all(k.startswith(("features.", "classifier.")) for k in keys):
        return None
    if any(k.startswith("features.1.conv.") for k in keys):
        return "mobilenet_v2"
    if any(k.startswith("features.1.block.") for k in keys):
        head = state.get("classifier.0.weight")
        n_features = 1 + max(int(k.split(".")[1]) for k in keys if k.startswith("features."))
        if head is not None and n_features == 17:
            return "mobilenet_v3_large"
        if head is not None and n_features == 13:
            return "mobilenet_v3_small"
    return None


def _style(name):
    if name.startswith("mobilenetv2_"):
        return "v2"
    if name.startswith("mobilenetv3_"):
        return "v3"
    raise ValueError(f"torchvision has no layout for {name!r}; it covers "
                     + ", ".join(t for t, _ in TORCHVISION_MODELS.values()))


def _modules(keys):
    """Ordered ``{module_prefix: [param names]}`` of a list of state-dict keys."""
    out = {}
    for k in keys:
        prefix, param = k.rsplit(".", 1)
        out.setdefault(prefix, []).append(param)
    return out


def _block_units(block_modules):
    """Group a block's modules (names relative to the block) into conv[+bn] and SE units."""
    units = []
    for m in block_modules:
        if m.startswith("se."):
            if not units or units[-1][0] != "se":
                units.append(("se", []))
        elif m.startswith("conv"):
            units.append(("conv", []))
        elif m.startswith("bn") and units and units[-1][0] == "conv":
            pass
        else:
            raise ValueError(f"torchvision has no counterpart for block module {m!r}")
        units[-1][1].append(m)
    return units


def key_map(timm_keys, name):
    """``{timm_key: torchvision_key}`` for model ``name``, generated by the module docstring's rules.

    Inputs:
    - timm_keys: the model's state-dict keys in order (``model.state_dict().keys()``).
    - name: the timm model name (decides between the V2 and V3 layouts).
    """
    style = _style(name)
    keys = [k for k in timm_keys if not k.endswith("num_batches_tracked")]
    modules = _modules(keys)
    blocks = {}
    for prefix in modules:
        m = _BLOCK.match(prefix)
        if m:
            blocks.setdefault((int(m.group(1)), int(m.group(2))), []).append(m.group(3))
    n_last = len(blocks) + 1
    mod_map = {"conv_stem": "features.0.0", "bn1": "features.0.1"}
    if style == "v2":
        mod_map.update({"conv_head": f"features.{n_last}.0", "bn2": f"features.{n_last}.1",
                        "classifier": "classifier.1"})
    else:
        mod_map.update({"conv_head": "classifier.0", "classifier": "classifier.3"})
    for n, (ij, subs) in enumerate(sorted(blocks.items()), start=1):
        base = f"blocks.{ij[0]}.{ij[1]}."
        units = _block_units(subs)
        if len(units) == 1 and units[0][0] == "conv":  # a plain conv-BN-act block
            for pos, m in enumerate(units[0][1]):
                mod_map[base + m] = f"features.{n}.{pos}"
            continue
        for u, (kind, ms) in enumerate(units):
            for pos, m in enumerate(ms):
                if kind == "se":
                    tv = {"se.conv_reduce": "fc1", "se.conv_expand": "fc2"}.get(m)
                    if tv is None:
                        raise ValueError(f"torchvision has no counterpart for {base + m!r}")
                    mod_map[base + m] = f"features.{n}.block.{u}.{tv}"
                elif style == "v3":
                    mod_map[base + m] = f"features.{n}.block.{u}.{pos}"
                elif u < len(units) - 1:
                    mod_map[base + m] = f"features.{n}.conv.{u}.{pos}"
                else:  # V2's projection: conv and BN sit directly in the block's Sequential
                    mod_map[base + m] = f"features.{n}.conv.{u + pos}"
    out = {}
    for prefix, params in modules.items():
        if prefix not in mod_map:
            raise ValueError(f"torchvision has no counterpart for {prefix!r} of {name}")
        for p in params:
            out[f"{prefix}.{p}"] = f"{mod_map[prefix]}.{p}"
    return out


def from_torchvision(state, model, name):
    """torchvision-keyed ``state`` -> timm-keyed state for ``model`` (a timm-named model ``name``).

    Raises ``CheckpointError`` listing every torchvision key the model has no place for and
    every model key the file lacks; shapes are checked when the result is loaded.
    """
    model_state = model.state_dict()
    kmap = key_map(model_state.keys(), name)
    inverse = {tv: tk for tk, tv in kmap.items()}
    given = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    unknown = [k for k in given if k not in inverse]
    missing = [tv for tv in inverse if tv not in given]
    if unknown or missing:
        lines = []
        if missing:
            lines.append(f"missing torchvision keys ({len(missing)}): " + ", ".join(missing))
        if unknown:
            lines.append(f"unexpected torchvision keys ({len(unknown)}): " + ", ".join(unknown))
        raise CheckpointError(f"this torchvision state dict does not fit {name};\n  "
                              + "\n  ".join(lines))
    out = {}
    for tv, v in given.items():
        tk = inverse[tv]
        v = np.asarray(v)
        want = model_state[tk].shape
        if v.ndim == 2 and len(want) == 4 and want[2:] == (1, 1):
            v = v.reshape(v.shape + (1, 1))  # torchvision's Linear is timm's 1x1 conv_head
        out[tk] = v
    return out


def to_torchvision(state, name):
    """timm-keyed ``state`` of model ``name`` -> torchvision's keys and shapes (with BN counters)."""
    kmap = key_map(state.keys(), name)
    out = {}
    for tk, v in state.items():
        if tk.endswith("num_batches_tracked"):
            continue
        v = np.asarray(v)
        tv = kmap[tk]
        if tv.startswith("classifier.0.") and v.ndim == 4:
            v = v.reshape(v.shape[:2])  # timm's 1x1 conv_head is torchvision's Linear
        out[tv] = v
        if tv.endswith(".running_var"):
            out[tv[:-len("running_var")] + "num_batches_tracked"] = np.array(0, dtype=np.int64)
    return out
