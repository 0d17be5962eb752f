"""Figure: the MobileNet family's ImageNet top-1 accuracy against multiply-adds.

The accuracies are the papers' published numbers, written here with their sources.  The x
coordinate of each point is the library's own exact MAdd count of that model at that resolution
(``npmobilenet.summary``), so the chart shows the real cost; the papers' rounded MAdds are kept
beside them for comparison (``PUBLISHED[i]["madds_m"]``).
"""
# Each entry: (library model name, resolution, top-1 %, published MAdds in millions, published params
# in millions, source).  MAdds count one multiply-add; the papers round them (V4's "G" are 2**30).
V1 = "Howard et al. 2017, MobileNets, arXiv 1704.04861, Table 6"
V2 = "Sandler et al. 2018, MobileNetV2, arXiv 1801.04381, Table 4"
V3 = "Howard et al. 2019, Searching for MobileNetV3, arXiv 1905.02244, Table 3 (final version)"
V4 = "Qin et al. 2024, MobileNetV4, arXiv 2404.10518, ImageNet classification table"
PUBLISHED = [
    dict(model="mobilenetv1_025", res=224, top1=50.6, madds_m=41, params_m=0.5, family="V1", source=V1),
    dict(model="mobilenetv1_050", res=224, top1=63.7, madds_m=149, params_m=1.3, family="V1", source=V1),
    dict(model="mobilenetv1_075", res=224, top1=68.4, madds_m=325, params_m=2.6, family="V1", source=V1),
    dict(model="mobilenetv1_100", res=224, top1=70.6, madds_m=569, params_m=4.2, family="V1", source=V1),
    dict(model="mobilenetv2_100", res=224, top1=72.0, madds_m=300, params_m=3.4, family="V2", source=V2),
    dict(model="mobilenetv2_140", res=224, top1=74.7, madds_m=585, params_m=6.9, family="V2", source=V2),
    dict(model="mobilenetv3_small_075", res=224, top1=65.4, madds_m=44, params_m=2.0, family="V3", source=V3),
    dict(model="mobilenetv3_small_100", res=224, top1=67.4, madds_m=56, params_m=2.5, family="V3", source=V3),
    dict(model="mobilenetv3_large_075", res=224, top1=73.3, madds_m=155, params_m=4.0, family="V3", source=V3),
    dict(model="mobilenetv3_large_100", res=224, top1=75.2, madds_m=219, params_m=5.4, family="V3", source=V3),
    dict(model="mobilenetv4_conv_small", res=224, top1=73.8, madds_m=200, params_m=3.8, family="V4", source=V4),
    dict(model="mobilenetv4_conv_medium", res=256, top1=79.9, madds_m=1000, params_m=9.2, family="V4", source=V4),
    dict(model="mobilenetv4_hybrid_medium", res=256, top1=80.7, madds_m=1200, params_m=10.5, family="V4", source=V4),
    dict(model="mobilenetv4_conv_large", res=384, top1=82.9, madds_m=5900, params_m=31.0, family="V4", source=V4),
    dict(model="mobilenetv4_hybrid_large", res=384, top1=83.4, madds_m=7200, params_m=35.9, family="V4", source=V4),
]


def exact_counts(entry):
    """(params, MAdds) of ``entry``'s model at its resolution, counted by ``npmobilenet.summary``."""
    from .. import create_model, summary
    s = summary(create_model(entry["model"]), (3, entry["res"], entry["res"]))
    return s.total_params, s.total_madds


def plot(fig=None, quick=False):
    """The chart; ``quick`` places the points at the published MAdds instead of counting them."""
    import matplotlib.pyplot as plt
    fig = fig or plt.figure(figsize=(9, 6))
    ax = fig.subplots()
    colors = {"V1": "C0", "V2": "C1", "V3": "C2", "V4": "C3"}
    for fam, color in colors.items():
        entries = [e for e in PUBLISHED if e["family"] == fam]
        xs = [e["madds_m"] if quick else exact_counts(e)[1] / 1e6 for e in entries]
        ys = [e["top1"] for e in entries]
        ax.plot(xs, ys, "o-", color=color, label=f"MobileNet{fam}: {entries[0]['source']}")
        for e, x, y in zip(entries, xs, ys):
            name = e["model"].replace("mobilenet", "").replace("_", " ")
            ax.annotate(f"{name} @{e['res']}", (x, y), textcoords="offset points", xytext=(5, -10), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("multiply-adds (millions, log scale) — " +
                  ("as published" if quick else "exact, counted by npmobilenet.summary at the model's resolution"))
    ax.set_ylabel("ImageNet top-1 accuracy (%), as published")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3, which="both")
    ax.set_title("The MobileNet family: published accuracy against cost")
    fig.tight_layout()
    return fig
