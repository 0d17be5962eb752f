"""Set the number of CPU threads for the whole computation: Numba kernels and the BLAS.

The convolutions run as Numba kernels and BLAS matrix products, both split over npmobilenet's
own thread pool (``npmobilenet.kernels.threads``), with the BLAS itself on one thread.  NumPy's
BLAS (OpenBLAS in the wheels) reads ``OPENBLAS_NUM_THREADS`` once, when NumPy is imported; to
change it later this module calls OpenBLAS's own ``*_set_num_threads`` function, found through
``ctypes`` in the library NumPy loaded (threadpoolctl does the same, and is used when it is
installed).  Thread counts never change results: every kernel writes each output element from
one thread, and the products are split by shape, not by thread count.
"""
from __future__ import annotations

import ctypes
import os

_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
            "openblas_set_num_threads64_", "openblas_set_num_threads")


def _loaded_openblas():
    """Paths of the OpenBLAS libraries mapped into this process (Linux), else []."""
    try:
        with open("/proc/self/maps") as f:
            return sorted({line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line})
    except OSError:
        return []


def set_blas_threads(n):
    """Limit NumPy's BLAS to ``n`` threads; returns True if it could be done."""
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(limits=n, user_api="blas")
        return True
    except ImportError:
        pass
    done = False
    for path in _loaded_openblas():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _SETTERS:
            fn = getattr(lib, name, None)
            if fn is not None:
                fn(ctypes.c_int(n))
                done = True
                break
    return done


def set_threads(n):
    """Use ``n`` threads for the computation: the Numba kernels and the matrix products.

    The products are split over npmobilenet's own threads, with the BLAS itself on one thread
    (``npmobilenet.kernels.threads`` says why).  Returns the thread count in effect.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"--threads must be a positive int, got {n!r}")
    from ..kernels.threads import set_num_threads

    n = set_num_threads(n)
    os.environ["OMP_NUM_THREADS"] = str(n)   # for any library loaded from here on
    return n
