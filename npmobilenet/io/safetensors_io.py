"""``.safetensors`` files: timm's published weight format, read and written with NumPy.

A safetensors file is an 8-byte little-endian header length, a JSON header (every tensor's dtype,
shape and byte range, plus an optional ``__metadata__`` dict of strings) and the raw tensor bytes.
It holds no code, so reading one cannot run anything (a pickled ``.pth`` can).  The
``safetensors`` package (the optional extra ``npmobilenet[safetensors]``) does the parsing;
``safetensors.numpy`` gives and takes NumPy arrays, so torch is never needed.

timm's files (``model.safetensors`` of the ``timm/<model>.<tag>`` repositories) hold exactly
timm's ``state_dict``: the keys of ``npmobilenet.create_model(<model>)``, plus BatchNorm's
``num_batches_tracked`` counters, which loading ignores.  Tensors stored as bfloat16 (NumPy has no
such dtype) are widened to float32 exactly: a bfloat16 is the top 16 bits of a float32.
"""
from __future__ import annotations

import json
import os

import numpy as np

from .atomic import atomic_write
from .errors import CheckpointError, require

_PURPOSE_READ = "reading .safetensors files"
_PURPOSE_WRITE = "writing .safetensors files"


def read_safetensors(path):
    """Read every tensor and the metadata of a ``.safetensors`` file.

    Inputs:
    - path: the file.

    Returns:
    - state: dict ``key -> ndarray`` (bfloat16 tensors widened to float32).
    - metadata: the file's ``__metadata__`` dict of strings, or ``{}``.

    Raises ``CheckpointError`` for a truncated or corrupt file, ``MissingExtra`` without the
    ``safetensors`` package.
    """
    require("safetensors.numpy", "safetensors", _PURPOSE_READ)
    from safetensors import safe_open

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such weights file: {path}")
    state = {}
    try:
        with safe_open(path, framework="np") as f:
            metadata = dict(f.metadata() or {})
            for key in f.keys():
                try:
                    state[key] = f.get_tensor(key)
                except TypeError:
                    # NumPy has no bfloat16: read those bytes ourselves (see the module docstring).
                    state[key] = _read_bfloat16(path, key)
    except CheckpointError:
        raise
    except Exception as e:  # the package raises its own SafetensorError (an Exception subclass)
        raise CheckpointError(f"{path} is not a readable .safetensors file (truncated or corrupt?): "
                              f"{e}") from e
    return state, metadata


def _read_bfloat16(path, key):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        info = header[key]
        if info["dtype"] != "BF16":
            raise CheckpointError(f"{path}: tensor {key!r} has dtype {info['dtype']}, "
                                  "which NumPy cannot represent")
        start, end = info["data_offsets"]
        f.seek(8 + n + start)
        raw = np.frombuffer(f.read(end - start), dtype="<u2")
    if raw.size != int(np.prod(info["shape"], dtype=np.int64)):
        raise CheckpointError(f"{path} is truncated: tensor {key!r} is incomplete")
    return (raw.astype(np.uint32) << 16).view(np.float32).reshape(info["shape"])


def write_safetensors(path, state, metadata=None):
    """Write ``state`` (``key -> ndarray``) to ``path`` atomically, with string ``metadata``.

    The arrays are written as they are (their dtype and shape); ``metadata`` must map strings to
    strings (the format's rule).
    """
    sn = require("safetensors.numpy", "safetensors", _PURPOSE_WRITE)
    metadata = {str(k): str(v) for k, v in (metadata or {}).items()}
    arrays = {k: np.asarray(v, order="C") for k, v in state.items()}  # keeps 0-d arrays 0-d
    data = sn.save(arrays, metadata=metadata)
    return atomic_write(path, lambda f: f.write(data))
