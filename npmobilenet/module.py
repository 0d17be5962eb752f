"""The module base class and the ``Sequential`` container.

A module is a small object with ``forward(x)`` and ``backward(dy) -> dx``.  Forward keeps in the
module what backward needs (its *cache*); backward reads that cache, never changes it, and never
changes ``dy``.  Parameters and their gradients live in named arrays:

* ``parameters()`` and ``grads()`` return ``{name: live ndarray}`` with timm's ``state_dict`` key
  names (``blocks.0.0.conv_dw.weight``).  Gradients are *overwritten* by every backward (not
  accumulated), so two backward calls on the same cache give the same gradients.
* ``state_dict()`` adds the buffers (BN ``running_mean`` / ``running_var``) and returns copies, so a
  saved checkpoint never changes under a later training step.

Children and parameters are registered by plain attribute assignment, as in ``torch.nn``::

    self.conv = Conv2d(3, 16, 3, stride=2)      # a child module
    self.weight = self.register_parameter("weight", w)
"""
from __future__ import annotations

import inspect

import numpy as np

DEFAULT_DTYPE = np.float32


class BackwardBeforeForward(RuntimeError, ValueError):
    """``backward`` was called on a module whose ``forward`` has not run (or whose cache was freed)."""


_GRAD = {"enabled": True}


class no_grad:
    """``with npmobilenet.no_grad(): y = model(x)``: forward passes that keep nothing for backward,
    as ``torch.no_grad()``.

    Inside, ``Sequential`` drops each child's cache as soon as the next layer has its input, so an
    inference pass holds only the activations in flight, not every layer's; and on the fast path
    an eval-mode conv -> batch norm -> activation runs as one layer, the normalisation and the
    activation applied to each chunk of the conv's output while it is still in cache
    (``ops/fused.py``).  The outputs are bit for bit those of the same forward outside.  A
    ``backward`` after such a forward raises ``BackwardBeforeForward``.
    """

    def __enter__(self):
        self._prev = _GRAD["enabled"]
        _GRAD["enabled"] = False
        return self

    def __exit__(self, *exc):
        _GRAD["enabled"] = self._prev
        return False


def grad_enabled():
    """False inside ``no_grad()``."""
    return _GRAD["enabled"]


