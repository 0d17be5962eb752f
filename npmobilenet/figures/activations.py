"""Figure: the activation functions of the MobileNet family and their derivatives.

Every curve is computed by the library's own forward and backward functions
(``npmobilenet.ops.activations``); sigmoid and swish, which the library does not need, are drawn
as the smooth functions the hard versions approximate (Howard et al., 2019, MobileNetV3, Sec. 5.2).
"""
import numpy as np

from ..ops import activations as A


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def curves(x=None):
    """{name: (x, f(x), f'(x))} for relu, relu6, hardsigmoid, hardswish, gelu, sigmoid, swish.

    The library's derivatives come from its backward functions with dy = 1 (they are elementwise,
    so that is the derivative at every point; at a kink it is the subgradient ATen uses).
    """
    x = np.linspace(-8, 8, 3201) if x is None else np.asarray(x, np.float64)
    out = {}
    for name in ("relu", "relu6", "hardsigmoid", "hardswish", "gelu"):
        fwd, bwd = getattr(A, f"{name}_forward"), getattr(A, f"{name}_backward")
        y, cache = fwd(x)
        out[name] = (x, y, bwd(np.ones_like(x), cache))
    s = _sigmoid(x)
    out["sigmoid"] = (x, s, s * (1 - s))
    out["swish"] = (x, x * s, s + x * s * (1 - s))
    return out


def plot(fig=None):
    """Draw the figure (2x3 panels: values on top, derivatives below) and return it."""
    import matplotlib.pyplot as plt
    fig = fig or plt.figure(figsize=(13, 7))
    c = curves()
    groups = [("ReLU and ReLU6 (V1, V2)", [("relu", "ReLU", "C0", "-"), ("relu6", "ReLU6", "C1", "--")]),
              ("hard-sigmoid vs sigmoid (V3 SE gate)", [("sigmoid", "sigmoid", "0.6", "-"),
                                                        ("hardsigmoid", "hard-sigmoid", "C2", "-")]),
              ("hard-swish vs swish, GELU (V3, V4-Hybrid-L)", [("swish", "swish", "0.6", "-"),
                                                               ("hardswish", "hard-swish", "C3", "-"),
                                                               ("gelu", "GELU", "C4", ":")])]
    axes = fig.subplots(2, 3, sharex=True)
    for col, (title, members) in enumerate(groups):
        for name, label, color, ls in members:
            x, y, dy = c[name]
            axes[0, col].plot(x, y, color=color, ls=ls, label=label)
            axes[1, col].plot(x, dy, color=color, ls=ls, label=label)
        axes[0, col].set_title(title, fontsize=10)
        axes[0, col].legend(fontsize=8)
        axes[1, col].set_xlabel("x")
        for ax in axes[:, col]:
            ax.axhline(0, color="0.85", lw=0.8, zorder=0)
            ax.axvline(0, color="0.85", lw=0.8, zorder=0)
            for k in (-3, 3, 6):
                ax.axvline(k, color="0.93", lw=0.6, zorder=0)
    axes[0, 0].set_ylabel("f(x)")
    axes[1, 0].set_ylabel("f'(x)  (library backward, dy = 1)")
    fig.suptitle("Activations and their derivatives; thin lines mark the kinks at x = -3, 0, 3, 6")
    fig.tight_layout()
    return fig
