"""Evaluating a classifier on a loader: loss, accuracy, confusion matrix, and the matrix as text.

The model runs in eval mode (BatchNorm uses its running statistics, dropout is off) and is put
back in the mode it was in.  The loss is plain cross-entropy (no label smoothing), the number a
reader compares across runs; the training loss of ``history.json`` is the smoothed objective.
"""
from __future__ import annotations

import math

import numpy as np

from ..module import no_grad
from ..ops.losses import cross_entropy_forward


def confusion_matrix(labels, predictions, num_classes):
    """``C[i, j]`` = number of images of class i predicted as class j (int64, num_classes^2)."""
    return np.bincount(num_classes * np.asarray(labels) + np.asarray(predictions),
                       minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def evaluate(model, loader, num_classes=None):
    """Run ``model`` over every batch of ``loader``.

    Returns:
    - dict with ``loss`` (mean cross-entropy), ``accuracy`` (fraction), ``correct``, ``count``,
      ``confusion`` (``confusion_matrix``) and ``non_finite``: images whose logits overflowed
      (counted as wrong, infinite loss, left out of the confusion matrix).
    """
    num_classes = num_classes or model.num_classes
    was_training = model.training
    model.eval()
    loss_sum, labels, preds = 0.0, [], []
    try:
        # Early in training the running BatchNorm statistics can lag so far behind the weights that
        # eval-mode activations overflow: such images count as wrong, with an infinite loss.
        # no_grad: nothing is kept for a backward (less memory, conv-BN-act fused; same logits).
        with np.errstate(over="ignore", invalid="ignore"), no_grad():
            for x, y in loader:
                logits = model.forward(x.astype(model.dtype, copy=False))
                ok = np.isfinite(logits).all(axis=1)
                if ok.any():
                    loss, _ = cross_entropy_forward(logits[ok], y[ok])
                    loss_sum += float(loss) * int(ok.sum())
                if not ok.all():
                    loss_sum = math.inf
                labels.append(y)
                preds.append(np.where(ok, np.nan_to_num(logits).argmax(axis=1), -1))
    finally:
        model.train(was_training)
    labels, preds = np.concatenate(labels), np.concatenate(preds)
    correct = int((labels == preds).sum())
    valid = preds >= 0
    return {"loss": loss_sum / len(labels), "accuracy": correct / len(labels), "correct": correct,
            "count": int(len(labels)), "non_finite": int((~valid).sum()),
            "confusion": confusion_matrix(labels[valid], preds[valid], num_classes)}


def format_confusion(cm, classes=None):
    """The confusion matrix as a text table: rows are true classes, columns predictions.

    Each row ends with the class's recall (correct / images of that class).
    """
    cm = np.asarray(cm)
    k = cm.shape[0]
    names = [str(c) for c in (classes if classes is not None else range(k))]
    w = max(3, max(len(n) for n in names), len(str(int(cm.max())) if cm.size else "0"))
    corner = "true \\ pred"
    lead = max(len(corner), max(len(n) for n in names))
    lines = [f"{corner:>{lead}} " + " ".join(f"{n:>{w}}" for n in names) + "   recall"]
    for i, n in enumerate(names):
        total = int(cm[i].sum())
        recall = f"{100 * cm[i, i] / total:6.1f}%" if total else "      -"
        cells = " ".join(f"{int(v):>{w}}" if v else f"{'.':>{w}}" for v in cm[i])
        lines.append(f"{n:>{lead}} {cells}  {recall}")
    return "\n".join(lines)
