"""Whole-network gradient checks (STYLE.md G3) with G4's redraw rule (not a test module itself).

A directional check compares [L(θ+hu) − L(θ−hu)] / 2h with <∇L, u>.  In a network of ReLUs and
hard-swishes, a direction u may carry some pre-activation across a kink (0, 6, ±3) between θ−hu
and θ+hu; the central difference is then not the derivative at θ, and the check fails although
the backward pass is right.  G4 says: compare the activation-region masks at θ ± hu, and if they
differ, a kink was crossed: redraw u (never loosen the tolerance).

``directional_check`` does exactly that.  While ``npmobilenet.gradcheck`` runs, every activation
with a kink records which linear piece each of its inputs falls in (a checksum of the region
ids), per model forward.  Each direction's two evaluations (+h, −h) are the last forwards of the
run, in the report's row order, so a row whose two region checksums differ crossed a kink.
Such rows are inconclusive; their tensors are checked again with new random directions (only
those tensors, through ``_Only``), and, when a tensor keeps crossing, at a new input and finally
with h/10 (G4 step 2), until every tensor has a kink-free draw.  Every kink-free row must pass;
any failure is an AssertionError carrying the report.
"""
import zlib
from contextlib import contextmanager

import numpy as np

from npmobilenet.gradcheck import gradcheck
from npmobilenet.module import Module
from npmobilenet.ops.activations import Hardsigmoid, Hardswish, ReLU, ReLU6

KINKS = {ReLU: (0.0,), ReLU6: (0.0, 6.0), Hardswish: (-3.0, 3.0), Hardsigmoid: (-3.0, 3.0)}


@contextmanager
def activation_regions(model):
    """Record, per forward of ``model``, one checksum per kinked activation of its input's region ids."""
    calls = []
    saved = {cls: cls.forward for cls in KINKS}

    def model_forward(x, _f=model.forward):
        calls.append([])
        return _f(x)

    for cls, kinks in KINKS.items():
        def forward(self, x, _f=saved[cls], _k=np.asarray(kinks)):
            if calls:
                calls[-1].append(zlib.crc32(np.searchsorted(_k, x, side="right").astype(np.uint8).tobytes()))
            return _f(self, x)
        cls.forward = forward
    model.forward = model_forward
    try:
        yield calls
    finally:
        for cls, f in saved.items():
            cls.forward = f
        del model.forward


class _Only(Module):
    """The model, exposing only some of its parameter tensors to the checker (for redraws)."""

    def __init__(self, model, names):
        super().__init__()
        object.__setattr__(self, "model", model)  # not a child: parameters() is overridden below
        object.__setattr__(self, "names", list(names))

    def forward(self, x):
        return self.model.forward(x)

    def backward(self, dy):
        return self.model.backward(dy)

    def parameters(self):
        p = self.model.parameters()
        return {k: p[k] for k in self.names}

    def grads(self):
        g = self.model.grads()
        return {k: g[k] for k in self.names}


def _run(target, model, x, seed, h):
    with activation_regions(model) as calls:
        report = gradcheck(target, x, mode="directional", seed=seed, h=h)
    n = len(report.rows)
    assert len(calls) == 2 + 2 * n, "gradcheck's evaluation order changed; update directional_check"
    crossed = [calls[2 + 2 * i] != calls[3 + 2 * i] for i in range(n)]
    return report, crossed


def directional_check(model, draw_input, draws=4, inputs=3, steps=(1e-5, 1e-6, 1e-7)):
    """G3 for a whole model, with G4's redraws.  Returns (first report, {tensor: h it passed at}).

    ``draw_input(k)`` gives the k-th input.  A tensor whose direction crossed a kink gets new random
    directions (up to ``draws`` per input), then new inputs (up to ``inputs``): some pre-activation
    may sit within ~h of a kink.  In a large network (a million activations) the steps of the first
    layers' tensors cross some kink more often than not, so a tensor still open after every draw
    is checked with h/10, then h/100 (G4 step 2).  The same goes for a tensor that fails along a
    kink-free direction: a training-mode MNv4 (BN over 8 values per channel after the 1x1 stages)
    is so curved that the O(h^2) truncation error at h = 1e-5 can exceed the tolerance; it falls
    100x per step, while a wrong gradient keeps its error at every h.  Rounding stays far below the
    tolerance down to h = 1e-7 (eps |L| / (h |<grad, u>|) ~ 1e-10 for these losses).

    Each tensor needs one kink-free direction that passes the G3 rule.  Raises AssertionError
    naming every tensor that never did (with its kink-free failures and the first report).
    """
    first, pending, seed, verified, failures = None, None, 0, {}, {}
    for h in steps:
        deferred = set()  # failed along a kink-free direction at this h: try the next h
        for k in range(inputs):
            if pending is not None and not pending:
                break
            x = draw_input(k)
            for _ in range(draws):
                if pending is not None and not pending:
                    break
                target = model if pending is None or "all parameters" in pending else _only(model, pending)
                report, crossed = _run(target, model, x, seed, h)
                seed += 1
                first = first or report
                pending = set() if pending is None else pending
                for r, c in zip(report.rows, crossed):
                    name = r["name"]
                    if name == "all parameters" and target is not model:
                        continue  # over a subset only: says nothing about the full direction
                    if c:
                        pending.add(name)
                    elif r["passed"]:
                        pending.discard(name)
                        verified.setdefault(name, h)
                    else:
                        failures.setdefault(name, []).append(f"h={h:g}: rel error {r['rel_error']:.2e}, "
                                                             f"err/bound {r['ratio']:.3g}")
                        pending.discard(name)
                        deferred.add(name)
        pending = (pending or set()) | (deferred - set(verified))
        if not pending:
            return first, verified
    lines = [f"  {n}: " + ("; ".join(failures[n]) if n in failures else "crossed a kink in every draw")
             for n in sorted(pending)]
    raise AssertionError("gradient not verified along any kink-free direction:\n" + "\n".join(lines)
                         + f"\n{first}")


def _only(model, pending):
    names = sorted(pending - {"input", "all parameters"}) or list(model.parameters())[:1]
    return _Only(model, names)


def perturb(model, rng, scale=0.1):
    """G1: move parameters off their init (exact zeros and ones) and give BN non-trivial statistics.

    Layer-scale gammas (init 1e-5) are drawn from U(0.5, 1.5): near zero, a residual-free block's
    output is ~1e-5 and the next training-mode BN divides by sqrt(var + eps) with var << eps, a
    badly conditioned point for finite differences (and one no trained network sits at).
    """
    for k, p in model.parameters().items():
        if k.endswith("layer_scale.gamma"):
            p[...] = rng.uniform(0.5, 1.5, p.shape)
            continue
        p += scale * rng.standard_normal(p.shape) * (np.abs(p).mean() + 0.1)
    for k, b in model.buffers().items():
        if k.endswith("running_mean"):
            b[...] = 0.1 * rng.standard_normal(b.shape)
        elif k.endswith("running_var"):
            b[...] = rng.uniform(0.5, 1.5, b.shape)
    return model
