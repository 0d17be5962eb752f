"""The manifest: what a checkpoint written by npmobilenet says about itself.

A model saved with ``npmobilenet.save`` carries, next to its tensors, one JSON document::

    {"format": "npmobilenet", "format_version": 1, "library_version": "0.1.0",
     "model": {"name": "mobilenetv3_small_100", "kwargs": {"num_classes": 10}},
     "pretrained_cfg": {...preprocessing, if the model has one...},
     "tensors": {"conv_stem.weight": {"shape": [16, 3, 3, 3], "dtype": "float32",
                                      "crc32": 2873204179}, ...},
     "metadata": {...whatever the caller passed: epoch, accuracy...}}

``model`` is what ``create_model`` needs to rebuild the network, so ``npmobilenet.load(path)``
needs no name.  ``tensors`` lists every array with its shape, dtype and CRC-32, so a truncated,
corrupt or tampered file is caught on reading even in formats that keep no checksums of their
own (safetensors).  ``format_version`` grows when the layout changes; a reader refuses files
newer than it understands rather than guessing.
"""
from __future__ import annotations

import json
import zlib

import numpy as np

from .errors import CheckpointError

FORMAT = "npmobilenet"
FORMAT_VERSION = 1


def model_config(model):
    """``(name, kwargs)`` that rebuild ``model`` with ``create_model``, or ``(None, {})``.

    ``create_model`` records them as ``model.config = {"name": ..., "kwargs": {...}}``.
    """
    cfg = getattr(model, "config", None)
    if isinstance(cfg, dict) and cfg.get("name"):
        kwargs = {k: v for k, v in dict(cfg.get("kwargs") or {}).items() if k not in ("seed", "dtype")}
        return str(cfg["name"]), kwargs
    name = getattr(model, "name", None)
    if not isinstance(name, str):
        return None, {}
    # Without a record of the arguments, read back those that shape the weights.
    kwargs = {}
    if getattr(model, "features_only", False):
        kwargs["features_only"] = True
    elif getattr(model, "num_classes", 1000) != 1000:
        kwargs["num_classes"] = int(model.num_classes)
    if getattr(model, "in_chans", 3) != 3:
        kwargs["in_chans"] = int(model.in_chans)
    for attr in ("eps", "momentum"):
        values = {float(getattr(m, attr)) for m in model.modules() if type(m).__name__ == "BatchNorm2d"}
        if len(values) == 1:
            kwargs["bn_" + attr] = values.pop()
    return name, kwargs


def crc32(array):
    """CRC-32 of an array's bytes in C order (what the file stores)."""
    a = np.ascontiguousarray(array).reshape(-1)
    return zlib.crc32(memoryview(a).cast("B")) if a.size else 0


def make_manifest(model, state, metadata=None):
    """The manifest of ``state`` (the model's ``state_dict()``), see the module docstring."""
    from .. import __version__

    name, kwargs = model_config(model) if model is not None else (None, {})
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "library_version": __version__,
                "model": {"name": name, "kwargs": kwargs} if name else None}
    pcfg = getattr(model, "pretrained_cfg", None)
    if isinstance(pcfg, dict):
        manifest["pretrained_cfg"] = pcfg
    manifest["tensors"] = {k: {"shape": list(np.shape(v)), "dtype": np.asarray(v).dtype.name,
                               "crc32": crc32(v)} for k, v in state.items()}
    manifest["metadata"] = dict(metadata or {})
    return manifest


def dumps(manifest):
    """The manifest as JSON text; ``TypeError`` naming the culprit if it cannot be stored."""
    try:
        return json.dumps(manifest, allow_nan=True)
    except (TypeError, ValueError) as e:
        raise TypeError(f"checkpoint metadata must be JSON-serialisable (str, int, float, bool, "
                        f"list, dict): {e}") from e


def loads(text, path):
    """Parse and check a manifest read from ``path``."""
    try:
        manifest = json.loads(text)
    except ValueError as e:
        raise CheckpointError(f"{path}: the manifest is not valid JSON (corrupt file?): {e}") from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CheckpointError(f"{path}: the manifest is not an npmobilenet manifest")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written in checkpoint format {version!r} by npmobilenet "
                              f"{manifest.get('library_version')}; this version reads format "
                              f"{FORMAT_VERSION} and older: upgrade npmobilenet")
    return manifest


def verify(manifest, state, path, ignore=lambda k: False):
    """Check that ``state`` holds exactly the manifest's tensors, bit for bit.

    ``ignore(key)`` exempts stored keys the manifest does not list (the BatchNorm counters a
    safetensors export adds for PyTorch).  Raises ``CheckpointError`` listing every difference.
    """
    listed = manifest.get("tensors") or {}
    problems = []
    missing = [k for k in listed if k not in state]
    extra = [k for k in state if k not in listed and not ignore(k)]
    if missing:
        problems.append(f"listed in the manifest but absent ({len(missing)}): " + ", ".join(missing))
    if extra:
        problems.append(f"present but not in the manifest ({len(extra)}): " + ", ".join(extra))
    for k, info in listed.items():
        if k not in state:
            continue
        v = state[k]
        if list(np.shape(v)) != list(info.get("shape", [])) or v.dtype.name != info.get("dtype"):
            problems.append(f"{k}: stored {v.dtype.name}{list(np.shape(v))}, "
                            f"manifest {info.get('dtype')}{info.get('shape')}")
        elif "crc32" in info and crc32(v) != info["crc32"]:
            problems.append(f"{k}: the bytes do not match their CRC-32 (corrupt)")
    if problems:
        raise CheckpointError(f"{path} is corrupt: its tensors disagree with its manifest;\n  "
                              + "\n  ".join(problems))
