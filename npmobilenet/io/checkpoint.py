"""Save and load models: ``npmobilenet.save(model, path)`` and ``npmobilenet.load(path)``.

``save`` writes the model's ``state_dict()`` and a manifest (``manifest.py``: the model's name and
``create_model`` arguments, every tensor's shape, dtype and CRC-32, the format and library
versions), atomically, in the format the suffix names (``formats.py``): ``.npz`` (ours),
``.safetensors`` (timm's; loads into ``timm.create_model(name)``) or ``.pth`` (PyTorch).

``load`` rebuilds the model from whatever the file says about itself:

=========================================  ==================================================
file                                       model
=========================================  ==================================================
written by ``npmobilenet.save``            the manifest's name and arguments
a timm model folder (``config.json``)      its ``architecture``, ``num_classes``, preprocessing
torchvision's ``mobilenet_v2/v3_*`` dict   ``mobilenetv2_100`` / ``mobilenetv3_*_100`` with
                                           torchvision's BatchNorm eps (``torchvision_map.py``)
any other timm state dict                  the ``model`` argument (``name`` or ``name.tag``);
                                           ``num_classes``/``in_chans`` read off the shapes
=========================================  ==================================================

Loading is all or nothing: every key of the model must be in the file with the same shape and a
float dtype, and no key may be extra (BatchNorm's ``num_batches_tracked`` is accepted and
ignored).  Otherwise one ``CheckpointError`` lists every difference, and nothing has changed.
"""
from __future__ import annotations

import os

import numpy as np

from . import formats, hub, torchvision_map
from .errors import CheckpointError
from .imagenet import data_config, split_tag
from .manifest import make_manifest, model_config


