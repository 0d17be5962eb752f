"""Layer benchmark: forward and backward times of MobileNet-shaped layers, three ways.

For each layer it times, on the same float32 arrays in one process: the fast path (Numba kernels
and BLAS), the plain-NumPy reference path, and ``torch.nn.functional`` when torch is importable,
and prints the ratios.  For the depthwise layers it also times the naive baseline that a Python
loop over channels gives (one NumPy im2col + matmul per channel), the slow pattern this library
avoids.  Times are medians of repeated runs after warm-up, with 2 threads everywhere.

For the layers whose output has the input's shape (the stride-1 depthwise conv, BN, hard-swish)
it also times one NumPy pass over the same amount of data, the row ``numpy copy / add``: forward
``np.copyto(y, x)`` (read x, write y), backward ``np.add(x, dy, out=dx)`` (read two arrays, write
one), each on the same threads as the layers.  Such a layer does only a few multiply-adds per
value it moves, so this row is a yardstick for how far its time could still fall: a layer that
must read and write these arrays cannot be much faster than one pass that does only that.

Run:  ``python -m npmobilenet.bench.layers [--quick] [--repeats R] [--threads T]``

Targets checked at the end: depthwise fast forward and backward faster than torch and >= 20x
faster than the per-channel loop; pointwise within 1.25x of torch; stem within 3x of torch; BN
(training) and hard-swish within 1.5x of torch.
"""
import os
import sys

if "numpy" not in sys.modules:   # BLAS reads its thread count once, when numpy loads
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(_var, "2")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from ..ops import backend, conv  # noqa: E402


_clock = time.perf_counter
_min_seconds = 0.3
STREAM = "numpy copy / add"      # the row of one NumPy pass over the same data (module docstring)


def _median_time(fn, repeats):
    fn()                                         # warm-up (JIT compile, caches, allocator)
    fn()
    times = []
    while len(times) < repeats or (sum(times) < _min_seconds and len(times) < 10 * repeats):
        t = _clock()
        fn()
        times.append(_clock() - t)
    return statistics.median(times)


def _per_channel_depthwise(x, w, stride, padding):
    """The slow baseline: depthwise as a Python loop over channels, one NumPy im2col conv each."""
    C = x.shape[1]
    ys, caches = zip(*[conv.conv2d_forward(x[:, c:c + 1], w[c:c + 1], None, stride, padding)
                       for c in range(C)])
    return np.concatenate(ys, axis=1), caches


def _per_channel_depthwise_backward(dy, caches):
    grads = [conv.conv2d_backward(dy[:, c:c + 1], cache) for c, cache in enumerate(caches)]
    return np.concatenate([g[0] for g in grads], axis=1), np.concatenate([g[1] for g in grads])


