"""Whole-model benchmark: npmobilenet and PyTorch CPU side by side, on the same weights, in one run.

Run:  ``npmobilenet bench models [--models M ...] [--lines L ...] [--repeats R] [--threads T]
[--no-torch] [--no-memory] [--torch-passive] [--startup] [--json FILE]``

The lines (float32; T threads, default 2, for both engines):

    infer-b1     eval mode, 224x224, batch 1, 1000 classes: one forward pass
    infer-b16    eval mode, 224x224, batch 16
    train-b16    train mode, 224x224, batch 16, 1000 classes: one training step, i.e. forward,
                 cross-entropy, backward and an SGD update (lr 0.01, momentum 0.9)
    train-32     train mode, 32x32, batch 128, 10 classes (the training demo's image size)

How it is measured.  When torch and timm are importable, timm builds the same architecture and
our ``state_dict`` is loaded into it, so both engines hold the same weights; the first outputs are
compared (``max_rel_diff``: max |ours - torch| / max |torch|).  Each engine is warmed up (two
calls: JIT compilation, allocator, caches), then the two are timed ALTERNATELY, one call each,
R times (5 R for lines under 50 ms), swapping which goes first every round, so that a change of
load on a shared machine hits both alike; the figures are medians.  Inference runs under
``npmobilenet.no_grad()`` and ``torch.inference_mode()`` (nothing kept for a backward); the
training step uses our ``CrossEntropyLoss`` and ``SGD`` and PyTorch's ``F.cross_entropy`` and
``torch.optim.SGD``.

Columns: ms per batch and images/s per engine; ``ratio`` = npmobilenet time / PyTorch time (lower
is better); GFLOP/s achieved, from the core MAdds (``summary()``'s count, STYLE F1-F4): 2 x MAdds
per image for a forward pass, 3 x that for a training step (F4: backward ~ 2 x forward); ``cpu
ratio``, the ratio of the CPU time the process used (all its threads).  On a machine shared with
other work, wall time mostly measures waiting for a core, and threads that spin while they wait
count as CPU time: read both.

Memory, training lines (``--no-memory`` skips it), each the peak of one step above what was live
before it:

    tracemalloc   every NumPy array allocated during the step (npmobilenet; exact).  The fast
                  path reuses its output buffers from step to step (``kernels/buffers.py``);
                  the pool is emptied before each measurement, so the step allocates them
                  again and they count, and ``np_pool_mib`` is the pool's size before that
    rss           peak resident memory (VmHWM, reset via /proc/self/clear_refs) minus resident
                  memory before the step, after ``malloc_trim`` has returned freed heap pages to
                  the system: the same measure for both engines (Linux with glibc; else absent)
    predicted     ``summary()``'s activation memory (the arrays the layers keep for backward, at
                  batch 1) times the batch

PyTorch's threads are OpenMP's, which by default spin while they wait for each other.  On a
machine shared with other work that makes PyTorch on 2 threads erratic and often far slower than
on 1 (measured with 5-13 runnable processes on 2 cores: a batch-1 MobileNetV3-Large forward took
45 ms to 4 s from one run to the next, against 21 ms on 1 thread).  ``--torch-passive`` sets
``OMP_WAIT_POLICY=PASSIVE`` before torch loads, so its threads sleep instead (25 ms in that run):
use it to compare with PyTorch at its best on a busy machine, and say so.  npmobilenet's own
threads always sleep when idle (``kernels/threads.py``).

``--startup`` also times two fresh processes that import npmobilenet and run one training step
and one eval forward of each model at 64x64, batch 2: the first with an empty Numba cache (every
kernel JIT-compiled), the second reusing that cache.

``--json FILE`` writes ``{"meta": {...}, "rows": [...], "startup": {...}}``; each row has
``model, line, kind, size, batch, classes`` and, per engine ``e`` in (``np``, ``torch``):
``e_ms``, ``e_cpu_ms``, ``e_img_s``, ``e_gflops``, ``e_rss_mib``; plus ``ratio``, ``cpu_ratio``,
``madds_per_image``, ``np_tracemalloc_mib``, ``np_pool_mib``, ``predicted_mib``, ``max_rel_diff``
(absent: null).
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

from ..module import no_grad

MODELS = ("mobilenetv2_100", "mobilenetv3_large_100", "mobilenetv3_small_100", "mobilenetv4_conv_small")
LINES = {  # name: (kind, size, batch, classes)
    "infer-b1": ("infer", 224, 1, 1000),
    "infer-b16": ("infer", 224, 16, 1000),
    "train-b16": ("train", 224, 16, 1000),
    "train-32": ("train", 32, 128, 10),
}
TARGETS = {"infer-b1": 2.0, "infer-b16": 1.5, "train-b16": 1.0, "train-32": 1.0}  # max ratio np/torch
MiB = 2.0 ** 20


# ---- the two engines --------------------------------------------------------------------------
class Ours:
    """npmobilenet: one model in eval or train mode, with SGD and cross-entropy for a training step."""

    def __init__(self, name, kind, classes):
        from ..build import create_model
        from ..ops.losses import CrossEntropyLoss
        from ..train.optim import SGD
        self.model = create_model(name, num_classes=classes, seed=0)
        self.kind = kind
        if kind == "infer":
            self.model.eval()
        else:
            self.model.train()
            self.crit = CrossEntropyLoss()
            self.opt = SGD(self.model, lr=0.01, momentum=0.9)

    def run(self, x, labels):
        if self.kind == "infer":
            with no_grad():
                return self.model.forward(x)
        logits = self.model.forward(x)
        self.crit.forward(logits, labels)
        self.model.backward(self.crit.backward(), input_grad=False)   # as torch: the image needs no gradient
        self.opt.step()
        if logits.dtype != x.dtype:                    # every op must keep float32
            raise AssertionError(f"float32 promoted: logits {logits.dtype}")
        return logits


class Torch:
    """timm's model of the same name, holding our weights; torch.optim.SGD for a training step."""

    def __init__(self, torch, name, kind, classes, state):
        import timm
        self.torch, self.kind = torch, kind
        self.model = timm.create_model(name, pretrained=False, num_classes=classes)
        missing, unexpected = self.model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()},
                                                         strict=False)
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            raise RuntimeError(f"timm {name}: state_dict mismatch: missing {missing}, unexpected {unexpected}")
        if kind == "infer":
            self.model.eval()
        else:
            self.model.train()
            self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)

    def run(self, x, labels):
        torch = self.torch
        if self.kind == "infer":
            with torch.inference_mode():
                return self.model(x)
        self.opt.zero_grad(set_to_none=True)
        logits = self.model(x)
        torch.nn.functional.cross_entropy(logits, labels).backward()
        self.opt.step()
        return logits


