"""npmobilenet: the MobileNet family (V1, V2, V3, V4) in plain NumPy.

Every forward and backward pass is written by hand; hot loops are compiled with Numba; every
gradient is checked against finite differences (``npmobilenet.gradcheck``).
"""
import importlib

__version__ = "0.1.0"

# Imported eagerly so that the name ``npmobilenet.gradcheck`` is the function, not its module
# (``from npmobilenet.gradcheck import numerical_grad`` still reaches the module).
from .gradcheck import gradcheck  # noqa: E402

# Public names and the submodule that defines each.  They are imported on first use (PEP 562), so
# ``import npmobilenet`` stays fast and a lesson that only needs ``nn`` never compiles a model.
_LAZY = {
    "nn": (".nn", None),
    "create_model": (".build", "create_model"),
    "list_models": (".build", "list_models"),
    "summary": (".count", "summary"),
    "save": (".io", "save"),
    "load": (".io", "load"),
    "no_grad": (".module", "no_grad"),
}


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'npmobilenet' has no attribute {name!r}")
    module, attr = _LAZY[name]
    mod = importlib.import_module(module, __name__)
    value = mod if attr is None else getattr(mod, attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + list(_LAZY))


__all__ = ["nn", "gradcheck", "create_model", "list_models", "summary", "no_grad", "save", "load",
           "__version__"]
