"""npmobilenet: the MobileNet family (V1, V2, V3, V4) in plain NumPy.

Every forward and backward pass is written by hand; hot loops are compiled with Numba; every
gradient is checked against finite differences (``npmobilenet.gradcheck``).
"""
__version__ = "0.1.0"

from . import nn  # noqa: F401  (the layer library, torch.nn-style)
from .gradcheck import gradcheck  # noqa: F401