# ---- timing and memory --------------------------------------------------------------------------
def time_alternating(fns, repeats, warmup=2):
    """Median (wall seconds, process CPU seconds) per call of each function, timed one call each
    in turn (order swapped every round) after ``warmup`` calls each."""
    for f in fns:
        for _ in range(warmup):
            f()
    walls, cpus = [[] for _ in fns], [[] for _ in fns]
    for r in range(repeats):
        order = range(len(fns)) if r % 2 == 0 else reversed(range(len(fns)))
        for i in order:
            c, t = time.process_time(), time.perf_counter()
            fns[i]()
            walls[i].append(time.perf_counter() - t)
            cpus[i].append(time.process_time() - c)
    return [statistics.median(t) for t in walls], [statistics.median(c) for c in cpus]


def _trim():
    """Return freed heap memory to the system (glibc), so the resident size is the live memory."""
    import gc
    gc.collect()
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(field)


def rss_peak_delta(fn):
    """Peak resident bytes above the resident size before ``fn()``, or None where unsupported."""
    try:
        _trim()
        before = _status_kib("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")                      # resets VmHWM (the peak) to the current VmRSS
        fn()
        return max(0, _status_kib("VmHWM") - before) * 1024
    except OSError:
        return None


def tracemalloc_peak(fn):
    """Peak bytes allocated through Python's allocators (NumPy's arrays included) during ``fn()``."""
    import tracemalloc
    _trim()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