def _conv_arrays(x_shape, out_ch, k, stride, groups):
    """Random float32 input, weights and upstream gradient for one conv layer."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape, dtype=np.float32)
    w = rng.standard_normal((out_ch, x_shape[1] // groups, k, k), dtype=np.float32) * 0.1
    y, _ = conv.conv2d_forward(x, w, None, stride, None, groups)
    return x, w, rng.standard_normal(y.shape, dtype=np.float32)


def _time_conv(x, w, dy, stride, groups, repeats, torch, with_per_channel):
    """{path: (forward seconds, backward seconds)} for one conv layer."""
    pad = w.shape[2] // 2
    out = {}

    def ours():
        fwd = _median_time(lambda: conv.conv2d_forward(x, w, None, stride, pad, groups), repeats)
        _, cache = conv.conv2d_forward(x, w, None, stride, pad, groups)
        bwd = _median_time(lambda: conv.conv2d_backward(dy, cache), repeats)
        return fwd, bwd

    out["fast"] = ours()
    with backend.plain():
        out["plain"] = ours()
        if with_per_channel:
            fwd = _median_time(lambda: _per_channel_depthwise(x, w, stride, pad), max(1, repeats // 3))
            _, caches = _per_channel_depthwise(x, w, stride, pad)
            bwd = _median_time(lambda: _per_channel_depthwise_backward(dy, caches), max(1, repeats // 3))
            out["per-channel numpy"] = (fwd, bwd)
    if torch is not None:
        F = torch.nn.functional
        xt = torch.from_numpy(x).requires_grad_(True)
        wt = torch.from_numpy(w).requires_grad_(True)
        dyt = torch.from_numpy(dy)
        fwd = _median_time(lambda: F.conv2d(xt, wt, None, stride, pad, 1, groups), repeats)
        yt = F.conv2d(xt, wt, None, stride, pad, 1, groups)
        bwd = _median_time(lambda: torch.autograd.grad(yt, (xt, wt), dyt, retain_graph=True), repeats)
        out["torch"] = (fwd, bwd)
        y_fast, _ = conv.conv2d_forward(x, w, None, stride, pad, groups)
        err = float(np.max(np.abs(y_fast - yt.detach().numpy())) / max(1e-30, np.max(np.abs(y_fast))))
        if err > 1e-4:
            print(f"  warning: fast forward differs from torch by {err:.1e} (relative to max|y|)")
    return out


def _time_stream(x, repeats):
    """(forward, backward) seconds of the ``numpy copy / add`` row (module docstring): one NumPy
    pass that reads and writes as many values as a same-shape layer's forward and backward, split
    into as many contiguous pieces as there are threads, one piece per thread (NumPy releases the
    GIL in both), as the layers' own kernels are split."""
    from ..kernels.threads import num_threads, run_parts
    k = num_threads()
    a, b, out = (np.array_split(v.reshape(-1), k) for v in (x, np.ones_like(x), np.empty_like(x)))
    return (_median_time(lambda: run_parts(lambda t: np.copyto(out[t], a[t]), k), repeats),
            _median_time(lambda: run_parts(lambda t: np.add(a[t], b[t], out=out[t]), k), repeats))


def _time_module(make, make_torch, x, dy, repeats, torch):
    """BN / activation timings through their modules (fast, plain) and torch."""
    out = {}
    for impl, ctx in (("fast", None), ("plain", backend.plain)):
        m = make()
        with (ctx() if ctx else _Null()):
            fwd = _median_time(lambda: m.forward(x), repeats)
            m.forward(x)
            bwd = _median_time(lambda: m.backward(dy), repeats)
        out[impl] = (fwd, bwd)
    if torch is not None:
        xt = torch.from_numpy(x).requires_grad_(True)
        fn, params = make_torch(torch)
        dyt = torch.from_numpy(dy)
        fwd = _median_time(lambda: fn(xt), repeats)
        yt = fn(xt)
        bwd = _median_time(lambda: torch.autograd.grad(yt, (xt,) + params, dyt, retain_graph=True), repeats)
        out["torch"] = (fwd, bwd)
    return out


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def _print_rows(name, res):
    t = res.get("torch")
    for impl, (f, b) in res.items():
        ratio = f"{f / t[0]:7.2f}x {b / t[1]:7.2f}x" if t else ""
        print(f"{name:<34} {impl:<18} {f * 1e3:10.2f} {b * 1e3:10.2f}   {ratio}")


