"""Argument checks shared by the ops' pure functions, so every error names who, what and why."""
import numpy as np


def float_array(who, arg, a):
    """``a`` must be a float32/float64 ndarray; returns it."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{who}: {arg} must be a numpy.ndarray, got {type(a).__name__}")
    if not np.issubdtype(a.dtype, np.floating):
        raise TypeError(f"{who}: {arg} has dtype {a.dtype}; expected float32 or float64")
    return a


def same_dtype(who, arg, a, dtype, what="x"):
    """``a`` (e.g. a parameter) must have the dtype of ``what`` (usually the input x)."""
    if a.dtype != dtype:
        raise TypeError(f"{who}: {arg} has dtype {a.dtype} but {what} has dtype {np.dtype(dtype)};"
                        f" expected the same dtype")


def vector(who, arg, a, n, dtype):
    """``a`` must be a ``dtype`` array of shape (n,) (a per-channel parameter or statistic)."""
    if not isinstance(a, np.ndarray) or a.shape != (n,) or a.dtype != dtype:
        got = f"{a.dtype} array of shape {a.shape}" if isinstance(a, np.ndarray) else type(a).__name__
        raise ValueError(f"{who}: {arg} must be a {np.dtype(dtype)} array of shape ({n},), got {got}")
    return a


def upstream(who, dy, shape, dtype):
    """The upstream gradient must match the forward output: same shape, same dtype."""
    if not isinstance(dy, np.ndarray) or dy.shape != tuple(shape) or dy.dtype != dtype:
        got = f"{dy.dtype} array of shape {dy.shape}" if isinstance(dy, np.ndarray) else type(dy).__name__
        raise ValueError(f"{who}: dy must be a {np.dtype(dtype)} array of shape {tuple(shape)}"
                         f" (the forward output's), got {got}")
    return dy
