"""Helpers shared by the per-layer tests (not a test module itself)."""
import contextlib

import numpy as np

from npmobilenet.gradcheck import assert_grad_close, numerical_grad
from npmobilenet.ops import backend

PATHS = ["fast", "plain"]


def on(path):
    """Context that selects the backend path by name."""
    return backend.plain() if path == "plain" else contextlib.nullcontext()


def check_layer_grads(module, x, seed=0):
    """G2 elementwise check of a module's input gradient and every parameter gradient, float64.

    Works for parameter-free modules too.  L = <module(x), dy> with a fixed Gaussian dy.
    Returns the analytic input gradient.
    """
    assert x.dtype == np.float64
    for name, p in module.parameters().items():
        assert p.dtype == np.float64, f"{name} is {p.dtype}; call module.to(np.float64)"
    dy = np.random.default_rng(seed).standard_normal(module.forward(x).shape)
    module.forward(x)
    dx = module.backward(dy)
    grads = {k: g.copy() for k, g in module.grads().items()}
    f = lambda: float(np.sum(module.forward(x) * dy))  # noqa: E731
    assert_grad_close(dx, numerical_grad(f, x), "input")
    for name, p in module.parameters().items():
        assert_grad_close(grads[name], numerical_grad(f, p), name)
    return dx


def perturb_params(module, rng, scale=0.5):
    """Move every parameter away from its (often constant) init, so that e.g. gamma != 1."""
    for p in module.parameters().values():
        p += scale * rng.standard_normal(p.shape).astype(p.dtype)
    return module
