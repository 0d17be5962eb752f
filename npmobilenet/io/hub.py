"""timm model folders: ``config.json`` + ``model.safetensors``, as on timm's model hub.

A folder such as the one ``huggingface-cli download timm/mobilenetv3_large_100.ra_in1k
--local-dir mnv3`` leaves holds the weights (``model.safetensors``, or ``pytorch_model.bin``) and
a ``config.json`` naming the architecture, the number of classes and the preprocessing
(``pretrained_cfg``).  ``npmobilenet.load(folder)`` reads both, so no model name is needed.

``save_pretrained(model, folder)`` writes the same two files, so PyTorch users load our model
with ``timm.create_model("local-dir:folder", pretrained=True)`` (timm >= 1.0.16).
"""
from __future__ import annotations

import json
import os

from . import formats
from .errors import CheckpointError
from .imagenet import data_config
from .manifest import make_manifest, model_config
from .pretrained_cfgs import DEFAULT_TAGS

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.npz")
CONFIG_FILE = "config.json"
# create_model keywords that timm's MobileNet factories accept too (timm: resolve_bn_args).
TIMM_KWARGS = ("num_classes", "in_chans", "drop_rate", "bn_eps", "bn_momentum")
# The preprocessing fields written to config.json: those of timm's PretrainedCfg (timm 1.0.31,
# timm/models/_pretrained.py) that describe weights; timm refuses unknown ones.
TIMM_CFG_FIELDS = ("tag", "input_size", "test_input_size", "interpolation", "crop_pct", "test_crop_pct",
                   "crop_mode", "mean", "std", "num_classes", "label_names", "label_descriptions",
                   "license")


def read_folder(path):
    """``(weights_file, config)`` of a timm model folder; ``config`` is None without config.json."""
    path = os.fspath(path)
    for name in WEIGHT_FILES:
        f = os.path.join(path, name)
        if os.path.isfile(f):
            break
    else:
        raise FileNotFoundError(f"{path} is a folder without weights: expected one of "
                                + ", ".join(WEIGHT_FILES) + f"; found {sorted(os.listdir(path))}")
    cfg_file = os.path.join(path, CONFIG_FILE)
    if not os.path.isfile(cfg_file):
        return f, None
    try:
        with open(cfg_file, encoding="utf-8") as fh:
            config = json.load(fh)
    except ValueError as e:
        raise CheckpointError(f"{cfg_file} is not valid JSON: {e}") from e
    if not isinstance(config, dict) or "architecture" not in config:
        raise CheckpointError(f"{cfg_file} is not a timm model config (no 'architecture')")
    return f, config


def folder_model(config):
    """``(name, kwargs, pretrained_cfg)`` from a timm ``config.json`` dict."""
    pcfg = dict(config.get("pretrained_cfg") or {})
    args = dict(config.get("model_args") or {})
    kwargs = {k: args[k] for k in TIMM_KWARGS if k in args}
    if "num_classes" in config:
        kwargs["num_classes"] = int(config["num_classes"])
    name = str(config["architecture"])
    pcfg.setdefault("architecture", name)
    if "label_names" in config:
        pcfg["label_names"] = list(config["label_names"])
    return name, kwargs, pcfg


def save_pretrained(model, folder, metadata=None):
    """Write ``folder/model.safetensors`` and ``folder/config.json`` in timm's layout.

    Raises ``ValueError`` if timm cannot build the model (a name or a keyword argument, such as
    ``width_rule`` or ``small_input``, that only npmobilenet has).
    """
    name, kwargs = model_config(model)
    if name is None or name not in DEFAULT_TAGS:
        raise ValueError(f"timm has no model named {name!r}; save with npmobilenet.save instead")
    extra = sorted(k for k in kwargs if k not in TIMM_KWARGS)
    if extra:
        raise ValueError(f"timm's {name} has no counterpart for create_model arguments "
                         f"{', '.join(extra)}; save with npmobilenet.save instead")
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    state = model.state_dict()
    formats.write_file(os.path.join(folder, "model.safetensors"), state,
                       make_manifest(model, state, metadata))
    pcfg = dict(getattr(model, "pretrained_cfg", None) or {})
    if not pcfg.get("input_size"):
        pcfg = {k: v for k, v in data_config(name).items() if v is not None}
    pcfg = {k: v for k, v in pcfg.items() if k in TIMM_CFG_FIELDS and v is not None}
    pcfg.update(num_classes=int(model.num_classes), first_conv="conv_stem", classifier="classifier")
    config = {"architecture": name, "num_classes": int(model.num_classes),
              "num_features": int(getattr(model, "num_features", 0)), "global_pool": "avg",
              "model_args": kwargs, "pretrained_cfg": pcfg}
    text = json.dumps(config, indent=2) + "\n"
    formats.atomic_write(os.path.join(folder, CONFIG_FILE), lambda f: f.write(text.encode()))
    return folder
