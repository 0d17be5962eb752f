"""Figure: the roofline of this machine, with every layer of a MobileNet placed on it (lesson 10).

The roofline model (Williams, Waterman & Patterson, 2009): a layer doing F FLOPs while moving at
least B bytes has arithmetic intensity I = F / B, and can run no faster than

    attainable(I) = min(peak FLOP/s, bandwidth × I).

Both ceilings are *measured* here (a large float32 matrix product; a large array copy), and every
layer's achieved FLOP/s and intensity come from ``npmobilenet.bench.profile`` (2 × MAdds per forward
time; input + output + parameter bytes).  Times are CPU seconds by default (``clock="cpu"``), which
on a shared machine measure the work rather than the waiting.
"""
import time

import numpy as np

KIND_COLORS = {"conv-pointwise": "C0", "conv-depthwise": "C3", "conv-full": "C2", "linear": "C4"}


def _clock(clock):
    return {"wall": time.perf_counter, "cpu": time.process_time}[clock]


def machine_peaks(clock="cpu", repeats=5, sizes=(1024, 2048)):
    """(peak GFLOP/s: the best float32 matmul of the given sizes; copy bandwidth in GB/s), best of
    ``repeats`` each (on a shared machine the best run is the one least disturbed)."""
    now = _clock(clock)
    peak = 0.0
    for n in sizes:
        a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
        best = np.inf
        for _ in range(repeats):
            t = now(); a @ a; best = min(best, now() - t)
        peak = max(peak, 2 * n ** 3 / best / 1e9)
    src = np.ones(2 ** 24, np.float32)
    dst = np.zeros_like(src)          # touched, so the copy does not time page faults
    best = np.inf
    for _ in range(repeats):
        t = now(); np.copyto(dst, src); best = min(best, now() - t)
    return peak, 2 * src.nbytes / best / 1e9   # a copy reads and writes every byte


def model_layers(name="mobilenetv2_100", size=224, batch=2, clock="cpu", repeats=3):
    """Per-layer profile rows (``npmobilenet.bench.profile``) of one forward of ``name``."""
    from ..bench.profile import profile
    from ..build import create_model
    model = create_model(name, seed=0)
    x = np.random.default_rng(0).standard_normal((batch, 3, size, size)).astype(np.float32)
    layers, _, _ = profile(model, x, repeats=repeats, clock=clock)
    return [r for r in layers if r["madds"] and r["fwd_ms"] > 0]


def draw(ax, layers, peak_gflops, bandwidth):
    """The two ceilings and one point per layer (intensity, achieved GFLOP/s), coloured by kind."""
    xs = np.logspace(-1, 3, 200)
    ax.loglog(xs, np.minimum(peak_gflops, bandwidth * xs), "k-", lw=1.5)
    ridge = peak_gflops / bandwidth
    ax.axvline(ridge, color="0.6", ls=":", lw=1)
    ax.text(ridge * 1.1, peak_gflops * 0.6, f"ridge point\n{ridge:.1f} FLOP/byte", fontsize=8, color="0.3")
    for kind, color in KIND_COLORS.items():
        pts = [(r["intensity"], r["fwd_gflops"]) for r in layers if r["kind"] == kind]
        if pts:
            ax.scatter(*zip(*pts), s=18, color=color, label=f"{kind} ({len(pts)})", alpha=0.8)
    ax.set_xlabel("arithmetic intensity (FLOP per byte of input + output + weights)")
    ax.set_ylabel("achieved GFLOP/s (2 x MAdds / forward time)")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3, which="both")


def plot(fig=None, quick=False):
    """Measure the machine and one MobileNetV2 forward, and draw the roofline; returns the figure."""
    import matplotlib.pyplot as plt
    size, batch = (64, 1) if quick else (224, 2)
    peak, bw = machine_peaks()
    layers = model_layers(size=size, batch=batch, repeats=1 if quick else 3)
    fig = fig or plt.figure(figsize=(8, 5.5))
    ax = fig.subplots()
    draw(ax, layers, peak, bw)
    ax.set_title(f"MobileNetV2 1.0 forward at {size}x{size}, batch {batch}, float32, per CPU-second\n"
                 f"measured ceilings: {peak:.0f} GFLOP/s (matmul), {bw:.1f} GB/s (copy)", fontsize=10)
    fig.tight_layout()
    return fig
