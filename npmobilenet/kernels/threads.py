"""Run a Numba kernel over a range of image planes on several threads.

The kernels are compiled ``nogil=True`` and take a ``[start, stop)`` range of planes, so plain
Python threads run them truly in parallel.  This costs no compile time, where a ``prange`` loop
(``parallel=True``) adds seconds of compilation per kernel and dtype for the same speed-up on a
few cores.  The thread count is Numba's (``numba.set_num_threads`` / ``NUMBA_NUM_THREADS``).
Every plane is written by exactly one thread, so the result never depends on the thread count.
"""
from concurrent.futures import ThreadPoolExecutor

import numba

_pool = None


def num_threads():
    return numba.get_num_threads()


MIN_PARALLEL_WORK = 1 << 16   # below this many values touched, handing work to threads costs more


def run_chunks(kernel, total, *args, work=None):
    """Call ``kernel(*args, start, stop)`` over contiguous parts of range(total), in parallel.

    A few parts per thread, taken from a queue, so a thread that gets less CPU (a busy machine)
    does fewer parts instead of holding everyone up.  ``work`` (values touched) below
    ``MIN_PARALLEL_WORK`` runs on the calling thread alone.
    """
    global _pool
    threads = num_threads() if work is None or work >= MIN_PARALLEL_WORK else 1
    parts = max(1, min(total, 4 * threads if threads > 1 else 1))
    bounds = [total * t // parts for t in range(parts + 1)]
    if parts == 1:
        kernel(*args, 0, total)
        return
    if _pool is None or _pool._max_workers != threads:
        _pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="npmobilenet")
    for f in [_pool.submit(kernel, *args, bounds[t], bounds[t + 1]) for t in range(parts)]:
        f.result()
