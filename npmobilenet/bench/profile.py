"""Per-layer profile of a whole model: where the time goes, and how it compares with the MAdds.

Run:  ``npmobilenet bench profile MODEL [--size 224] [--batch 16] [--train] [--repeats 3]
[--threads 2] [--clock wall|cpu] [--top 30] [--json FILE] [--csv FILE]``

Every module's ``forward`` (and, with ``--train``, ``backward``) is wrapped, as ``summary()``
wraps forward, and timed on each call.  A module's *self time* is its time minus the time of the
modules it calls, so the rows add up to the whole pass with nothing counted twice: a Conv2d row is
the convolution, a block's own row is its residual add, a SqueezeExcite's own row is its pooling
and channel scale.  With ``--train`` a step is forward, cross-entropy (row ``loss``), backward and
an SGD update (row ``optimizer``).  The figures are medians over ``--repeats`` steps after one
warm-up step.  Wrapped modules are never fused (``ops/fused.py``), so here a BN and the activation
after it run as two layers with a row each, where an unwrapped model runs them as one pass: the
BN and activation rows show the unfused costs, and the total is a little above the benchmark's.

MAdds are the core count of ``summary()`` (STYLE F1-F2: conv, linear, attention products; BN,
activations, adds: 0).  Achieved GFLOP/s = 2 x MAdds / forward time, and 4 x MAdds / backward time
(F4: a conv or linear backward does ~2 x its forward MAdds, dX and dW).  Arithmetic intensity is
forward FLOPs per byte of the input, output and parameters (float32: 4 bytes each), the minimum
traffic of the layer: the x axis of a roofline plot.

Data (``--json FILE``, for the roofline figure and the FLOPs-vs-latency lesson)::

    {"meta":   {"model", "size", "batch", "train", "threads", "clock", "repeats", "dtype", "load_start",
                "load_end", "numpy", "numba", "total_ms", "total_madds"},
     "layers": [{"name", "op", "kind", "input_shape", "output_shape", "params", "madds",
                 "fwd_ms", "bwd_ms", "total_ms", "fwd_gflops", "bwd_gflops", "bytes",
                 "intensity", "dtype"}, ...],           sorted by total_ms, largest first
     "kinds":  [{"kind", "layers", "madds", "madds_pct", "fwd_ms", "bwd_ms", "total_ms",
                 "time_pct", "gflops"}, ...]}

``kind`` is one of: ``conv-full`` (groups 1, k > 1: the stem, ``cn`` and ``er`` convs),
``conv-pointwise`` (1x1), ``conv-depthwise``, ``conv-grouped``, ``linear``, ``batchnorm``,
``activation``, ``squeeze-excite`` (its own pooling and scale), ``attention``, ``block`` (residual
adds and other work of a container), ``pool``, ``loss``, ``optimizer``, ``other``.  ``bwd_ms`` and
``bwd_gflops`` are null without ``--train``; ``gflops`` of a kind is 2 x MAdds / fwd time for
inference and 6 x MAdds / total time for training.  ``--csv FILE`` writes the ``layers`` list
with the same columns (shapes as ``1x16x112x112``).
"""
import argparse
import csv
import functools
import json
import os
import statistics
import sys
import time

import numpy as np

from ..count import _layer_madds

_ACTIVATIONS = ("ReLU", "ReLU6", "Hardsigmoid", "Hardswish", "GELU", "Identity")


def kind_of(m):
    """The category of a module's own work (see the module docstring)."""
    name = type(m).__name__
    if name == "Conv2d":
        if m.groups == 1:
            return "conv-pointwise" if m.kernel_size == (1, 1) else "conv-full"
        return "conv-depthwise" if m.groups == m.in_channels else "conv-grouped"
    return {"Linear": "linear", "BatchNorm2d": "batchnorm", "SqueezeExcite": "squeeze-excite",
            "GlobalAvgPool2d": "pool", "Flatten": "pool"}.get(
        name, "activation" if name in _ACTIVATIONS else "attention" if hasattr(m, "attention_madds")
        else "block" if m._children else "other")


