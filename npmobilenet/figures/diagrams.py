"""Figure: every MobileNet drawn as a block diagram from its table.

Each row is one model; each box one block of ``npmobilenet.build.plan`` (the walk of the table the
models are built from), in network order.  The box's colour is the block kind (derived from the row by
``npmobilenet.arch.table.label``, never typed by hand), its height grows with the block's output
channels (log scale), a dark left edge marks a stride-2 block, and the numbers under the row are the
feature-map sizes at the model's paper resolution.
"""
import math

VARIANTS = [("mobilenetv1_100", 224), ("mobilenetv2_100", 224), ("mobilenetv3_small_100", 224),
            ("mobilenetv3_large_100", 224), ("mobilenetv4_conv_small", 224), ("mobilenetv4_conv_medium", 256),
            ("mobilenetv4_hybrid_medium", 256), ("mobilenetv4_conv_large", 384), ("mobilenetv4_hybrid_large", 384)]

KIND_COLORS = {"Conv": "0.55", "DS": "#9ecae1", "DS-SE": "#4292c6", "IR": "#a1d99b", "IR-SE": "#31a354",
               "FusedIB": "#fdae6b", "IB": "#bcbddc", "ExtraDW": "#756bb1", "ConvNeXt": "#fb6a4a",
               "FFN": "#fcbba1", "MQA": "#e7298a"}


def blocks(name, res):
    """[(label, out_chs, stride, res_out, stage)] for the stem and every block of ``name``."""
    from ..build import MODELS, plan
    p = plan(MODELS[name])
    out = [("Conv", p.stem_size, p.stem_stride, math.ceil(res / p.stem_stride), -1)]
    r = out[0][3]
    for stage in p.stages:
        for b in stage:
            r = math.ceil(r / b.stride)
            out.append((b.label, b.out_chs, b.stride, r, b.stage))
    return out


def plot(fig=None, quick=False):
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch, Rectangle
    variants = VARIANTS[:2] if quick else VARIANTS
    rows = {n: blocks(n, r) for n, r in variants}
    width = max(len(b) for b in rows.values())
    fig = fig or plt.figure(figsize=(16, 1.15 * len(rows) + 1.2))
    ax = fig.subplots()
    for i, ((name, res), seq) in enumerate(zip(variants, rows.values())):
        y0 = -i * 1.3
        ax.text(-0.6, y0 + 0.45, f"{name.replace('mobilenet', '')}\n@{res}", ha="right", va="center", fontsize=8)
        prev_stage = None
        for j, (kind, out_chs, stride, r, stage) in enumerate(seq):
            h = 0.25 + 0.75 * math.log2(out_chs / 8) / math.log2(1024 / 8)
            ax.add_patch(Rectangle((j, y0 + (1 - h) / 2), 0.9, h, facecolor=KIND_COLORS.get(kind.replace("+DWend", ""), "w"),
                                   edgecolor="0.2", lw=0.4))
            if stride > 1:
                ax.plot([j, j], [y0 + (1 - h) / 2, y0 + (1 + h) / 2], color="k", lw=2.2)
            if stage != prev_stage:
                ax.text(j, y0 - 0.12, f"{r}²", fontsize=6, va="top")
                prev_stage = stage
        ax.text(len(seq) + 0.2, y0 + 0.45, f"→ {seq[-1][1]} ch", fontsize=7, va="center")
    ax.set_xlim(-4, width + 2)
    ax.set_ylim(-1.3 * len(rows) + 0.8, 1.2)
    ax.axis("off")
    ax.legend(handles=[Patch(facecolor=c, edgecolor="0.2", label=k) for k, c in KIND_COLORS.items()],
              ncol=len(KIND_COLORS), loc="upper center", bbox_to_anchor=(0.5, 1.08), fontsize=8, frameon=False)
    ax.set_title("MobileNet V1-V4 as built from their tables: one box per block (height: output channels, log scale; "
                 "thick left edge: stride 2; numbers: feature-map side at each stage's start)", fontsize=9, pad=28)
    fig.tight_layout()
    return fig