# ---- one line -----------------------------------------------------------------------------------
def measure(name, line, torch, repeats, memory=True):
    """The row of one (model, line): times, ratio, GFLOP/s and memory of both engines."""
    from ..count import summary
    kind, size, batch, classes = LINES[line]
    ours = Ours(name, kind, classes)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 3, size, size), dtype=np.float32)
    labels = rng.integers(0, classes, batch)
    s = summary(ours.model, (3, size, size))
    madds = s.total_madds
    row = dict(model=name, line=line, kind=kind, size=size, batch=batch, classes=classes,
               madds_per_image=madds, predicted_mib=None, max_rel_diff=None)
    fns = [lambda: ours.run(x, labels)]
    if torch is not None:
        theirs = Torch(torch, name, kind, classes, ours.model.state_dict())
        xt, lt = torch.from_numpy(x), torch.from_numpy(labels)
        ref = theirs.model.eval()(xt[:2]).detach().numpy() if kind == "train" else theirs.run(xt[:2], lt).numpy()
        mine = ours.model.eval().forward(x[:2]) if kind == "train" else ours.run(x[:2], labels)
        theirs.model.train(kind == "train")
        ours.model.train(kind == "train")
        row["max_rel_diff"] = float(np.max(np.abs(mine - ref)) / max(1e-30, np.max(np.abs(ref))))
        fns.append(lambda: theirs.run(xt, lt))
    secs, cpus = time_alternating(fns, repeats)
    if max(secs) < 0.05:                       # fast lines: more samples, same alternation
        secs, cpus = time_alternating(fns, 5 * repeats, warmup=0)
    flops = 2 * madds * batch * (3 if kind == "train" else 1)
    pad = [None] * (2 - len(secs))
    for e, t, c in zip(("np", "torch"), secs + pad, cpus + pad):
        row[f"{e}_ms"] = None if t is None else 1e3 * t
        row[f"{e}_cpu_ms"] = None if c is None else 1e3 * c
        row[f"{e}_img_s"] = None if t is None else batch / t
        row[f"{e}_gflops"] = None if t is None else flops / t / 1e9
        row[f"{e}_rss_mib"] = None
    row["ratio"] = secs[0] / secs[1] if len(secs) == 2 else None
    row["cpu_ratio"] = cpus[0] / cpus[1] if len(cpus) == 2 and cpus[1] > 0 else None
    row["np_tracemalloc_mib"] = row["np_pool_mib"] = None
    if kind == "train" and memory:
        row["predicted_mib"] = s.total_activation_bytes * batch / MiB
        from ..kernels import buffers
        row["np_pool_mib"] = buffers.pooled_bytes() / MiB
        buffers.clear()             # so that the step allocates its buffers again, in view
        row["np_tracemalloc_mib"] = tracemalloc_peak(fns[0]) / MiB
        for e, f in zip(("np", "torch"), fns):
            if e == "np":
                buffers.clear()
            r = rss_peak_delta(f)
            row[f"{e}_rss_mib"] = None if r is None else r / MiB
    return row


# ---- start-up (JIT compile vs cache) --------------------------------------------------------------
_PROBE = """
import time, numpy as np
t0 = time.perf_counter()
from npmobilenet.bench.models import Ours
for name in {models!r}:
    m = Ours(name, "train", 10)
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64), dtype=np.float32)
    m.run(x, np.array([1, 2]))
    m.model.eval().forward(x)
print(time.perf_counter() - t0)
"""


def startup(models):
    """Wall seconds of a fresh process (import, build, first train step and eval forward of each
    model), with an empty Numba cache and then with the cache that run left."""
    import subprocess
    import tempfile
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        for run in ("cold", "warm"):
            t = time.perf_counter()
            p = subprocess.run([sys.executable, "-c", _PROBE.format(models=tuple(models))], env=env,
                               capture_output=True, text=True)
            if p.returncode:
                raise RuntimeError(f"start-up probe failed:\n{p.stderr[-2000:]}")
            out[f"{run}_s"] = time.perf_counter() - t
            out[f"{run}_in_python_s"] = float(p.stdout.split()[-1])
    return out


# ---- the table ------------------------------------------------------------------------------------
def _f(v, fmt):
    return "-" if v is None else format(v, fmt)


