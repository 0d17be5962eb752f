"""Gradient checking a whole network: the directional check (STYLE.md G3) with G4's kink handling.

A directional check compares [L(θ+hu) − L(θ−hu)] / 2h with <∇L, u> (``npmobilenet.gradcheck``
with ``mode="directional"``).  In a network of ReLUs and hard-swishes a direction u may carry some
pre-activation across a kink (0, 6, ±3) between θ−hu and θ+hu; the central difference is then
not the derivative at θ, and the check fails although the backward pass is right.  G4: compare
the activation regions at θ ± hu, and if they differ a kink was crossed: draw again, never loosen
the tolerance.

``check_network`` does that.  While ``gradcheck`` runs, every activation with a kink records which
linear piece each of its inputs falls in (a checksum of the region ids), per forward of the
model.  Each direction's two evaluations (+h, −h) are the last forwards of the run, in the
report's row order, so a row whose two checksums differ crossed a kink.  Its tensor is checked
again with new random directions (only the open tensors, through ``_Only``), then at new inputs,
and, when it keeps crossing, at h/10 and h/100 (G4 step 2).  The same goes for a tensor that
fails along a kink-free direction: a training-mode MobileNetV4 (BN over 8 values per channel after
the 1x1 stages) is so curved that the O(h²) truncation error at h = 1e-5 can exceed the
tolerance; it falls 100x per step, while a wrong gradient keeps its error at every h.  Rounding
stays far below the tolerance down to h = 1e-7 (eps |L| / (h |<∇L, u>|) ~ 1e-10 for these losses).

A tensor passes when one kink-free direction passes the G3 rule.  Used by the test suite and by
``npmobilenet gradcheck MODEL``; lesson 8 explains it.
"""
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from .gradcheck import GradcheckReport, gradcheck
from .module import Module
from .ops.activations import Hardsigmoid, Hardswish, ReLU, ReLU6

KINKS = {ReLU: (0.0,), ReLU6: (0.0, 6.0), Hardswish: (-3.0, 3.0), Hardsigmoid: (-3.0, 3.0)}
STEPS = (1e-5, 1e-6, 1e-7)


def perturb(model, rng, scale=0.1):
    """G1: move parameters off their init (exact zeros and ones) and give BN non-trivial statistics,
    so that eval mode is a real test too.

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


@contextmanager
def activation_regions(model):
    """Per forward of ``model``: one checksum per kinked activation of the pieces its inputs are in.

    The recorders are set on the instances (and removed afterwards), so the fast path, which runs
    a patched layer on its own, calls every activation."""
    calls, acts = [], [m for m in model.modules() if type(m) in KINKS]

    def top(x, _f=model.forward):
        calls.append([])
        return _f(x)

    for m in acts:
        def forward(x, _f=m.forward, _k=np.asarray(KINKS[type(m)])):
            if calls:
                calls[-1].append(zlib.crc32(np.searchsorted(_k, x, side="right").astype(np.uint8).tobytes()))
            return _f(x)
        object.__setattr__(m, "forward", forward)
    object.__setattr__(model, "forward", top)
    try:
        yield calls
    finally:
        for m in acts + [model]:
            m.__dict__.pop("forward", None)


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


@dataclass
class NetworkCheck:
    """The outcome of ``check_network``.

    - rows: per tensor (and "input", "all parameters"), the row that decided it: its first passing
      kink-free direction, else its last failing one (``GradcheckReport`` rows, in report order).
    - verified: {tensor: the h it passed at}.
    - failures: {tensor: ["h=...: rel error ..., err/bound ..."]}, every kink-free failure.
    - crossed: tensors whose every direction crossed a kink (no verdict).
    - first: the report of the first run (all tensors, h = 1e-5), kink crossings included.
    """
    rows: list = field(default_factory=list)
    verified: dict = field(default_factory=dict)
    failures: dict = field(default_factory=dict)
    crossed: list = field(default_factory=list)
    first: GradcheckReport = None

    @property
    def unverified(self):
        return sorted({r["name"] for r in self.rows} - set(self.verified) | set(self.crossed))

    @property
    def passed(self):
        return bool(self.rows) and not self.unverified

    def report(self):
        out = GradcheckReport("directional")
        out.rows = list(self.rows)
        return out

    def assert_passed(self):
        """AssertionError naming every tensor never verified, with its failures and the first report."""
        if self.passed:
            return
        lines = [f"  {n}: " + ("; ".join(self.failures[n]) if n in self.failures else "crossed a kink in every draw")
                 for n in self.unverified]
        raise AssertionError("gradient not verified along any kink-free direction:\n" + "\n".join(lines)
                             + f"\n{self.first}")


def _run(target, model, x, seed, h):
    with activation_regions(model) as calls:
        report = gradcheck(target, x, mode="directional", seed=seed, h=h)
    n = len(report.rows)
    if len(calls) != 2 + 2 * n:
        raise RuntimeError("gradcheck's evaluation order changed; update gradcheck_network._run")
    return report, [calls[2 + 2 * i] != calls[3 + 2 * i] for i in range(n)]


def check_network(model, draw_input, draws=4, inputs=3, steps=STEPS, seed=0):
    """G3 for a whole network with G4's redraws; returns a ``NetworkCheck``.

    ``model``: float64, in the mode to check; ``draw_input(k)``: the k-th input (float64).  A
    tensor whose direction crossed a kink gets new random directions (up to ``draws`` per input),
    then new inputs (up to ``inputs``), then the next smaller h in ``steps``; a tensor that failed
    along a kink-free direction is tried at the next h too.  ``seed`` seeds the first direction.
    """
    out, pending, decided, order = NetworkCheck(), None, {}, None
    for h in steps:
        deferred = set()  # failed along a kink-free direction at this h: try the next h
        for k in range(inputs):
            if pending is not None and not pending:
                break
            x = draw_input(k)
            for _ in range(draws):
                if pending is not None and not pending:
                    break
                everything = pending is None or "all parameters" in pending
                target = model if everything else _Only(model, sorted(pending - {"input"})
                                                        or list(model.parameters())[:1])
                report, crossed = _run(target, model, x, seed, h)
                seed += 1
                out.first = out.first or report
                order = order or [r["name"] for r in report.rows]
                pending = set() if pending is None else pending
                for r, c in zip(report.rows, crossed):
                    name = r["name"]
                    if name in out.verified or (name == "all parameters" and target is not model):
                        continue  # done, or the all-parameter direction over a subset only
                    if c:
                        pending.add(name)
                    elif r["passed"]:
                        pending.discard(name)
                        out.verified[name], decided[name] = h, r
                    else:
                        out.failures.setdefault(name, []).append(
                            f"h={h:g}: rel error {r['rel_error']:.2e}, err/bound {r['ratio']:.3g}")
                        pending.discard(name)
                        deferred.add(name)
                        decided[name] = r
        pending = (pending or set()) | (deferred - set(out.verified))
        if not pending:
            break
    out.crossed = sorted(n for n in (pending or ()) if n not in decided)
    out.rows = [decided[n] for n in order if n in decided]
    return out
