"""Argument checks shared by the ops' pure functions, so every error names who, what and why.

``who`` is the name of the caller, or a function returning it: a layer passes its bound
``_label``, so that its name (a formatted string, a few microseconds for every call of every layer)
is made only when there is an error to report.
"""
import numpy as np


def name(who):
    """``who``, or ``who()`` when it is a function."""
    return who() if callable(who) else who


def float_array(who, arg, a):
    """``a`` must be a float32/float64 ndarray; returns it."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name(who)}: {arg} must be a numpy.ndarray, got {type(a).__name__}")
    if a.dtype.kind != "f":                 # np.issubdtype(a.dtype, np.floating), 10x cheaper
        raise TypeError(f"{name(who)}: {arg} has dtype {a.dtype}; expected float32 or float64")
    return a


def same_dtype(who, arg, a, dtype, what="x"):
    """``a`` (e.g. a parameter) must have the dtype of ``what`` (usually the input x)."""
    if a.dtype != dtype:
        raise TypeError(f"{name(who)}: {arg} has dtype {a.dtype} but {what} has dtype {np.dtype(dtype)};"
                        f" expected the same dtype")


def vector(who, arg, a, n, dtype):
    """``a`` must be a ``dtype`` array of shape (n,) (a per-channel parameter or statistic)."""
    if not isinstance(a, np.ndarray) or a.shape != (n,) or a.dtype != dtype:
        got = f"{a.dtype} array of shape {a.shape}" if isinstance(a, np.ndarray) else type(a).__name__
        raise ValueError(f"{name(who)}: {arg} must be a {np.dtype(dtype)} array of shape ({n},), got {got}")
    return a


def upstream(who, dy, shape, dtype):
    """The upstream gradient must match the forward output: same shape, same dtype."""
    if not isinstance(dy, np.ndarray) or dy.shape != tuple(shape) or dy.dtype != dtype:
        got = f"{dy.dtype} array of shape {dy.shape}" if isinstance(dy, np.ndarray) else type(dy).__name__
        raise ValueError(f"{name(who)}: dy must be a {np.dtype(dtype)} array of shape {tuple(shape)}"
                         f" (the forward output's), got {got}")
    return dy