class Module:
    """Base class: named parameters, gradients, buffers and children; train/eval; dtype."""

    def __init__(self):
        object.__setattr__(self, "_params", {})
        object.__setattr__(self, "_grads", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_children", {})
        object.__setattr__(self, "training", True)

    # ---- registration -------------------------------------------------------------------------
    def register_parameter(self, name, value):
        """Register ``value`` as trainable parameter ``name``; its gradient starts at zero."""
        value = np.ascontiguousarray(value)
        self._params[name] = value
        self._grads[name] = np.zeros_like(value)
        return value

    def register_buffer(self, name, value):
        """Register a non-trainable array that is part of the state (e.g. BN running statistics)."""
        value = np.ascontiguousarray(value)
        self._buffers[name] = value
        return value

    def __setattr__(self, name, value):
        if isinstance(value, Module):
            self._children[name] = value
        elif name in self._params:
            self._params[name] = value
        elif name in self._buffers:
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        # Only called when normal lookup fails: parameters, buffers and children live in dicts.
        d = self.__dict__
        for store in ("_params", "_buffers", "_children"):
            if store in d and name in d[store]:
                return d[store][name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    # ---- the computation ----------------------------------------------------------------------
    def forward(self, x):
        raise NotImplementedError

    def backward(self, dy):
        raise NotImplementedError

    def __call__(self, x):
        return self.forward(x)

    def _set_grad(self, name, g):
        """Overwrite the live gradient array ``name`` with ``g`` (shape and dtype kept)."""
        np.copyto(self._grads[name], g, casting="same_kind")

    def _need_cache(self, cache):
        if cache is None:
            raise BackwardBeforeForward(
                f"{self._label()}.backward: no forward pass to differentiate; call forward(x) first"
                f" (a forward under npmobilenet.no_grad() keeps nothing for backward)")
        return cache

    def _label(self):
        return type(self).__name__

    # ---- traversal ----------------------------------------------------------------------------
    def named_children(self):
        return list(self._children.items())

    def named_modules(self, prefix=""):
        """Yield ``(dotted_name, module)`` for this module and every descendant, depth first."""
        yield prefix, self
        for name, child in self._children.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        return [m for _, m in self.named_modules()]

    def _named(self, store):
        out = {}
        for prefix, m in self.named_modules():
            for k, v in getattr(m, store).items():
                out[f"{prefix}.{k}" if prefix else k] = v
        return out

    def parameters(self):
        """``{name: ndarray}``: the live trainable arrays, timm's key names."""
        return self._named("_params")

    def grads(self):
        """``{name: ndarray}``: the live gradient arrays, same names and shapes as ``parameters()``."""
        return self._named("_grads")

    def buffers(self):
        return self._named("_buffers")

    def num_parameters(self):
        return int(sum(p.size for p in self.parameters().values()))

    def zero_grad(self):
        for g in self.grads().values():
            g[...] = 0

    # ---- state ----------------------------------------------------------------------------------
    def state_dict(self):
        """Parameters and buffers, copied, in registration order (timm's order)."""
        out = {}
        for prefix, m in self.named_modules():
            for store in (m._params, m._buffers):
                for k, v in store.items():
                    out[f"{prefix}.{k}" if prefix else k] = v.copy()
        return out

    def load_state_dict(self, state, strict=True):
        """Copy arrays from ``state`` into the live parameters and buffers.

        Nothing is changed unless everything fits: with ``strict`` every key must be present with
        the right shape, and no key may be extra.  ``num_batches_tracked`` keys (a PyTorch BN
        counter this library does not need) are accepted and ignored.  Values are cast to the
        model's dtype.  Raises ``KeyError``/``ValueError`` listing every difference.
        """
        targets = {}
        for prefix, m in self.named_modules():
            for store in (m._params, m._buffers):
                for k in store:
                    targets[f"{prefix}.{k}" if prefix else k] = (store, k)
        given = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
        missing = [k for k in targets if k not in given]
        unexpected = [k for k in given if k not in targets]
        wrong = []
        for k, v in given.items():
            if k in targets:
                store, name = targets[k]
                shape = tuple(np.shape(v))
                if shape != store[name].shape:
                    wrong.append(f"{k}: checkpoint shape {shape}, model shape {store[name].shape}")
                elif not np.issubdtype(np.asarray(v).dtype, np.floating):
                    wrong.append(f"{k}: checkpoint dtype {np.asarray(v).dtype}, expected a float dtype")
        problems = []
        if strict and missing:
            problems.append(f"missing keys ({len(missing)}): " + ", ".join(missing))
        if strict and unexpected:
            problems.append(f"unexpected keys ({len(unexpected)}): " + ", ".join(unexpected))
        problems += wrong
        if problems:
            raise ValueError(f"load_state_dict for {self._label()}: nothing was loaded;\n  "
                             + "\n  ".join(problems))
        for k, v in given.items():
            if k in targets:
                store, name = targets[k]
                np.copyto(store[name], np.asarray(v), casting="unsafe")
        return self

    # ---- modes and dtype ------------------------------------------------------------------------
    def train(self, mode=True):
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def to(self, dtype):
        """Cast every parameter, gradient and buffer to ``dtype`` (float32 or float64), in place."""
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"{self._label()}.to: dtype must be float32 or float64, got {dtype}")
        for m in self.modules():
            for store in (m._params, m._grads, m._buffers):
                for k in store:
                    store[k] = store[k].astype(dtype)
            m._drop_cache()
        return self

    @property
    def dtype(self):
        # The first parameter, depth first.  Unless a subclass defines its own parameters(), stop
        # at it rather than build parameters()'s whole dict (blocks check their input's dtype on
        # every forward; that cost 14 us a call).
        if type(self).parameters is not Module.parameters:
            params = iter(self.parameters().values())
        else:
            params = (p for _, m in self.named_modules() for p in m._params.values())
        for p in params:
            return p.dtype
        return np.dtype(DEFAULT_DTYPE)

    def _drop_cache(self):
        """Forget what the last forward kept (after a dtype change the cache is stale)."""
        if "cache" in self.__dict__:
            object.__setattr__(self, "cache", None)

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, child in self._children.items():
            sub = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {sub}")
        return lines[0] + ")" if len(lines) == 1 else "\n".join(lines) + "\n)"

    def extra_repr(self):
        return ""


class Sequential(Module):
    """Chain of modules: forward left to right, backward right to left.

    Children are named ``"0"``, ``"1"``, ... as in ``torch.nn.Sequential`` (so timm's
    ``blocks.0.1.conv_dw.weight`` keys fall out of nesting), or by the names of an ordered dict.
    """

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], dict):
            items = list(modules[0].items())
        else:
            items = [(str(i), m) for i, m in enumerate(modules)]
        for name, m in items:
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: item {name!r} is {type(m).__name__}, expected a Module")
            self._children[name] = m

    def __len__(self):
        return len(self._children)

    def __getitem__(self, i):
        if isinstance(i, str):
            return self._children[i]
        return list(self._children.values())[i]

    def __iter__(self):
        return iter(self._children.values())

    def append(self, m):
        self._children[str(len(self._children))] = m
        return self

    # On the fast path a BatchNorm2d and the activation after it run as one layer, fused (see
    # npmobilenet.ops.fused: same results, same caches, one pass through memory instead of two);
    # under no_grad, so does an eval-mode conv -> BN (-> activation) before it.
    def forward(self, x):
        mods, fused = list(self._children.values()), _fused()
        keep = grad_enabled()
        i = 0
        while i < len(mods):
            if not keep and i + 1 < len(mods) and fused.triple(mods[i], mods[i + 1]):
                x, n = fused.inference(mods[i], mods[i + 1], mods[i + 2:i + 3], x)
            elif i + 1 < len(mods) and fused.pair(mods[i], mods[i + 1]):
                x, n = fused.forward(mods[i], mods[i + 1], x), 2
            else:
                x, n = mods[i].forward(x), 1
            if not keep:          # no_grad: nothing is kept for a backward
                for m in mods[i:i + n]:
                    m.cache = None
            i += n
        return x

    def backward(self, dy, input_grad=True):
        """The children's backward in reverse order.  ``input_grad=False``: the input needs no
        gradient (an image), so the first child, if it can (a conv), skips it; returns None."""
        mods, fused = list(self._children.values()), _fused()
        i = len(mods) - 1
        while i >= 0:
            if i >= 1 and fused.pair(mods[i - 1], mods[i]):
                dy = fused.backward(mods[i - 1], mods[i], dy)
                i -= 2
            elif i == 0 and not input_grad and _takes_input_grad(mods[0]):
                mods[0].backward(dy, input_grad=False)
                i -= 1
            else:
                dy = mods[i].backward(dy)
                i -= 1
        return dy if input_grad else None