def _madds(m, xs, ys):
    total = _layer_madds(m, xs, ys)
    return total + (int(m.attention_madds(xs)) if hasattr(m, "attention_madds") else 0)


class _Timer:
    """Wraps forward/backward of every module; records self times and shapes of each call."""

    def __init__(self, model, clock):
        self.model, self.clock, self.stack, self.times, self.shapes, self.dtypes = model, clock, [], {}, {}, {}
        self.names = {id(m): n or type(m).__name__ for n, m in model.named_modules()}
        for _, m in model.named_modules():
            for pass_ in ("forward", "backward"):
                object.__setattr__(m, pass_, self._wrap(m, pass_, getattr(m, pass_)))

    def _wrap(self, m, pass_, fn):
        key = (self.names[id(m)], pass_)

        @functools.wraps(fn)        # keeps fn's signature: Sequential asks it for ``input_grad``
        def timed(x, *rest, **kw):
            self.stack.append(0.0)
            t = self.clock()
            y = fn(x, *rest, **kw)
            dt = self.clock() - t
            inner = self.stack.pop()
            if self.stack:
                self.stack[-1] += dt
            self.times.setdefault(key, []).append(dt - inner)
            if pass_ == "forward" and isinstance(x, np.ndarray) and isinstance(y, np.ndarray):
                self.shapes[key[0]] = (x.shape, y.shape)
                self.dtypes[key[0]] = str(y.dtype)
            return y
        return timed

    def remove(self):
        for _, m in self.model.named_modules():
            for pass_ in ("forward", "backward"):
                m.__dict__.pop(pass_, None)


def profile(model, x, labels=None, train=False, repeats=3, clock="wall"):
    """Time every module of ``model`` on ``x``: returns (layers, kinds, total_seconds).

    ``train``: a full step (forward, cross-entropy with ``labels``, backward, SGD) per repeat.
    ``clock``: "wall" (``time.perf_counter``) or "cpu" (``time.process_time``: the CPU time of all
    the process's threads, which on a busy machine shows the work done rather than the waiting).
    The model's weights change under training steps; profile a model made for the purpose.
    """
    from ..ops.losses import CrossEntropyLoss
    from ..train.optim import SGD
    model.train(train)
    crit, opt = (CrossEntropyLoss(), SGD(model, lr=0.01, momentum=0.9)) if train else (None, None)
    now = {"wall": time.perf_counter, "cpu": time.process_time}[clock]
    timer, extra, walls = _Timer(model, now), {"loss": [], "optimizer": []}, []
    try:
        for r in range(repeats + 1):                   # the first step warms up and is dropped
            if r == 1:
                timer.times = {}
                extra = {"loss": [], "optimizer": []}
            t0 = now()
            logits = model.forward(x)
            if train:
                t1 = now()
                crit.forward(logits, labels)
                dlogits = crit.backward()
                t2 = now()
                model.backward(dlogits, input_grad=False)   # as in training: images need no gradient
                t3 = now()
                opt.step()
                extra["loss"].append(t2 - t1)
                extra["optimizer"].append(now() - t3)
            walls.append(now() - t0)
    finally:
        timer.remove()
    modules = dict((n or type(m).__name__, m) for n, m in model.named_modules())
    layers = []
    for name, m in modules.items():
        fwd = timer.times.get((name, "forward"))
        if fwd is None:
            continue
        bwd = timer.times.get((name, "backward"))
        xs, ys = timer.shapes.get(name, ((), ()))
        own_params = int(sum(p.size for p in m._params.values()))
        madds = _madds(m, xs, ys) if xs else 0
        layers.append(_row(name, type(m).__name__, kind_of(m), xs, ys, own_params, madds, fwd, bwd,
                           x.dtype.itemsize, timer.dtypes.get(name)))
    for name, ts in extra.items():
        if ts:
            layers.append(_row(name, name, name, (), (), 0, 0, [0.0], ts, x.dtype.itemsize, None))
    layers.sort(key=lambda r: -r["total_ms"])
    return layers, _kinds(layers, train), statistics.median(walls[1:])


