"""The record of a run: ``history.json`` (one record per epoch) and its training-curve figure.

Each record is::

    {"epoch": 3, "train_loss": 0.41, "train_acc": 0.912, "test_loss": 0.12, "test_acc": 0.975,
     "lr": 0.0871, "seconds": 8.4, "images_per_s": 171.1}

``epoch`` counts from 1; accuracies are fractions; ``train_loss`` / ``train_acc`` are the running
means over the epoch's training batches (augmented, training mode, label-smoothed loss);
``test_loss`` / ``test_acc`` are measured after the epoch (eval mode, plain cross-entropy; on
the weight average when the run keeps one); ``lr`` is the learning rate of the epoch's last step;
``seconds`` is the wall time of the epoch's training steps (evaluation not included) and
``images_per_s`` the training images per second over those.

Both files are written atomically after every epoch, so an interrupted run still has them.
"""
from __future__ import annotations

import io
import json
import math

from ..io.atomic import atomic_write

FIELDS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "seconds", "images_per_s")


def write_history(path, records):
    """Write the list of epoch records to ``path`` as JSON (atomically)."""
    def value(v):   # JSON has no inf/NaN (an overflowing early evaluation): write null
        return None if isinstance(v, float) and not math.isfinite(v) else v

    text = json.dumps([{k: value(r[k]) for k in FIELDS if k in r} for r in records], indent=1)
    return atomic_write(path, lambda f: f.write(text.encode() + b"\n"))


def read_history(path):
    with open(path) as f:
        return json.load(f)


def plot_history(records, path, title=None):
    """Draw loss and accuracy per epoch (training and test) into the PNG ``path`` (atomically).

    Uses matplotlib's Agg canvas directly (no GUI backend, no global state), so it works on
    machines without a display and inside other programs that use matplotlib.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    def col(key, scale=1.0):   # None / inf (an overflowing evaluation) become gaps in the curve
        return [scale * r[key] if r.get(key) is not None and math.isfinite(r[key]) else math.nan for r in records]

    epochs = [r["epoch"] for r in records]
    fig = Figure(figsize=(9, 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax_loss, ax_acc = fig.subplots(1, 2)
    ax_loss.plot(epochs, col("train_loss"), "o-", label="train (smoothed objective)")
    ax_loss.plot(epochs, col("test_loss"), "s-", label="test (cross-entropy)")
    ax_loss.set(xlabel="epoch", ylabel="loss", yscale="log", title="loss")
    ax_acc.plot(epochs, col("train_acc", 100), "o-", label="train")
    ax_acc.plot(epochs, col("test_acc", 100), "s-", label="test")
    best = max(records, key=lambda r: r["test_acc"])
    ax_acc.annotate(f"{100 * best['test_acc']:.2f}%", (best["epoch"], 100 * best["test_acc"]),
                    textcoords="offset points", xytext=(0, -14), ha="center")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
        if len(epochs) > 1:
            ax.set_xlim(min(epochs) - 0.2, max(epochs) + 0.2)
    if title:
        fig.suptitle(title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return atomic_write(path, lambda f: f.write(buf.getvalue()))
