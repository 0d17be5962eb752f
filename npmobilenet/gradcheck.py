"""Gradient checking: the hand-written backward passes against finite differences.

Two modes, both in float64 only (in float32 the rounding error of a finite difference is larger
than the quantity being checked):

* **elementwise** (small layers): every element of the input and of every parameter is nudged by
  ±h and the central difference of the scalar L = <f(x), dy> is compared with the analytic
  gradient.  ``dy`` is Gaussian, never ones: with ones, errors that cancel across an output
  (e.g. a wrong sign in a mean-subtracting layer such as BN) would go unseen.
* **directional** (blocks and whole networks): along a random unit direction u, the central
  difference [L(θ+hu) − L(θ−hu)] / 2h is compared with <∇L, u>, one direction per tensor and one
  over all parameters at once: two forward passes per direction instead of two per element.

Pass rules (relative to the size of what is compared, with a small absolute floor so that exactly
zero gradients pass):

* elementwise: |a − n| ≤ 1e-6·(|a| + |n|) + 1e-9·max|n|, for every element;
* directional: |num − ana| ≤ 1e-6·(|num| + |ana|) + 1e-9·‖∇L‖₂.

Example::

    >>> import numpy as np
    >>> from npmobilenet import nn, gradcheck
    >>> layer = nn.Linear(4, 3).to(np.float64)
    >>> report = gradcheck(layer, np.random.default_rng(0).standard_normal((2, 4)))
    >>> report.passed
    True
"""
from __future__ import annotations

import numpy as np

H = 1e-5          # central-difference step: error O(h^2) ~ 1e-10, rounding O(eps/h) ~ 1e-11
RTOL = 1e-6       # relative part of the pass rule
ATOL_FRAC = 1e-9  # absolute floor, as a fraction of the largest gradient (or the gradient norm)


def numerical_grad(f, x, h=H):
    """Central differences of the scalar ``f()`` with respect to every element of ``x``.

    ``x`` is perturbed in place (``f`` must read it) and restored exactly.

    Inputs:  f: callable () -> float;  x: float64 array of any shape.
    Returns: array shaped like x: (f(x + h e_i) - f(x - h e_i)) / 2h for each i.
    """
    if x.dtype != np.float64:
        raise TypeError(f"numerical_grad: x has dtype {x.dtype}; finite differences need float64")
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    if not np.shares_memory(flat, x):
        raise ValueError("numerical_grad: x must be contiguous so it can be perturbed in place")
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        fp = f()
        flat[i] = old - h
        fm = f()
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * h)
    return grad


def rel_error(a, n):
    """CS231n's relative error: max |a - n| / max(1e-8, |a| + |n|), for teaching tables."""
    a, n = np.asarray(a, np.float64), np.asarray(n, np.float64)
    return float(np.max(np.abs(a - n) / np.maximum(1e-8, np.abs(a) + np.abs(n)), initial=0.0))


def _worst(a, n, floor):
    """Largest ratio |a-n| / (RTOL(|a|+|n|) + floor) and its flat index: pass iff ratio <= 1."""
    diff = np.abs(a - n)
    bound = RTOL * (np.abs(a) + np.abs(n)) + floor
    # a gradient that is exactly zero everywhere (an output that sees only padding) has bound 0;
    # then only an exact match passes
    ratio = np.divide(diff, bound, out=np.where(diff == 0, 0.0, np.inf), where=bound > 0)
    i = int(np.argmax(ratio)) if ratio.size else 0
    return (float(ratio.reshape(-1)[i]) if ratio.size else 0.0), i


def assert_grad_close(analytic, numeric, name=""):
    """The elementwise pass rule; on failure, a readable "mine vs numeric" message."""
    a = np.asarray(analytic, np.float64)
    n = np.asarray(numeric, np.float64)
    if a.shape != n.shape:
        raise AssertionError(f"{name}: analytic gradient shape {a.shape} != numeric shape {n.shape}")
    floor = ATOL_FRAC * float(np.max(np.abs(n), initial=0.0))
    ratio, i = _worst(a, n, floor)
    if not ratio <= 1.0:  # also catches NaN
        idx = np.unravel_index(i, a.shape) if a.shape else ()
        raise AssertionError(
            f"gradient of {name or 'tensor'} {a.shape} fails |a-n| <= {RTOL:g}(|a|+|n|) + {ATOL_FRAC:g} max|n| "
            f"at index {idx}: mine {a.reshape(-1)[i]!r} vs numeric {n.reshape(-1)[i]!r} "
            f"(ratio to bound {ratio:.3g}; rel_error {rel_error(a, n):.3g})")


def away_from_kinks(x, kinks=(0.0, 6.0, -3.0, 3.0), margin=1e-3):
    """Copy of ``x`` with every value within ``margin`` of a kink moved to ``kink ± margin``.

    The activations are not differentiable at their kinks; a finite difference straddling one
    measures the average of two one-sided slopes.  ``margin`` must be far larger than h (100 h).
    """
    y = np.array(x, dtype=np.float64, copy=True)
    for k in kinks:
        d = y - k
        near = np.abs(d) < margin
        y[near] = k + np.where(d[near] >= 0, margin, -margin)
    return y


