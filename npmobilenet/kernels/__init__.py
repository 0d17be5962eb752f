"""Numba kernels, kept together so the fast path can be read beside the plain-NumPy one.

Every kernel is ``@njit(cache=True)`` so compilation happens once per machine, not per process.
"""
