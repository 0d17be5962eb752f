"""Numba kernels, kept together so the fast path can be read beside the plain-NumPy one.

Every kernel is ``@njit(cache=True)`` so compilation happens once per machine, not per process.
Numba checks a cached kernel against its own file only: a kernel compiled with a helper from
another file (``phases.scatter``, the activations of ``bn_act``) keeps the old helper after that
file is edited.  When you change a kernel, clear the cache (``find npmobilenet -name '*.nb[ic]'
-delete``) before measuring or testing.
"""
