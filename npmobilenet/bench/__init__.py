"""Benchmarks: layer timings (``layers``), each comparing the fast path, the plain-NumPy path and
PyTorch on the same arrays in one process."""
