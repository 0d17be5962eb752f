"""Figure: a short training run of a MobileNet from scratch on the bundled digits (lesson 9).

The run is the library's own ``Trainer`` (``npmobilenet.train.loop``) with ``RUN`` below, small enough
to finish in well under a minute on two cores; the curves and the confusion matrix are its
``history`` and ``evaluate`` output, nothing else.
"""
import io

import numpy as np

# MobileNetV1 at width 0.25 on 32x32 digits, SGD with Nesterov momentum and a cosine schedule,
# label smoothing 0.1 and random shift/zoom augmentation: TrainConfig's defaults except the model
# and the number of epochs.
RUN = dict(model="mobilenetv1_025", size=32, epochs=8, seed=0)
QUICK = dict(epochs=2, limit_batches=3)


def train(quick=False, **overrides):
    """Train ``RUN`` (updated with ``overrides``); returns ``(trainer, history)``."""
    from ..train.config import TrainConfig
    from ..train.loop import Trainer
    cfg = TrainConfig(**{**RUN, **(QUICK if quick else {}), **overrides})
    trainer = Trainer(cfg, None, stream=io.StringIO())     # out=None: write nothing to disk
    return trainer, trainer.fit()


def plot_curves(history, axes, label=None, style="-"):
    """Loss (train: the smoothed objective; test: plain cross-entropy) and accuracy per epoch."""
    ep = [r["epoch"] for r in history]
    tag = f"{label}: " if label else ""
    axes[0].plot(ep, [r["train_loss"] for r in history], style, color="C0", label=f"{tag}train")
    axes[0].plot(ep, [min(r["test_loss"], 10.0) for r in history], style, color="C1", label=f"{tag}test")
    axes[1].plot(ep, [100 * r["train_acc"] for r in history], style, color="C0", label=f"{tag}train")
    axes[1].plot(ep, [100 * r["test_acc"] for r in history], style, color="C1", label=f"{tag}test")
    axes[0].set_ylabel("loss (test clipped at 10)")
    axes[1].set_ylabel("accuracy (%)")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)


def plot_confusion(cm, ax, classes=None):
    """The confusion matrix as an image with counts: rows true classes, columns predictions."""
    cm = np.asarray(cm)
    ax.imshow(cm, cmap="Blues")
    k = cm.shape[0]
    for i in range(k):
        for j in range(k):
            if cm[i, j]:
                ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=7,
                        color="white" if cm[i, j] > cm.max() / 2 else "black")
    names = classes or [str(i) for i in range(k)]
    ax.set_xticks(range(k), names)
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")


def plot(fig=None, quick=False):
    """Train ``RUN`` and draw its curves and final confusion matrix; returns the figure."""
    import matplotlib.pyplot as plt
    from ..train.metrics import evaluate
    trainer, history = train(quick)
    result = evaluate(trainer.model, trainer.test_loader)
    fig = fig or plt.figure(figsize=(14, 4.2))
    axes = fig.subplots(1, 3, gridspec_kw=dict(width_ratios=[1, 1, 0.9]))
    plot_curves(history, axes[:2])
    plot_confusion(result["confusion"], axes[2], trainer.classes)
    axes[2].set_title(f"test confusion matrix ({100 * result['accuracy']:.1f}% correct)", fontsize=10)
    cfg = trainer.config
    fig.suptitle(f"{cfg.model} trained from scratch on the digits ({cfg.size}x{cfg.size}), {cfg.epochs} epochs, "
                 f"{cfg.optimizer}, label smoothing {cfg.label_smoothing}, augmentation {'on' if cfg.augment else 'off'}")
    fig.tight_layout()
    return fig