def _row(name, op, kind, xs, ys, params, madds, fwd, bwd, itemsize, dtype):
    f = statistics.median(fwd)
    b = statistics.median(bwd) if bwd else None
    nbytes = itemsize * (int(np.prod(xs)) + int(np.prod(ys)) + params) if xs else 0
    return dict(name=name, op=op, kind=kind, input_shape=list(xs), output_shape=list(ys), params=params,
                madds=madds, fwd_ms=1e3 * f, bwd_ms=None if b is None else 1e3 * b,
                total_ms=1e3 * (f + (b or 0.0)),
                fwd_gflops=2 * madds / f / 1e9 if f > 0 and madds else None,
                bwd_gflops=4 * madds / b / 1e9 if b and madds else None,
                bytes=nbytes, intensity=2 * madds / nbytes if nbytes and madds else None, dtype=dtype)


def _kinds(layers, train):
    total_madds = sum(r["madds"] for r in layers) or 1
    total_ms = sum(r["total_ms"] for r in layers) or 1.0
    out = {}
    for r in layers:
        k = out.setdefault(r["kind"], dict(kind=r["kind"], layers=0, madds=0, fwd_ms=0.0, bwd_ms=0.0, total_ms=0.0))
        k["layers"] += 1
        k["madds"] += r["madds"]
        k["fwd_ms"] += r["fwd_ms"]
        k["bwd_ms"] += r["bwd_ms"] or 0.0
        k["total_ms"] += r["total_ms"]
    for k in out.values():
        k["madds_pct"] = 100.0 * k["madds"] / total_madds
        k["time_pct"] = 100.0 * k["total_ms"] / total_ms
        flops, ms = (6 * k["madds"], k["total_ms"]) if train else (2 * k["madds"], k["fwd_ms"])
        k["gflops"] = flops / ms / 1e6 if ms > 0 and k["madds"] else None
        if not train:
            k["bwd_ms"] = None
    return sorted(out.values(), key=lambda k: -k["total_ms"])


# ---- printing and files -----------------------------------------------------------------------
def _g(v, fmt):
    return "-" if v is None else format(v, fmt)


def format_profile(layers, kinds, total_s, top=30, train=False, clock="wall"):
    w = max([len(r["name"]) for r in layers[:top]] + [5])
    head = (f"{'layer':<{w}} {'kind':<15} {'output':<18} {'MAdds':>12} {'fwd ms':>8} {'fwd GF/s':>8}"
            + (f" {'bwd ms':>8} {'bwd GF/s':>8}" if train else "") + f" {'% time':>6}")
    total_ms = sum(r["total_ms"] for r in layers) or 1.0
    lines = [head, "-" * len(head)]
    for r in layers[:top]:
        out = "x".join(map(str, r["output_shape"]))
        lines.append(f"{r['name']:<{w}} {r['kind']:<15} {out:<18} {r['madds']:>12,} {r['fwd_ms']:>8.2f} "
                     f"{_g(r['fwd_gflops'], '8.1f')}"
                     + (f" {_g(r['bwd_ms'], '8.2f')} {_g(r['bwd_gflops'], '8.1f')}" if train else "")
                     + f" {100 * r['total_ms'] / total_ms:>6.1f}")
    if len(layers) > top:
        lines.append(f"... {len(layers) - top} more rows (--top N, or the JSON/CSV files)")
    lines.append("")
    kh = f"{'by kind':<15} {'layers':>6} {'% MAdds':>8} {'% time':>7} {'ms':>9} {'GFLOP/s':>8}"
    lines += [kh, "-" * len(kh)]
    for k in kinds:
        lines.append(f"{k['kind']:<15} {k['layers']:>6} {k['madds_pct']:>8.1f} {k['time_pct']:>7.1f} "
                     f"{k['total_ms']:>9.2f} {_g(k['gflops'], '8.1f')}")
    madds = sum(r["madds"] for r in layers)
    flops = 2 * madds * (3 if train else 1)
    lines.append(f"\nsum of rows {total_ms:.1f} ms; {clock} clock {1e3 * total_s:.1f} ms per "
                 f"{'training step' if train else 'forward'}; {madds:,} MAdds -> "
                 f"{flops / total_s / 1e9:.1f} GFLOP/s achieved")
    bad = sorted({r["name"] for r in layers if r["dtype"] not in (None, "float32")})
    if bad:
        lines.append(f"WARNING: float32 promoted to another dtype in: {', '.join(bad)}")
    return "\n".join(lines)


