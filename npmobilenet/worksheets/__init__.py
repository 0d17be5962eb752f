"""FLOP-derivation worksheets: your formula for a layer type against the library's own counts.

The worksheet notebooks (``lessons/worksheet_*.ipynb``) ask for, per layer type, the parameter
count and the multiply-adds (MAdds; 1 MAdd = 1 multiply + 1 add, FLOPs ≈ 2 × MAdds) as a
function of what the paper's table says about the layer.  ``check(kind, formula)`` evaluates the
formula on every layer of that type in the real networks and compares it, layer by layer, with
``npmobilenet.summary`` (the counts the library measures on the model itself)::

    from npmobilenet import worksheets as ws

    def depthwise(L):                 # L.c, L.k, L.stride, L.h_in, L.w_in
        h, w = -(-L.h_in // L.stride), -(-L.w_in // L.stride)
        return L.c * L.k * L.k, h * w * L.c * L.k * L.k

    ws.check("depthwise", depthwise)  # prints which layers agree; raises if any does not

``ws.KINDS`` lists the layer types and the facts each formula receives; ``solutions`` holds one
correct formula per type (the test suite proves that each passes on every network and that
planted mistakes are caught).
"""
from .checker import KINDS, NETWORKS, CheckResult, Network, check, check_all, check_total, layers  # noqa: F401
from . import solutions  # noqa: F401

__all__ = ["KINDS", "NETWORKS", "CheckResult", "Network", "check", "check_all", "check_total", "layers", "solutions"]
