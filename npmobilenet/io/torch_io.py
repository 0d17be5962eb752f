"""PyTorch ``.pth`` / ``.pt`` / ``.bin`` state dicts, when torch is installed (extra ``torch``).

torch is never required: this is the one module that imports it, and only when such a file is
read or written.  Reading uses ``torch.load(..., weights_only=True)``, which refuses to run code
hidden in a pickle.  Training checkpoints that wrap the state dict are unwrapped the way timm's
``load_checkpoint`` does (the weights under the first of ``WRAPPER_KEYS`` present), and the
``module.`` prefix that ``DataParallel`` adds is removed.
"""
from __future__ import annotations

import os

import numpy as np

from .atomic import atomic_write
from .errors import CheckpointError, require

# Where training scripts keep the weights inside a checkpoint dict (timm, torchvision references).
WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "module", "net")


def read_torch(path):
    """Read a PyTorch state dict file into ``key -> ndarray``.

    Inputs:
    - path: a file written by ``torch.save(model.state_dict(), path)`` (or a checkpoint dict with
      the weights under one of ``WRAPPER_KEYS``).

    Returns:
    - state: dict ``key -> ndarray`` (bfloat16 becomes float32; other dtypes are kept).
    """
    torch = require("torch", "torch", "reading PyTorch .pth/.pt/.bin files")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such weights file: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises RuntimeError, EOFError, UnpicklingError, ...
        raise CheckpointError(f"{path} is not a readable PyTorch file (truncated, corrupt, or "
                              f"holding more than tensors?): {type(e).__name__}: {e}") from e
    state = _unwrap(obj, path)
    out, bad = {}, []
    for k, v in state.items():
        if not isinstance(v, torch.Tensor):
            bad.append(f"{k}: {type(v).__name__}")
            continue
        v = v.detach().cpu()
        if v.dtype == torch.bfloat16:
            v = v.float()
        out[k[len("module."):] if k.startswith("module.") else k] = v.numpy()
    if bad:
        raise CheckpointError(f"{path}: these entries are not tensors: " + ", ".join(bad))
    return out


def _unwrap(obj, path):
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state dict")
    for key in WRAPPER_KEYS:
        if isinstance(obj.get(key), dict):
            return obj[key]
    return obj


def write_torch(path, state):
    """Write ``state`` (``key -> ndarray``) as a PyTorch state dict, atomically."""
    torch = require("torch", "torch", "writing PyTorch .pth files")
    tensors = {k: torch.from_numpy(np.array(v, copy=True)) for k, v in state.items()}
    return atomic_write(path, lambda f: torch.save(tensors, f))
