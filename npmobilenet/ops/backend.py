"""Which path the ops take: the fast one (Numba kernels, BLAS) or the plain-NumPy reference.

Both paths compute the same function; the tests prove they agree to float rounding.  The plain
path is the one the lessons read; switch to it for a whole block of code with::

    with npmobilenet.ops.backend.plain():
        y = model(x)
"""
from contextlib import contextmanager

_fast = True


def fast():
    """True when the ops should take their fast (Numba) path."""
    return _fast


@contextmanager
def plain():
    """Run the enclosed code on the plain-NumPy reference path."""
    global _fast
    old, _fast = _fast, False
    try:
        yield
    finally:
        _fast = old