def _takes_input_grad(m):
    """m.backward accepts ``input_grad`` (Conv2d, Sequential): it can skip the input's gradient."""
    try:
        return "input_grad" in inspect.signature(m.backward).parameters
    except (TypeError, ValueError):
        return False


def _fused():
    from .ops import fused      # imported here: the ops import this module
    return fused


def check_input(layer, x, channels=None, ndim=4, dtype=None):
    """Validate ``x`` for ``layer``: rank, float dtype (equal to the parameters'), channel count, not empty.

    Raises ``TypeError``/``ValueError`` that name the layer, the argument, what was given and what
    was expected.
    """
    def name():                 # made only for an error: a layer's label costs microseconds to format
        return layer._label() if isinstance(layer, Module) else str(layer)
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name()}: input x must be a numpy.ndarray, got {type(x).__name__}")
    if x.dtype.kind != "f":     # np.issubdtype(x.dtype, np.floating), 10x cheaper
        raise TypeError(f"{name()}: input x has dtype {x.dtype}; expected float32 or float64")
    if dtype is not None and x.dtype != dtype:
        raise TypeError(f"{name()}: input x has dtype {x.dtype} but the parameters are {np.dtype(dtype)};"
                        f" cast the input or call model.to({np.dtype(dtype).name})")
    if x.ndim != ndim:
        want = {4: "(N, C, H, W)", 2: "(N, features)"}.get(ndim, f"{ndim} dimensions")
        raise ValueError(f"{name()}: input x has shape {x.shape} ({x.ndim} dimensions); expected {want}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{name()}: input x has {x.shape[1]} channels (shape {x.shape}); expected {channels}")
    if x.size == 0:
        raise ValueError(f"{name()}: input x has shape {x.shape}, no values; expected at least 1 in every"
                         f" dimension (an empty batch is usually an empty data split)")
    return x
