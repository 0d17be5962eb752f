"""``npmobilenet evaluate``: test accuracy and the confusion matrix of a trained model.

::

    npmobilenet evaluate --checkpoint runs/digits-mobilenetv3_small_050
    npmobilenet evaluate --checkpoint runs/x/model.npz --dataset path/to/folder

``--checkpoint`` is a run folder (its ``checkpoint.npz``), a training checkpoint, or a weights
file written by ``npmobilenet train`` (``model.npz``).  The test split is rebuilt from the run's
own settings (dataset, resolution, seed: the split depends on it), so the number printed is the
number the run reported; with a weight average (``--ema``) the averaged weights are evaluated, as
during training.  ``--dataset`` evaluates on another dataset with the same classes.
"""
from __future__ import annotations

import json
import os

import numpy as np


def add_arguments(p):
    p.add_argument("--checkpoint", required=True, metavar="PATH",
                   help="a run folder, its checkpoint.npz, or its model.npz")
    p.add_argument("--dataset", metavar="digits|PATH", help="evaluate on this dataset (default: the run's)")
    p.add_argument("--model", metavar="NAME", help="refuse the checkpoint unless it is for this model")
    p.add_argument("--batch-size", type=int, default=256, metavar="B", help="images per forward pass")
    p.add_argument("--threads", type=int, metavar="T", help="CPU threads (default: all cores)")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of tables")


def _from_training_checkpoint(path):
    """(model, TrainConfig, description) from a training checkpoint, the weights the run evaluated."""
    from ..io.checkpoint import differences
    from ..io.errors import CheckpointError
    from ..train.checkpoint import TrainingCheckpoint
    from ..train.config import TrainConfig
    from ..train.loop import build_model

    ckpt = TrainingCheckpoint(path)
    config = TrainConfig.from_dict(ckpt.config)
    num_classes = int(np.shape(ckpt.parts["model"].get("classifier.weight", np.zeros((0, 0))))[0])
    model = build_model(config, num_classes)
    weights, which = ckpt.parts["model"], "weights"
    if ckpt.parts["ema"]:
        weights = {k[len("shadow."):]: v for k, v in ckpt.parts["ema"].items() if k.startswith("shadow.")}
        which = "weight average (EMA)"
    lines = differences(model, weights)
    if lines:
        raise CheckpointError(f"{ckpt.path} does not fit {config.model}; nothing was loaded:\n  " + "\n  ".join(lines))
    model.load_state_dict(weights)
    epoch, batch = int(ckpt.meta.get("epoch", 0)), int(ckpt.meta.get("batch", 0))
    where = f"after epoch {epoch}" if not batch else f"{batch} batches into epoch {epoch + 1}"
    return model, config, f"{where}, {which}"


def _from_weights(path):
    from ..io import load, read_state_dict
    from ..train.config import TrainConfig

    _, manifest = read_state_dict(path)
    meta = (manifest or {}).get("metadata") or {}
    if "train_config" not in meta:
        raise ValueError(f"{path} was not written by npmobilenet train (its manifest has no training settings), "
                         "so its test split is unknown; evaluate a run folder or checkpoint.npz")
    model = load(path)
    return model, TrainConfig.from_dict(meta["train_config"]), f"after epoch {meta.get('epoch')}, saved weights"


def load_for_evaluation(path):
    """``(model, config, description)`` for a run folder, training checkpoint or model.npz."""
    from ..io.errors import CheckpointError
    from ..train.checkpoint import CHECKPOINT_NAME

    path = os.fspath(path)
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, CHECKPOINT_NAME)):
            return _from_training_checkpoint(path)
        if os.path.exists(os.path.join(path, "model.npz")):
            return _from_weights(os.path.join(path, "model.npz"))
        raise FileNotFoundError(f"{path} holds no checkpoint.npz or model.npz "
                                "(is it a run folder of npmobilenet train?)")
    try:
        return _from_training_checkpoint(path)
    except CheckpointError as e:
        if "holds model weights only" not in str(e):
            raise
        return _from_weights(path)


def run(args):
    from ..train.datasets import make_loaders
    from ..train.metrics import evaluate, format_confusion

    if args.threads is not None:
        from ..train.threads import set_threads
        set_threads(args.threads)
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    model, config, described = load_for_evaluation(args.checkpoint)
    if args.model and args.model not in (config.model, model.name):
        raise ValueError(f"{args.checkpoint} holds a {model.name} ({config.model}) trained model, not {args.model}")
    if args.dataset:
        config = config.replace(dataset=args.dataset)
    _, test = make_loaders(config.replace(batch_size=args.batch_size))
    if len(test.classes) != model.num_classes:
        raise ValueError(f"--dataset {config.dataset} has {len(test.classes)} classes but the model has "
                         f"{model.num_classes} outputs")
    res = evaluate(model, test)
    if args.json:
        print(json.dumps({"checkpoint": args.checkpoint, "model": model.name, "dataset": config.dataset,
                          "accuracy": res["accuracy"], "correct": res["correct"], "count": res["count"],
                          "loss": res["loss"], "classes": list(test.classes),
                          "confusion": res["confusion"].tolist()}))
        return 0
    print(f"{model.name} ({described}) on the {config.dataset} test split: {res['count']} images, "
          f"{config.size}x{config.size}")
    print(f"test accuracy {100 * res['accuracy']:.2f}% ({res['correct']}/{res['count']}), "
          f"cross-entropy {res['loss']:.4f}\n")
    print("confusion matrix (rows: true class, columns: predicted class)")
    print(format_confusion(res["confusion"], test.classes))
    return 0
