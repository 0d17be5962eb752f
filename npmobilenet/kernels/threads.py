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

**Handing out a call costs a few microseconds.**  Each pool thread waits on a queue of its own;
``run_parts`` puts the call's job in each queue, works on it, and then waits on a bare lock that
the thread finishing the last part releases.  A ``concurrent.futures.ThreadPoolExecutor`` did
this before, and its ``submit`` (a future, a work item and the executor's bookkeeping per call)
took 22 us of the caller's time on a 2-core VM, against 3 us for a ``queue.SimpleQueue.put``; a
``threading.Event``, set by the last part, took 14 us to set.  Traced on a 16x84x14x14 5x5
stride-2 depthwise forward in 8 parts (about 150 us of work), the caller now starts its first
part 5-11 us after the call instead of 15-25, and the pool thread 16-20 us instead of 30-33.
Measured with the two pools in one process, calls alternated, medians of 41, three runs:
16x672x14x14 5x5 stride 2 5-9% less time (0.61-0.65 against 0.64-0.70 ms), 16x84x14x14 17-18%,
16x72x56x56 3x3 stride 1 4-7%, 1x72x56x56 24-28%; whole forward passes and training steps 1-8%
(MobileNetV2 at batch 1: 13.2 against 14.3 ms).  Waking a sleeping thread still takes 10-20 us
here (at the start of a call, and for the caller at its end), which spinning would save; the
threads sleep anyway, so as not to take a core from other work on a shared machine.

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
import queue
import threading

import numba
import numpy as np

MIN_PARALLEL_WORK = 1 << 18   # values touched (~0.1 ms of memory traffic); below this, one thread
_queues = []                  # one job queue per pool thread
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
    """Parts 0 .. parts-1 of one call, handed out by a shared counter.

    ``next`` on an ``itertools.count`` is one C call, so atomic under the GIL: it deals the parts
    out, and a second count numbers the parts as they finish, so the thread that finishes the
    last one knows it and releases ``done``, a bare lock the caller waits on."""

    def __init__(self, fn, parts):
        self.fn, self.parts, self.error = fn, parts, None
        self.counter, self.finished = itertools.count(), itertools.count(1)
        self.done = threading.Lock()
        self.done.acquire()

    def work(self):
        for t in self.counter:
            if t >= self.parts:
                return
            try:
                self.fn(t)
            except BaseException as e:      # re-raised in the calling thread
                self.error = e
            if next(self.finished) == self.parts:
                self.done.release()


def _worker(jobs):
    """A pool thread: run the jobs put in its queue, for good (daemon: it ends with the process).
    A job that finished before the thread got to it has no parts left, and costs nothing."""
    while True:
        jobs.get().work()


if hasattr(os, "register_at_fork"):     # a forked child has none of the parent's threads: start anew
    os.register_at_fork(after_in_child=_queues.clear)


def run_parts(fn, parts, threads=None):
    """Call ``fn(t)`` for t in range(parts) on up to ``threads`` threads, the caller included."""
    threads = min(parts, num_threads() if threads is None else threads)
    if threads <= 1:
        for t in range(parts):
            fn(t)
        return
    blas_single_thread()
    while len(_queues) < threads - 1:
        q = queue.SimpleQueue()
        threading.Thread(target=_worker, args=(q,), daemon=True, name=f"npmobilenet-{len(_queues)}").start()
        _queues.append(q)
    job = _Job(fn, parts)
    for q in _queues[:threads - 1]:
        q.put(job)
    job.work()
    job.done.acquire()
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
SMALL_B_BYTES = 1 << 20       # a b this small is split by output rows even when they are few


def matmul(a, b, out, epilogue=None):
    """``np.matmul(a, b, out=out)`` split over the threads; returns ``out``.

    Parts are slices of the leading (batch) axis of ``b`` and ``out`` when it has at least two
    entries, else slices of the output's rows (axis -2 of ``a`` and ``out``), or of its columns
    (axis -1 of ``b`` and ``out``) when it has fewer rows than columns and ``b`` is large.  ``a``
    must not have more dimensions than ``b`` (a weight matrix, or a stack of them, broadcast over
    a batch).
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
    rows, cols = out.shape[-2:]
    if rows >= cols or b.nbytes <= SMALL_B_BYTES:
        parts = min(max(1, rows // 32), MATMUL_PARTS)
        bounds = [rows * t // parts for t in range(parts + 1)]
        run_parts(lambda t: np.matmul(a[..., bounds[t]:bounds[t + 1], :], b,
                                      out=out[..., bounds[t]:bounds[t + 1], :]), parts)
    else:
        # Wider than tall, with a large b, as a batch of pooled vectors times a weight matrix (the
        # head, the classifier): each part reads its own columns of b, where a split of the few
        # rows would read all of b in every part.  (A small b costs little to read again, and
        # rows keep each part's output in one piece: for a weight gradient (1000 x 16) @
        # (16 x 1280), 0.31-0.37 ms by rows against 0.77 by columns.)  A power of two parts, so
        # that they share out evenly.
        parts = min(MATMUL_PARTS, 1 << max(0, (cols // 128).bit_length() - 1))
        bounds = [cols * t // parts for t in range(parts + 1)]
        run_parts(lambda t: np.matmul(a, b[..., bounds[t]:bounds[t + 1]],
                                      out=out[..., bounds[t]:bounds[t + 1]]), parts)
    if epilogue is not None:
        epilogue(0, out.shape[0])
    return out
