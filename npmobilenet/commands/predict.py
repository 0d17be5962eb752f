"""``npmobilenet predict``: classify photos with a model and its weights, top-5 with class names.

Each image is preprocessed as timm evaluates the weights (``npmobilenet.io.imagenet``: resize the
shorter side to ``floor(size / crop_pct)``, centre crop, normalise with the weight's mean and
std), so timm's pretrained weights give timm's predictions::

    npmobilenet predict --model mobilenetv3_large_100.ra_in1k --weights model.safetensors photo.jpg
"""
from __future__ import annotations

import json
import math
import os

import numpy as np

from ..module import no_grad


def add_arguments(p):
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (JPEG, PNG, ...)")
    p.add_argument("--weights", required=True, metavar="FILE",
                   help="weights: .npz (npmobilenet), .safetensors (timm), .pth (PyTorch or "
                        "torchvision), or a timm model folder with config.json")
    p.add_argument("--model", metavar="NAME[.TAG]",
                   help="timm model name, optionally with the weight tag that fixes the preprocessing "
                        "(e.g. mobilenetv3_large_100.ra_in1k); not needed when the file names it")
    p.add_argument("--topk", type=int, default=5, metavar="K", help="classes to show (default 5)")
    p.add_argument("--size", type=int, metavar="S", help="crop size (default: the weight's)")
    p.add_argument("--crop-pct", type=float, metavar="F", help="crop fraction (default: the weight's)")
    p.add_argument("--resize", type=int, metavar="R",
                   help="resize the shorter side to R before the crop (default: size / crop-pct)")
    p.add_argument("--interpolation", choices=["bilinear", "bicubic", "nearest", "lanczos", "box", "hamming"],
                   help="resize filter (default: the weight's)")
    p.add_argument("--batch-size", type=int, default=8, metavar="N", help="images per forward pass")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of a table")


def labels_for(model):
    """Class names for the model's outputs: ImageNet-1k's, the weights' own, or None."""
    from ..io.imagenet import class_names

    cfg = getattr(model, "pretrained_cfg", None) or {}
    names = cfg.get("label_names")
    if names and len(names) == model.num_classes:
        return list(names)
    return class_names() if model.num_classes == 1000 else None


def _config(model, args):
    from ..io.imagenet import data_config

    cfg = dict(getattr(model, "pretrained_cfg", None) or data_config(model.name))
    if args.size is not None:
        if args.size < 1:
            raise ValueError(f"--size must be a positive number of pixels, got {args.size}")
        cfg["input_size"] = (3, args.size, args.size)
    if args.crop_pct is not None:
        if not 0 < args.crop_pct <= 1:
            raise ValueError(f"--crop-pct must be in (0, 1], got {args.crop_pct}")
        cfg["crop_pct"], cfg["resize_size"] = args.crop_pct, None
    if args.resize is not None:
        if args.resize < cfg["input_size"][-1]:
            raise ValueError(f"--resize {args.resize} is smaller than the crop {cfg['input_size'][-1]}")
        cfg["resize_size"] = args.resize
    if args.interpolation:
        cfg["interpolation"] = args.interpolation
    return cfg


def predict(model, paths, cfg, k=5, batch_size=8):
    """``[(path, indices, probabilities)]`` for each image (top ``k``, best first)."""
    from ..io.imagenet import preprocess, read_image, topk

    images = [read_image(p) for p in paths]  # read all first: a bad file fails before any work
    out = []
    for i in range(0, len(images), batch_size):
        x = np.stack([preprocess(img, cfg) for img in images[i:i + batch_size]]).astype(model.dtype)
        with no_grad():                      # inference only: keep nothing for a backward
            idx, probs = topk(model(x), k)
        out += [(paths[i + j], idx[j], probs[j]) for j in range(len(idx))]
    return out


def run(args):
    from ..io import MissingExtra, load

    if args.topk < 1:
        raise ValueError(f"--topk must be at least 1, got {args.topk}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    for p in args.images:
        if not os.path.isfile(p):
            raise FileNotFoundError(f"no such image: {p}")
    try:
        model = load(args.weights, args.model)
    except MissingExtra as e:
        raise ValueError(str(e)) from e
    if getattr(model, "features_only", False) or not model.num_classes:
        raise ValueError(f"{args.weights}: the model has no classifier, so there is nothing to predict")
    cfg = _config(model, args)
    labels = labels_for(model)
    results = predict(model.eval(), args.images, cfg, args.topk, args.batch_size)
    name = model.name + (f" [{cfg['tag']}]" if cfg.get("tag") else "")
    if args.json:
        doc = {"model": model.name, "tag": cfg.get("tag"), "weights": args.weights,
               "preprocessing": {k: cfg.get(k) for k in ("input_size", "resize_size", "crop_pct",
                                                         "interpolation", "mean", "std", "crop_mode")},
               "predictions": [{"image": p, "top": [
                   {"index": int(i), "label": labels[i] if labels else None, "probability": float(q)}
                   for i, q in zip(idx, probs)]} for p, idx, probs in results]}
        print(json.dumps(doc, indent=2))
        return 0
    size = cfg["input_size"][-1]
    resize = cfg.get("resize_size") or math.floor(size / cfg["crop_pct"])
    print(f"{name} ({args.weights}): resize {resize} {cfg['interpolation']}, "
          f"crop {size}x{size}, mean {tuple(cfg['mean'])}, std {tuple(cfg['std'])}")
    for p, idx, probs in results:
        print(p)
        for rank, (i, q) in enumerate(zip(idx, probs), start=1):
            label = labels[i] if labels else f"class {i}"
            print(f"  {rank}. {100 * q:6.2f}%  {i:>5d}  {label}")
    return 0