def read_state_dict(path):
    """The tensors of a weights file, as stored, and its manifest.

    Returns:
    - state: dict ``key -> ndarray`` (for a folder: its weights file's).
    - manifest: dict or None (None for files not written by npmobilenet).
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        path, _ = hub.read_folder(path)
    state, manifest, _ = formats.read_file(path)
    return state, manifest


def save(model, path, metadata=None):
    """Save ``model`` to ``path`` (``.npz``, ``.safetensors`` or ``.pth``), atomically.

    Inputs:
    - model: a module (usually from ``create_model``).
    - path: the file; its suffix picks the format.
    - metadata: optional JSON-serialisable dict kept in the manifest (epoch, accuracy...).

    Returns:
    - path.
    """
    state = model.state_dict()
    return formats.write_file(path, state, make_manifest(model, state, metadata))


def differences(model, state):
    """Every way ``state`` fails to fit ``model``, as lines (empty when it fits)."""
    target = model.state_dict()
    given = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    missing = [k for k in target if k not in given]
    unexpected = [k for k in given if k not in target]
    lines = []
    if missing:
        lines.append(f"missing keys ({len(missing)}): " + ", ".join(missing))
    if unexpected:
        lines.append(f"unexpected keys ({len(unexpected)}): " + ", ".join(unexpected))
    for k, v in given.items():
        if k not in target:
            continue
        v = np.asarray(v)
        if v.shape != target[k].shape:
            lines.append(f"{k}: file shape {v.shape}, model shape {target[k].shape}")
        elif not np.issubdtype(v.dtype, np.floating):
            lines.append(f"{k}: file dtype {v.dtype}, expected a float dtype")
    return lines


def _fill(model, state, path, what):
    lines = differences(model, state)
    if lines:
        raise CheckpointError(f"{path} does not fit {what}; nothing was loaded:\n  " + "\n  ".join(lines))
    model.load_state_dict(state)


def _name_mismatch(path, stored, origin, asked, state):
    """The error for a file made for ``stored`` loaded as ``asked``, with the tensor differences."""
    from ..build import create_model

    msg = f"{path} holds {stored} weights (per its {origin}), not {asked}"
    try:
        lines = differences(create_model(asked), state)
    except (KeyError, ValueError):
        lines = []
    if lines:
        return CheckpointError(msg + "; nothing was loaded:\n  " + "\n  ".join(lines))
    return CheckpointError(msg + "; the tensors have the same names and shapes, but the networks "
                           f"differ (padding, BatchNorm eps or activations): load it as {stored}")


def _identify(path, model, kwargs):
    """Read ``path`` and decide what to build.

    Returns ``(path, state, name, create_model kwargs, pretrained_cfg, torchvision model or None)``.
    """
    from ..build import resolve

    name, tag = split_tag(model) if model else (None, None)
    if name in torchvision_map.TORCHVISION_MODELS:  # torchvision's name for the same network
        name = torchvision_map.TORCHVISION_MODELS[name][0]
    if name:
        name = resolve(name)[0]  # aliases ('v3-small') -> timm's name
    folder_cfg = None
    if os.path.isdir(path):
        path, folder_cfg = hub.read_folder(path)
    state, manifest, _ = formats.read_file(path)
    stored, origin, build, pcfg = None, None, {}, None
    tv = torchvision_map.detect_torchvision(state)
    if manifest and manifest.get("model"):
        stored, origin = manifest["model"]["name"], "manifest"
        build = dict(manifest["model"].get("kwargs") or {})
        pcfg = manifest.get("pretrained_cfg")
    elif folder_cfg is not None:
        stored, build, pcfg = hub.folder_model(folder_cfg)
        origin = "config.json"
    elif tv:
        stored, build = torchvision_map.TORCHVISION_MODELS[tv]
        origin, build = f"torchvision {tv} layout", dict(build)
        pcfg = torchvision_map.torchvision_data_config(path, stored)
    if name and stored and split_tag(stored)[0] != name:
        raise _name_mismatch(path, stored, origin, name, state)
    name = name or stored
    if not name:
        raise CheckpointError(f"{path} does not say which model it is for: name it, e.g. "
                              "npmobilenet.load(path, 'mobilenetv3_large_100.ra_in1k') or "
                              "--model mobilenetv3_large_100.ra_in1k")
    if stored is None:  # a bare timm state dict: read the head and stem sizes off the shapes
        for key, arg, axis, ndim, default in (("classifier.weight", "num_classes", 0, 2, 1000),
                                              ("conv_stem.weight", "in_chans", 1, 4, 3)):
            if key in state and np.ndim(state[key]) == ndim and np.shape(state[key])[axis] != default:
                build[arg] = int(np.shape(state[key])[axis])
    build.update(kwargs)
    floats = [v.dtype for v in state.values() if np.issubdtype(v.dtype, np.floating)]
    if "dtype" not in build and floats and all(d == np.float64 for d in floats):
        build["dtype"] = np.float64  # a float64 checkpoint (e.g. saved for gradient checks)
    if tag or pcfg is None:
        pcfg = data_config(name, tag)
        if not tag:  # the architecture's default preprocessing; the weights' origin is unknown
            pcfg.update(tag=None, num_classes=build.get("num_classes", pcfg["num_classes"]))
    return path, state, name, build, pcfg, tv


def load(path, model=None, **kwargs):
    """Build the model a weights file was made for and load the weights into it.

    Inputs:
    - path: a ``.npz``/``.safetensors``/``.pth`` file or a timm model folder.
    - model: the model name (``'mobilenetv3_large_100'`` or ``'mobilenetv3_large_100.ra_in1k'``,
      whose tag picks the preprocessing) when the file does not carry one; or a built model to
      load into (then the same as ``load_weights(model, path)``).
    - kwargs: ``create_model`` arguments, overriding what the file says (e.g. ``dtype``).

    Returns:
    - the model in eval mode, with ``model.pretrained_cfg`` (its preprocessing).
    """
    from ..build import create_model

    if model is not None and not isinstance(model, str):
        return load_weights(model, path)
    path = os.fspath(path)
    path, state, name, build, pcfg, tv = _identify(path, model, kwargs)
    net = create_model(name, **build)
    if tv:
        state = torchvision_map.from_torchvision(state, net, name)
    shown = {k: v for k, v in build.items() if k != "dtype"}
    _fill(net, state, path, f"{name} {shown}" if shown else name)
    net.pretrained_cfg = pcfg
    return net.eval()


def _check_bn(model, needs, path, tv):
    """torchvision's weights are only right with the BatchNorm eps they were trained with."""
    eps = {float(m.eps) for m in model.modules() if type(m).__name__ == "BatchNorm2d"}
    want = float(needs.get("bn_eps", 1e-5))
    if eps != {want}:
        raise CheckpointError(f"{path} holds torchvision {tv} weights, trained with BatchNorm eps {want}; "
                              f"the model's is {sorted(eps)}: build it with create_model(..., "
                              + ", ".join(f"{k}={v}" for k, v in needs.items())
                              + ") or use npmobilenet.load(path)")


def load_weights(model, path):
    """Load a weights file into an existing ``model`` (all or nothing); returns ``model``.

    torchvision state dicts are mapped onto the timm names first.  A file whose manifest names
    another model is refused even when the shapes fit (e.g. ``tf_`` ports: same tensors,
    different padding and eps).
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        path, _ = hub.read_folder(path)
    state, manifest, _ = formats.read_file(path)
    name, kwargs = model_config(model)
    stored = (manifest or {}).get("model") or {}
    if name and stored.get("name") and stored["name"] != name:
        raise _name_mismatch(path, stored["name"], "manifest", name, state)
    tv = torchvision_map.detect_torchvision(state)
    if tv and name:
        _check_bn(model, torchvision_map.TORCHVISION_MODELS[tv][1], path, tv)
        state = torchvision_map.from_torchvision(state, model, name)
    _fill(model, state, path, name or type(model).__name__)
    if manifest and manifest.get("pretrained_cfg"):
        model.pretrained_cfg = manifest["pretrained_cfg"]
    return model
