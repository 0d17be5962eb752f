"""Figure: parameters and multiply-adds per stage of every MobileNet variant.

Every number is a sum of ``npmobilenet.summary`` rows: the stem (``conv_stem``, ``bn1``), each
stage ``blocks.i``, the head (``conv_head`` and its BN) and the classifier.  Each model is counted
at its paper's resolution.
"""
import numpy as np

VARIANTS = [("mobilenetv1_100", 224), ("mobilenetv2_100", 224), ("mobilenetv3_small_100", 224),
            ("mobilenetv3_large_100", 224), ("mobilenetv4_conv_small", 224), ("mobilenetv4_conv_medium", 256),
            ("mobilenetv4_hybrid_medium", 256), ("mobilenetv4_conv_large", 384), ("mobilenetv4_hybrid_large", 384)]
QUICK_VARIANTS = [("mobilenetv1_100", 64), ("mobilenetv3_small_100", 64)]


def group_of(row_name):
    """'stem', 'stage i', 'head' or 'classifier' for a summary row name."""
    if row_name.startswith("blocks."):
        return f"stage {int(row_name.split('.')[1])}"
    if row_name.startswith(("conv_stem", "bn1")):
        return "stem"
    if row_name.startswith("classifier"):
        return "classifier"
    return "head"


def per_stage(name, res):
    """{group: (params, MAdds)} of a model at ``res``, in network order, from its summary."""
    from .. import create_model, summary
    s = summary(create_model(name), (3, res, res))
    out = {}
    for r in s.rows:
        p, m = out.get(group_of(r["name"]), (0, 0))
        out[group_of(r["name"])] = (p + r["params"], m + r["madds"])
    assert sum(p for p, _ in out.values()) == s.total_params and sum(m for _, m in out.values()) == s.total_madds
    return out


def plot(fig=None, quick=False):
    import matplotlib.pyplot as plt
    variants = QUICK_VARIANTS if quick else VARIANTS
    data = {f"{n.replace('mobilenet', '')} @{r}": per_stage(n, r) for n, r in variants}
    fig = fig or plt.figure(figsize=(14, 6.5))
    axes = fig.subplots(1, 2)
    groups = ["stem"] + [f"stage {i}" for i in range(8)] + ["head", "classifier"]
    cmap = plt.get_cmap("viridis")
    colors = {g: ("0.3" if g == "stem" else "C1" if g == "head" else "C3" if g == "classifier"
                  else cmap(int(g.split()[1]) / 8)) for g in groups}
    labels = list(data)
    for ax, idx, title in ((axes[0], 0, "share of the parameters (%)"), (axes[1], 1, "share of the MAdds (%)")):
        totals = np.array([sum(v[idx] for v in data[l].values()) for l in labels], dtype=float)
        left = np.zeros(len(labels))
        for g in groups:
            vals = np.array([data[l].get(g, (0, 0))[idx] for l in labels]) / totals * 100
            if vals.any():
                ax.barh(labels, vals, left=left, color=colors[g], label=g, edgecolor="white", lw=0.5)
                left += vals
        for y, total in enumerate(totals):
            ax.text(101, y, f"{total / 1e6:,.2f} M", va="center", fontsize=8)
        ax.set_xlim(0, 118)
        ax.set_title(title + "; total at the right")
        ax.invert_yaxis()
        ax.grid(alpha=0.3, axis="x")
    axes[0].legend(fontsize=8, loc="upper left", bbox_to_anchor=(0, -0.06), ncol=6)
    fig.suptitle("Where the parameters and the multiply-adds sit: stem, stages, head, classifier "
                 "(npmobilenet.summary at each model's resolution; 1 MAdd = 1 multiply + 1 add)", fontsize=11)
    fig.tight_layout()
    return fig