def write_csv(path, layers):
    cols = list(layers[0])
    with open(path, "w", newline="") as f:
        wr = csv.DictWriter(f, cols)
        wr.writeheader()
        for r in layers:
            wr.writerow({k: "x".join(map(str, v)) if isinstance(v, list) else v for k, v in r.items()})


def add_arguments(p):
    p.add_argument("model", help="model name, e.g. mobilenetv3_large_100")
    p.add_argument("--size", type=int, default=224, help="input height and width (default 224)")
    p.add_argument("--batch", type=int, default=16, help="batch size (default 16)")
    p.add_argument("--train", action="store_true", help="profile a training step (forward, loss, backward, SGD)")
    p.add_argument("--classes", type=int, default=1000, help="classifier outputs (default 1000)")
    p.add_argument("--small-input", action="store_true", help="stem and first strided block at stride 1")
    p.add_argument("--repeats", type=int, default=3, help="timed passes (median; default 3)")
    p.add_argument("--threads", type=int, default=2, help="threads (default 2)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="wall time, or the process's CPU time (all threads; steadier on a busy machine)")
    p.add_argument("--top", type=int, default=30, help="rows to print (default 30)")
    p.add_argument("--json", metavar="FILE", help="write the profile as JSON (format in the module docstring)")
    p.add_argument("--csv", metavar="FILE", help="write the per-layer rows as CSV")


def run(a):
    import numba

    from ..build import create_model
    from ..train.threads import set_threads
    for arg in ("size", "batch", "repeats", "classes", "top"):
        if getattr(a, arg) < 1:
            raise ValueError(f"--{arg} must be >= 1, got {getattr(a, arg)}")
    threads = set_threads(a.threads)
    model = create_model(a.model, num_classes=a.classes, small_input=a.small_input, seed=0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((a.batch, 3, a.size, a.size), dtype=np.float32)
    labels = rng.integers(0, a.classes, a.batch)
    load0 = os.getloadavg()[0]
    layers, kinds, total = profile(model, x, labels, a.train, a.repeats, a.clock)
    load1 = os.getloadavg()[0]
    print(f"{model.name} {'training step' if a.train else 'eval forward'} at {a.size}x{a.size}, batch {a.batch}, "
          f"float32, {threads} threads, {a.clock} clock, median of {a.repeats}; load average {load0:.1f} -> "
          f"{load1:.1f} "
          f"on {os.cpu_count()} CPUs\n")
    print(format_profile(layers, kinds, total, a.top, a.train, a.clock))
    meta = dict(model=model.name, size=a.size, batch=a.batch, train=a.train, threads=threads, clock=a.clock,
                repeats=a.repeats,
                dtype="float32", load_start=load0, load_end=load1, numpy=np.__version__, numba=numba.__version__,
                total_ms=1e3 * total, total_madds=sum(r["madds"] for r in layers))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(meta=meta, layers=layers, kinds=kinds), f, indent=1)
    if a.csv:
        write_csv(a.csv, layers)
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(prog="npmobilenet bench profile", description=__doc__.split("\n\n")[0])
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