def main(argv=None):
    p = argparse.ArgumentParser(prog="npmobilenet bench layers", description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=7, help="timed runs per measurement (median)")
    p.add_argument("--threads", type=int, default=2, help="threads for Numba, BLAS and torch")
    p.add_argument("--quick", action="store_true", help="batch 4 instead of 16 (a smoke run)")
    p.add_argument("--no-torch", action="store_true", help="skip the torch comparison")
    p.add_argument("--only", default="", help="time only the layers whose name contains this text")
    p.add_argument("--min-time", type=float, default=0.3,
                   help="keep repeating (up to 10x --repeats) until this many seconds are timed")
    p.add_argument("--timer", choices=("wall", "cpu"), default="wall",
                   help="wall clock (default), or this process's CPU time: steadier on a busy machine, "
                        "comparable across paths only with --threads 1")
    a = p.parse_args(argv)
    global _clock, _min_seconds
    _clock = time.process_time if a.timer == "cpu" else time.perf_counter
    _min_seconds = a.min_time
    from ..kernels.threads import set_num_threads
    set_num_threads(a.threads)
    torch = None
    if not a.no_torch:
        try:
            import torch
            torch.set_num_threads(a.threads)
        except ImportError:
            print("torch is not importable: timing the fast and plain paths only")
    n = 4 if a.quick else 16
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"float32, batch {n}, {a.threads} threads, {a.timer} time, median of >= {a.repeats} runs after"
          f" warm-up; ratios are time / torch time (lower is better); load average {load:.1f}"
          f" on {os.cpu_count()} CPUs")
    print(f"{'layer':<34} {'path':<18} {'fwd ms':>10} {'bwd ms':>10}   {'fwd/torch':>8} {'bwd/torch':>8}")
    cases = [("stem 3x3/s2 3->16 @224", (n, 3, 224, 224), 16, 3, 2, 1, False),
             ("dw 3x3/s1 72 @56", (n, 72, 56, 56), 72, 3, 1, 72, True),
             ("dw 5x5/s2 672 @14", (n, 672, 14, 14), 672, 5, 2, 672, True),
             ("pw 1x1 240->80 @28", (n, 240, 28, 28), 80, 1, 1, 1, False)]
    results = {}
    for name, shape, out_ch, k, s, g, per_channel in cases:
        if a.only not in name:
            continue
        x, w, dy = _conv_arrays(shape, out_ch, k, s, g)
        results[name] = _time_conv(x, w, dy, s, g, a.repeats, torch, per_channel)
        if s == 1 and g > 1:                     # output shaped like the input: the stream row
            results[name][STREAM] = _time_stream(x, a.repeats)
        _print_rows(name, results[name])
    x = np.random.default_rng(1).standard_normal((n, 240, 28, 28), dtype=np.float32)
    dy = np.random.default_rng(2).standard_normal(x.shape, dtype=np.float32)
    try:
        from ..ops.activations import Hardswish
        from ..ops.batchnorm import BatchNorm2d
    except ImportError as e:
        print(f"(BN and hardswish skipped: {e})")
    else:                        # the same 16x240x28x28 activation an expanded V3 block carries
        def torch_bn(t):
            wt, bt = t.ones(240, requires_grad=True), t.zeros(240, requires_grad=True)
            return (lambda xt: t.nn.functional.batch_norm(xt, t.zeros(240), t.ones(240), wt, bt,
                                                          training=True)), (wt, bt)

        for name, make, mt in (("bn 240 @28 (train)", lambda: BatchNorm2d(240), torch_bn),
                               ("hardswish 240 @28", Hardswish,
                                lambda t: (t.nn.functional.hardswish, ()))):
            if a.only not in name:
                continue
            results[name] = _time_module(make, mt, x, dy, a.repeats, torch)
            results[name][STREAM] = _time_stream(x, a.repeats)
            _print_rows(name, results[name])
    _report_targets(results)
    return 0


def _report_targets(results):
    """Print each of the benchmark's targets as met / NOT met; returns the (what, ok, detail) list."""
    print("\ntargets:")
    checks = []
    for name in ("dw 3x3/s1 72 @56", "dw 5x5/s2 672 @14"):
        if name not in results:
            continue
        r = results[name]
        for i, pas in enumerate(("forward", "backward")):
            if "torch" in r:
                checks.append((f"{name} {pas}: fast < torch", r["fast"][i] < r["torch"][i],
                               f"{r['fast'][i] / r['torch'][i]:.2f}x torch"))
            sp = r["per-channel numpy"][i] / r["fast"][i]
            stream = (f"; {STREAM} {r[STREAM][i] * 1e3:.2f} ms against fast {r['fast'][i] * 1e3:.2f} ms"
                      if STREAM in r else "")
            checks.append((f"{name} {pas}: >= 20x per-channel numpy", sp >= 20, f"{sp:.1f}x faster{stream}"))
    for name, limit in (("pw 1x1 240->80 @28", 1.25), ("stem 3x3/s2 3->16 @224", 3.0),
                        ("bn 240 @28 (train)", 1.5), ("hardswish 240 @28", 1.5)):
        r = results.get(name, {})
        if "torch" in r:
            for i, pas in enumerate(("forward", "backward")):
                ratio = r["fast"][i] / r["torch"][i]
                checks.append((f"{name} {pas}: within {limit}x torch", ratio <= limit, f"{ratio:.2f}x torch"))
    for what, ok, detail in checks:
        print(f"  [{'met' if ok else 'NOT met'}] {what} ({detail})")
    return checks


if __name__ == "__main__":
    sys.exit(main())
