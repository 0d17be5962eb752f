"""Run work on several threads: Numba kernels over ranges of image planes, and BLAS products.

The Numba kernels are compiled ``nogil=True`` and take a ``[start, stop)`` range of planes, and
NumPy's ``matmul`` releases the GIL inside the BLAS, so plain Python threads run both truly in
parallel.  This costs no compile time, where a ``prange`` loop (``parallel=True``) adds seconds
of compilation per kernel and dtype for the same speed-up on a few cores.

**One pool for everything, and a single-threaded BLAS.**  OpenBLAS has threads of its own, and
after each product they spin, waiting for the next one, for up to ~0.1 s: on a 2-core machine
they then compete with the Numba kernels that follow for the same cores.  On a machine shared
with other processes it is far worse: measured with 13 runnable processes on 2 cores, a 1x1 conv
(16x960x7x7 -> 160) took 230 ms with OpenBLAS on 2 threads and 3 ms on 1.  So the BLAS is set to
one thread (``blas_single_thread``) and ``matmul`` splits a product over this pool instead, by
images or by output rows, like every other kernel.  Idle pool threads sleep; they never spin.

**The caller works too, and the parts are dealt out on demand.**  ``run_parts`` cuts the work in
a few parts per thread; the calling thread and the pool threads take the next part from a shared
counter until none is left.  A thread that gets no core (a busy machine) takes fewer parts instead
of holding the others up, and if no pool thread gets to run at all the caller does every part
itself: it then waits only for parts already started, never for a thread to be scheduled.
Every part writes its own slice of the output, so results do not depend on the thread count.

The thread count is this module's: ``set_num_threads(n)``, or at start the environment's
``NPMOBILENET_NUM_THREADS`` (default: ``NUMBA_NUM_THREADS``, which defaults to the core count).
It is deliberately not ``numba.set_num_threads``: that call starts Numba's own OpenMP thread pool,
which loads the system ``libgomp`` -- and a PyTorch in the same process then binds to that
library (same soname) instead of its own, with whatever OpenMP settings were in force at the time.

Work below ``MIN_PARALLEL_WORK`` values (``MIN_PARALLEL_MADDS`` for a product) runs on the
calling thread alone: handing it out costs more than it saves (waking a thread, and the GIL
between the parts), and a parallel depthwise kernel on tiny tensors was measured 30x slower than
serial on a busy machine.  Measured on a loaded 2-core machine, a MobileNetV4-Conv-Small forward
at batch 1 took 37 ms on 2 threads with a threshold of 64 Ki values, 33 ms with 256 Ki and 32 ms
with 1 Mi (32 ms on 1 thread); a quiet machine favours the lower ones, hence 256 Ki.
"""
import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

MIN_PARALLEL_WORK = 1 << 18   # values touched (~0.1 ms of memory traffic); below this, one thread
_pool = None
_blas_done = False


_threads = None


def num_threads():
    """Threads the fast path uses (the calling thread included)."""
    global _threads
    if _threads is None:
        _threads = max(1, int(os.environ.get("NPMOBILENET_NUM_THREADS", numba.config.NUMBA_NUM_THREADS)))
    return _threads


def set_num_threads(n):
    """Use ``n`` threads from now on (the calling thread and n - 1 pool threads); returns n."""
    global _threads
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"set_num_threads: n must be a positive int, got {n!r}")
    _threads = int(n)
    blas_single_thread()
    return _threads


def blas_single_thread():
    """Limit NumPy's BLAS to one thread (once per process; see the module docstring for why)."""
    global _blas_done
    if not _blas_done:
        from ..train.threads import set_blas_threads
        set_blas_threads(1)
        _blas_done = True


class _Job:
    """Parts 0 .. parts-1 of one call, handed out by a shared counter (``next`` is atomic under the GIL)."""

    def __init__(self, fn, parts):
        self.fn, self.parts, self.counter = fn, parts, itertools.count()
        self.left, self.lock, self.done, self.error = parts, threading.Lock(), threading.Event(), None

    def work(self):
        for t in self.counter:
            if t >= self.parts:
                return
            try:
                self.fn(t)
            except BaseException as e:      # re-raised in the calling thread
                self.error = e
            with self.lock:
                self.left -= 1
                if self.left == 0:
                    self.done.set()


def run_parts(fn, parts, threads=None):
    """Call ``fn(t)`` for t in range(parts) on up to ``threads`` threads, the caller included."""
    global _pool
    threads = min(parts, num_threads() if threads is None else threads)
    if threads <= 1:
        for t in range(parts):
            fn(t)
        return
    blas_single_thread()
    if _pool is None or _pool._max_workers < threads - 1:
        _pool = ThreadPoolExecutor(max_workers=threads - 1, thread_name_prefix="npmobilenet")
    job = _Job(fn, parts)
    for _ in range(threads - 1):
        _pool.submit(job.work)
    job.work()
    job.done.wait()
    if job.error is not None:
        raise job.error


def run_chunks(kernel, total, *args, work=None):
    """Call ``kernel(*args, start, stop)`` over contiguous parts of range(total), in parallel.

    Four parts per thread.  ``work`` (values touched) below ``MIN_PARALLEL_WORK`` runs on the
    calling thread alone.
    """
    threads = num_threads() if work is None or work >= MIN_PARALLEL_WORK else 1
    parts = max(1, min(total, 4 * threads if threads > 1 else 1))
    if parts == 1:
        kernel(*args, 0, total)
        return
    bounds = [total * t // parts for t in range(parts + 1)]
    run_parts(lambda t: kernel(*args, bounds[t], bounds[t + 1]), parts, threads)


MIN_PARALLEL_MADDS = 1 << 23  # multiply-adds; a smaller product (~0.1 ms) runs as one BLAS call
MATMUL_PARTS = 8


def matmul(a, b, out, epilogue=None):
    """``np.matmul(a, b, out=out)`` split over the threads; returns ``out``.

    Parts are slices of the leading (batch) axis of ``b`` and ``out`` when it has at least two
    entries, else slices of the output rows (axis -2 of ``a`` and ``out``).  ``a`` must not have
    more dimensions than ``b`` (a weight matrix, or a stack of them, broadcast over a batch).
    The parts depend only on the shapes, never on the thread count, so neither do the results.
    ``epilogue(lo, hi)``, if given, is called on ``out[lo:hi]`` right after that batch slice's
    product, by the same thread, while the slice is still in cache (once on the whole batch
    when the product is not split by batch).
    """
    if out.size * a.shape[-1] < MIN_PARALLEL_MADDS:
        np.matmul(a, b, out=out)
        if epilogue is not None:
            epilogue(0, out.shape[0])
        return out
    if b.ndim >= 3 and b.shape[0] >= 2:
        n = b.shape[0]
        parts = min(n, MATMUL_PARTS)
        bounds = [n * t // parts for t in range(parts + 1)]

        def part(t):
            np.matmul(a, b[bounds[t]:bounds[t + 1]], out=out[bounds[t]:bounds[t + 1]])
            if epilogue is not None:
                epilogue(bounds[t], bounds[t + 1])
        run_parts(part, parts)
        return out
    rows = a.shape[-2]
    parts = min(max(1, rows // 32), MATMUL_PARTS)
    bounds = [rows * t // parts for t in range(parts + 1)]
    run_parts(lambda t: np.matmul(a[..., bounds[t]:bounds[t + 1], :], b,
                                  out=out[..., bounds[t]:bounds[t + 1], :]), parts)
    if epilogue is not None:
        epilogue(0, out.shape[0])
    return out