class GradcheckReport:
    """One row per checked tensor: name, shape, |grad|, error figures, pass/fail.  Printable."""

    def __init__(self, mode):
        self.mode = mode
        self.rows = []

    def add(self, name, shape, grad_norm, rel, ratio, passed):
        self.rows.append(dict(name=name, shape=tuple(shape), grad_norm=float(grad_norm),
                              rel_error=float(rel), ratio=float(ratio), passed=bool(passed)))

    @property
    def passed(self):
        return bool(self.rows) and all(r["passed"] for r in self.rows)

    @property
    def max_rel_error(self):
        return max((r["rel_error"] for r in self.rows), default=0.0)

    def __str__(self):
        rule = ("|a-n| <= 1e-6(|a|+|n|) + 1e-9 max|n| per element" if self.mode == "elementwise"
                else "|num-ana| <= 1e-6(|num|+|ana|) + 1e-9 ||grad||_2 per direction")
        head = f"gradcheck ({self.mode}, float64, h={H:g}); pass rule: {rule}"
        w = max([len(r["name"]) for r in self.rows] + [6])
        lines = [head, f"{'tensor':<{w}}  {'shape':<18} {'|grad|':>10} {'rel error':>10} {'err/bound':>10}  ok"]
        for r in self.rows:
            lines.append(f"{r['name']:<{w}}  {str(r['shape']):<18} {r['grad_norm']:>10.3g} "
                         f"{r['rel_error']:>10.2e} {r['ratio']:>10.2e}  {'yes' if r['passed'] else 'NO'}")
        lines.append(f"{'all passed' if self.passed else 'FAILED'}; max rel error {self.max_rel_error:.2e}")
        return "\n".join(lines)

    __repr__ = __str__

    def assert_passed(self):
        if not self.passed:
            raise AssertionError("\n" + str(self))
        return self


def _loss_and_grads(module, x, r, loss):
    """L = loss(module(x)) (default <y, r>), then the analytic dL/dx and parameter grads."""
    y = module.forward(x)
    if loss is None:
        value, dy = float(np.sum(y * r)), r
    else:
        value, dy = loss(y)
    dx = module.backward(dy)
    return value, dx, {k: g.copy() for k, g in module.grads().items()}


def _value(module, x, r, loss):
    y = module.forward(x)
    return float(np.sum(y * r)) if loss is None else float(loss(y)[0])


def gradcheck(module, x, mode="elementwise", seed=0, h=H, loss=None, directions=1):
    """Check ``module.backward`` against finite differences of its forward, in float64.

    Inputs:
      module: a Module whose parameters are float64 (``module.to(np.float64)``).
      x: float64 input array (N, ...).
      mode: "elementwise" (every element; small tensors) or "directional" (random unit
        directions; blocks and whole networks).
      loss: None for L = <module(x), r> with a fixed Gaussian r (never Σy), or a callable
        y -> (L, dL/dy) such as a cross-entropy with fixed labels.
      directions: directional mode: how many random directions per tensor.
    Returns: a GradcheckReport (``print`` it; ``.passed``; ``.assert_passed()``).

    BN in train mode uses batch statistics; the running averages it updates on each forward do
    not affect train-mode outputs, so repeated forwards are consistent.  Dropout draws a new mask
    on every training forward, so it must be off (p = 0, or eval mode) while checking.
    """
    x = np.ascontiguousarray(x)
    has_params = bool(module.parameters())
    if x.dtype != np.float64 or (has_params and module.dtype != np.float64):
        raise TypeError(f"gradcheck: needs float64 (input {x.dtype}, parameters {module.dtype}); "
                        "call module.to(np.float64) and pass a float64 input")
    if mode not in ("elementwise", "directional"):
        raise ValueError(f"gradcheck: mode must be 'elementwise' or 'directional', got {mode!r}")
    rng = np.random.default_rng(seed)
    r = rng.standard_normal(np.shape(module.forward(x))) if loss is None else None
    _, dx, grads = _loss_and_grads(module, x, r, loss)
    params = module.parameters()
    tensors = [("input", x, dx)] + [(k, params[k], grads[k]) for k in params]
    report = GradcheckReport(mode)
    f = lambda: _value(module, x, r, loss)  # noqa: E731  (reads x and the live parameters)

    if mode == "elementwise":
        for name, arr, ana in tensors:
            num = numerical_grad(f, arr, h)
            floor = ATOL_FRAC * float(np.max(np.abs(num), initial=0.0))
            ratio, _ = _worst(ana, num, floor)
            report.add(name, arr.shape, np.linalg.norm(ana), rel_error(ana, num), ratio, ratio <= 1.0)
        return report

    gnorm = float(np.sqrt(sum(np.sum(g * g) for _, _, g in tensors)))
    floor = ATOL_FRAC * gnorm
    groups = [(name, [(arr, ana)]) for name, arr, ana in tensors]
    if len(tensors) > 1:
        groups.append(("all parameters", [(arr, ana) for _, arr, ana in tensors[1:]]))
    for name, members in groups:
        for _ in range(directions):
            us = [rng.standard_normal(arr.shape) for arr, _ in members]
            norm = np.sqrt(sum(np.sum(u * u) for u in us)) or 1.0
            us = [u / norm for u in us]
            ana = sum(float(np.sum(g * u)) for (_, g), u in zip(members, us))
            saved = [arr.copy() for arr, _ in members]
            vals = []
            for sign in (1.0, -1.0):
                for (arr, _), u, s in zip(members, us, saved):
                    arr[...] = s + sign * h * u
                vals.append(f())
            for (arr, _), s in zip(members, saved):
                arr[...] = s  # restore exactly (x + hu - hu need not round back to x)
            num = (vals[0] - vals[1]) / (2 * h)
            ratio = abs(num - ana) / (RTOL * (abs(num) + abs(ana)) + floor)
            shape = members[0][0].shape if len(members) == 1 else (sum(a.size for a, _ in members),)
            report.add(name, shape, abs(ana), rel_error(ana, num), ratio, ratio <= 1.0)
    return report