def format_table(rows):
    head = (f"{'model':<24} {'line':<10} {'np ms':>9} {'np img/s':>9} {'torch ms':>9} {'torch img/s':>11} "
            f"{'ratio':>6} {'target':>6} {'np GF/s':>8} {'tc GF/s':>8} {'cpu ratio':>9}")
    lines = [head, "-" * len(head)]
    for r in rows:
        t = TARGETS[r["line"]]
        ok = "" if r["ratio"] is None else (" ok" if r["ratio"] <= t else " NO")
        lines.append(f"{r['model']:<24} {r['line']:<10} {_f(r['np_ms'], '9.1f')} {_f(r['np_img_s'], '9.1f')} "
                     f"{_f(r['torch_ms'], '9.1f')} {_f(r['torch_img_s'], '11.1f')} {_f(r['ratio'], '6.2f')} "
                     f"{'<=' + format(t, 'g'):>6}{ok:3} {_f(r['np_gflops'], '7.1f')} {_f(r['torch_gflops'], '8.1f')} "
                     f"{_f(r['cpu_ratio'], '9.2f')}")
    mem = [r for r in rows if r["predicted_mib"] is not None]
    if mem:
        h = (f"\n{'training-step memory (MiB)':<35} {'np tracemalloc':>14} {'np rss':>8} {'torch rss':>9} "
             f"{'predicted act.':>14} {'np pool':>8}")
        lines += [h, "-" * (len(h) - 1)]
        for r in mem:
            lines.append(f"{r['model'] + ' ' + r['line']:<35} {_f(r['np_tracemalloc_mib'], '14.1f')} "
                         f"{_f(r['np_rss_mib'], '8.1f')} {_f(r['torch_rss_mib'], '9.1f')} "
                         f"{_f(r['predicted_mib'], '14.1f')} {_f(r.get('np_pool_mib'), '8.1f')}")
    return "\n".join(lines)


def add_arguments(p):
    p.add_argument("--models", nargs="+", default=list(MODELS), metavar="MODEL", help="models (default: the four)")
    p.add_argument("--lines", nargs="+", default=list(LINES), choices=list(LINES), metavar="LINE",
                   help=f"which lines: {', '.join(LINES)} (default: all)")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per engine (median; default 5)")
    p.add_argument("--threads", type=int, default=2, help="threads for both engines (default 2)")
    p.add_argument("--no-torch", action="store_true", help="time npmobilenet alone")
    p.add_argument("--no-memory", action="store_true", help="skip the memory measurements")
    p.add_argument("--torch-passive", action="store_true",
                   help="OMP_WAIT_POLICY=PASSIVE for PyTorch's threads (steadier on a busy machine)")
    p.add_argument("--startup", action="store_true", help="also time a fresh process, cold and warm JIT cache")
    p.add_argument("--json", metavar="FILE", help="write the table as JSON")


def run(a):
    from ..build import resolve
    from ..train.threads import set_threads
    if a.repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {a.repeats}")
    models = [resolve(m)[0] for m in a.models]
    threads = set_threads(a.threads)
    torch = None
    if not a.no_torch:
        if a.torch_passive:
            if "torch" in sys.modules:
                raise ValueError("--torch-passive: torch is already loaded; OpenMP reads the setting at load")
            os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        try:
            import timm  # noqa: F401
            import torch
            torch.set_num_threads(a.threads)
        except ImportError:
            print("torch/timm not importable: npmobilenet figures only")
    load0 = os.getloadavg()
    omp = os.environ.get("OMP_WAIT_POLICY")
    print(f"float32, {threads} threads, median of {a.repeats} alternating calls after 2 warm-up calls;"
          f" ratio = npmobilenet / PyTorch time (lower is better); load average {load0[0]:.1f}"
          + (f"; OMP_WAIT_POLICY={omp}" if omp and torch is not None else ""), flush=True)
    rows = []
    for name in models:
        for line in a.lines:
            rows.append(measure(name, line, torch, a.repeats, memory=not a.no_memory))
            r = rows[-1]
            print(f"  {name} {line}: np {_f(r['np_ms'], '.1f')} ms, torch {_f(r['torch_ms'], '.1f')} ms"
                  f" (ratio {_f(r['ratio'], '.2f')}, outputs differ by {_f(r['max_rel_diff'], '.1e')})", flush=True)
    load1 = os.getloadavg()
    print()
    print(format_table(rows))
    print(f"load average (1 min) {load0[0]:.1f} at the start, {load1[0]:.1f} at the end, on {os.cpu_count()} CPUs")
    result = dict(meta=dict(threads=threads, repeats=a.repeats, dtype="float32", load_start=load0,
                            omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"),
                            load_end=load1, cpus=os.cpu_count(), python=platform.python_version(),
                            numpy=np.__version__, torch=None if torch is None else torch.__version__,
                            machine=platform.machine()), rows=rows, startup=None)
    if a.startup:
        result["startup"] = st = startup(models)
        print(f"\nstart-up, {len(models)} model(s): empty Numba cache {st['cold_s']:.1f} s, "
              f"cached {st['warm_s']:.1f} s (targets < 30 s and < 3 s)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(prog="npmobilenet bench models", description=__doc__.split("\n\n")[0])
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
