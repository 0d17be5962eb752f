"""Reading and writing a state dict in each file format, chosen by suffix (or by sniffing).

============================  ===========  ===============================================
suffix                        format       needs
============================  ===========  ===============================================
``.npz``                      npmobilenet  nothing: NumPy's zip of ``.npy`` arrays + manifest
``.safetensors``              safetensors  the extra ``npmobilenet[safetensors]``
``.pth`` ``.pt`` ``.bin``     torch        the extra ``npmobilenet[torch]``
============================  ===========  ===============================================

A file with another suffix is recognised by its first bytes (a zip holding ``.npy`` members is
npz, a zip holding ``data.pkl`` or a pickle is torch, a little-endian length then ``{`` is
safetensors).  Every write is atomic (``atomic.py``).

The two PyTorch-facing formats get BatchNorm's ``num_batches_tracked`` counter (int64, 0) after
each ``running_var``, so their keys are exactly the keys of ``timm_model.state_dict()``.
"""
from __future__ import annotations

import os
import zipfile

import numpy as np

from . import manifest as mf
from .atomic import atomic_write
from .errors import CheckpointError
from .safetensors_io import read_safetensors, write_safetensors
from .torch_io import read_torch, write_torch

SUFFIXES = {".npz": "npz", ".safetensors": "safetensors", ".pth": "torch", ".pt": "torch",
            ".bin": "torch", ".ckpt": "torch"}
MANIFEST_KEY = "__manifest__"  # the npz member holding the manifest
SAFETENSORS_KEY = "npmobilenet"  # the safetensors metadata entry holding the manifest


def is_bn_counter(key):
    return key.endswith("num_batches_tracked")


def with_bn_counters(state):
    """A copy of ``state`` with ``<bn>.num_batches_tracked = 0`` after every ``<bn>.running_var``."""
    out = {}
    for k, v in state.items():
        out[k] = v
        if k.endswith(".running_var"):
            out[k[:-len("running_var")] + "num_batches_tracked"] = np.array(0, dtype=np.int64)
    return out


def detect_format(path):
    """``"npz"``, ``"safetensors"`` or ``"torch"`` for an existing or a new file."""
    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix in SUFFIXES:
        return SUFFIXES[suffix]
    if not os.path.isfile(path):
        raise ValueError(f"cannot tell the format of {path!r} from its suffix: use one of "
                         + ", ".join(SUFFIXES))
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except zipfile.BadZipFile as e:
            raise CheckpointError(f"{path} is a damaged zip file: {e}") from e
        return "torch" if any(n.endswith("data.pkl") for n in names) else "npz"
    if len(head) > 8 and head[8:9] == b"{":
        return "safetensors"
    if head[:1] == b"\x80":  # a pickle: PyTorch's legacy (pre-1.6) format
        return "torch"
    raise CheckpointError(f"{path} is not a weights file this library reads (npz, safetensors or "
                          "a PyTorch state dict)")


def read_file(path):
    """Read a weights file.

    Returns:
    - state: dict ``key -> ndarray``, as stored.
    - manifest: the npmobilenet manifest (already checked against the tensors), or None.
    - fmt: ``"npz"``, ``"safetensors"`` or ``"torch"``.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a directory; give a weights file (or use "
                                "npmobilenet.load, which also reads timm model folders)")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such weights file: {path}")
    fmt = detect_format(path)
    manifest = None
    if fmt == "npz":
        state, text = _read_npz(path)
        manifest = mf.loads(text, path) if text is not None else None
    elif fmt == "safetensors":
        state, metadata = read_safetensors(path)
        if SAFETENSORS_KEY in metadata:
            manifest = mf.loads(metadata[SAFETENSORS_KEY], path)
    else:
        state = read_torch(path)
    if manifest is not None:
        mf.verify(manifest, state, path, ignore=is_bn_counter)
    return state, manifest, fmt


def _read_npz(path):
    try:
        with np.load(path, allow_pickle=False) as z:
            # Reading each member to its end makes zipfile check its CRC-32.
            arrays = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, EOFError, ValueError, OSError, KeyError) as e:
        if isinstance(e, (FileNotFoundError, PermissionError)):
            raise
        raise CheckpointError(f"{path} is not a readable .npz file (truncated or corrupt?): "
                              f"{type(e).__name__}: {e}") from e
    text = arrays.pop(MANIFEST_KEY, None)
    return arrays, (str(text) if text is not None else None)


def _write_npz(f, arrays):
    """Write ``arrays`` as an uncompressed npz into the open binary file ``f``."""
    np.savez(f, **arrays)


def write_file(path, state, manifest=None):
    """Write ``state`` (and the manifest, where the format has room) to ``path``, atomically."""
    fmt = detect_format(path) if os.path.splitext(os.fspath(path))[1].lower() in SUFFIXES else None
    if fmt is None:
        raise ValueError(f"cannot tell which format to write from {os.fspath(path)!r}: end the name "
                         "with .npz (npmobilenet), .safetensors (timm) or .pth (PyTorch)")
    if fmt == "npz":
        arrays = {k: np.asarray(v, order="C") for k, v in state.items()}  # keeps 0-d arrays 0-d
        if MANIFEST_KEY in arrays:
            raise ValueError(f"a state dict key may not be named {MANIFEST_KEY!r}")
        if manifest is not None:
            arrays[MANIFEST_KEY] = np.array(mf.dumps(manifest))
        return atomic_write(path, lambda f: _write_npz(f, arrays))
    if fmt == "safetensors":
        metadata = {"format": "pt"}  # the layout is PyTorch's (NCHW, timm's names)
        if manifest is not None:
            metadata[SAFETENSORS_KEY] = mf.dumps(manifest)
        return write_safetensors(path, with_bn_counters(state), metadata)
    return write_torch(path, with_bn_counters(state))
