"""The two errors of reading and writing weights.

* ``CheckpointError`` (a ``ValueError``): the file cannot be used: truncated, corrupt, of an
  unknown format, or its tensors do not fit the model.  The message names the file and lists every
  difference, and nothing has been loaded when it is raised.
* ``MissingExtra`` (an ``ImportError``): the format needs an optional package that is not
  installed; the message names the ``pip install`` line (``npmobilenet[safetensors]``,
  ``npmobilenet[torch]``).
"""
from __future__ import annotations

import importlib


class CheckpointError(ValueError):
    """A weights file that cannot be read, or whose tensors do not fit the model."""


class MissingExtra(ImportError):
    """An optional package (an *extra* of npmobilenet) is needed for this format."""


def require(module, extra, purpose):
    """Import ``module`` or raise ``MissingExtra`` naming the extra that installs it.

    Inputs:
    - module: the module to import, e.g. ``"safetensors.numpy"``.
    - extra: npmobilenet's extra that installs it, e.g. ``"safetensors"``.
    - purpose: what it is needed for, e.g. ``"reading .safetensors files"``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        top = module.split(".")[0]
        raise MissingExtra(f"{purpose} needs the {top} package, which is not installed: "
                           f"pip install 'npmobilenet[{extra}]' (or pip install {top})") from e
