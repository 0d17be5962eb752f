"""``npmobilenet train``: train a MobileNet on the packaged digits (or your image folder) on the CPU.

With no options it trains MobileNetV3-Small (width 0.5) on the UCI digits enlarged to 32x32 and
reaches about 99 % test accuracy in a few minutes on a laptop::

    npmobilenet train                                   # defaults; writes runs/digits-mobilenetv3_small_050
    npmobilenet train --model mobilenetv2_050 --epochs 20 --optimizer adamw --out runs/v2
    npmobilenet train --resume --out runs/v2            # continue after Ctrl-C, bit for bit
    npmobilenet train --dataset path/to/folder --size 64  # one sub-folder per class

The run folder gets ``checkpoint.npz`` (everything to resume), ``model.npz`` (the weights, for
``npmobilenet evaluate`` / ``predict`` / ``npmobilenet.load``), ``history.json`` and
``training_curves.png``.  The defaults are those of ``npmobilenet.train.config.TrainConfig``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from ..train.config import OPTIMIZER_DEFAULTS, TrainConfig

D = TrainConfig()
# option -> TrainConfig field, for the options that are part of the run's settings
FIELDS = {"model": "model", "width": "width", "small_input": "small_input", "drop_rate": "drop_rate",
          "dataset": "dataset", "size": "size", "augment": "augment", "epochs": "epochs",
          "batch_size": "batch_size", "limit_batches": "limit_batches", "optimizer": "optimizer", "lr": "lr",
          "weight_decay": "weight_decay", "schedule": "schedule", "warmup_epochs": "warmup_epochs",
          "label_smoothing": "label_smoothing", "ema": "ema", "seed": "seed"}


def add_arguments(p):
    lr_defaults = ", ".join(f"{k} {lr:g}" for k, (lr, _) in OPTIMIZER_DEFAULTS.items())
    wd_defaults = ", ".join(f"{k} {wd:g}" for k, (_, wd) in OPTIMIZER_DEFAULTS.items())
    g = p.add_argument_group("model")
    g.add_argument("--model", help=f"model name, see `npmobilenet summary --list` (default {D.model})")
    g.add_argument("--width", type=float, metavar="W", help="width multiplier (default: the name's)")
    g.add_argument("--small-input", action=argparse.BooleanOptionalAction, default=None,
                   help="stem and first strided block at stride 1 (total stride 8), for small images: "
                        "4x the activations and about 4x the time (default off)")
    g.add_argument("--drop-rate", type=float, metavar="P",
                   help=f"dropout before the classifier (default {D.drop_rate})")
    g = p.add_argument_group("data")
    g.add_argument("--dataset", metavar="digits|PATH",
                   help="'digits' (packaged, offline) or a folder with one sub-folder of images per class "
                        "(or train/ and val/ folders of them) (default digits)")
    g.add_argument("--size", type=int, metavar="S", help=f"input resolution in pixels (default {D.size})")
    g.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="random shift and zoom of the training images (default on)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, metavar="N", help=f"epochs (default {D.epochs})")
    g.add_argument("--batch-size", type=int, metavar="B", help=f"images per step (default {D.batch_size})")
    g.add_argument("--optimizer", choices=list(OPTIMIZER_DEFAULTS), help=f"update rule (default {D.optimizer})")
    g.add_argument("--lr", type=float, help=f"peak learning rate (default: {lr_defaults})")
    g.add_argument("--weight-decay", type=float, metavar="WD", help=f"weight decay, not on BN or biases "
                   f"(default: {wd_defaults})")
    g.add_argument("--schedule", choices=["cosine", "exponential", "constant"],
                   help=f"learning-rate decay after the warm-up (default {D.schedule})")
    g.add_argument("--warmup-epochs", type=float, metavar="E", help=f"linear warm-up (default {D.warmup_epochs:g})")
    g.add_argument("--label-smoothing", type=float, metavar="EPS", help=f"(default {D.label_smoothing})")
    g.add_argument("--ema", type=float, metavar="DECAY", help="evaluate and save a moving average of the "
                   f"weights with this decay; 0 turns it off (default {D.ema})")
    g.add_argument("--seed", type=int, help=f"seeds weights, split, order, augmentation, dropout (default {D.seed})")
    g.add_argument("--limit-batches", type=int, help=argparse.SUPPRESS)   # for quick checks and CI
    g = p.add_argument_group("run")
    g.add_argument("--out", metavar="DIR", help="run folder (default runs/<dataset>-<model>, numbered if taken)")
    g.add_argument("--resume", nargs="?", const=True, metavar="PATH",
                   help="continue the run in --out (or in PATH: a run folder or its checkpoint.npz)")
    g.add_argument("--overwrite", action="store_true", help="start afresh in a --out that holds a run")
    g.add_argument("--threads", type=int, metavar="T", help="CPU threads (default: all cores)")


def _option(field):
    return "--no-augment" if field == "augment" else f"--{field.replace('_', '-')}"


def _given(args):
    return {f: getattr(args, a) for a, f in FIELDS.items() if getattr(args, a) is not None}


def _default_out(config):
    name = "digits" if config.dataset == "digits" else os.path.basename(os.path.normpath(config.dataset))
    base = os.path.join("runs", f"{name}-{config.model}")
    out, i = base, 1
    while os.path.exists(out):
        i += 1
        out = f"{base}-{i}"
    return out


def _resume(args, given):
    from ..train.checkpoint import CHECKPOINT_NAME, TrainingCheckpoint
    from ..train.loop import Trainer

    path = args.resume if isinstance(args.resume, str) else args.out
    if path is None:
        raise ValueError("--resume needs the run: --resume --out DIR, or --resume DIR/checkpoint.npz")
    ckpt = TrainingCheckpoint(path)
    stored = TrainConfig.from_dict(ckpt.config)
    clash = [(f, getattr(stored, f), v) for f, v in given.items() if f != "epochs" and getattr(stored, f) != v]
    if clash:
        was = " ".join(f"{_option(f)} {s}" for f, s, _ in clash)
        now = " ".join(f"{_option(f)} {v}" for f, _, v in clash)
        raise ValueError(f"--resume: {ckpt.path} was trained with {was}, not {now}; leave these options out "
                         f"to continue that run, or start a new one with another --out")
    out = args.out or os.path.dirname(os.path.abspath(ckpt.path))
    if args.out and os.path.abspath(os.path.join(out, CHECKPOINT_NAME)) != os.path.abspath(ckpt.path):
        os.makedirs(out, exist_ok=True)
    trainer = Trainer.resume(ckpt, epochs=given.get("epochs"), out=out)
    print(f"resuming {ckpt.path}: epoch {trainer.epoch + 1}, batch {trainer.batch} of {trainer.steps_per_epoch}, "
          f"step {trainer.step}")
    return trainer


def _new(args, given):
    from ..train.checkpoint import CHECKPOINT_NAME
    from ..train.loop import Trainer

    config = TrainConfig(**given)
    out = args.out or _default_out(config)
    if os.path.exists(os.path.join(out, CHECKPOINT_NAME)) and not args.overwrite:
        raise ValueError(f"{out} already holds a training run; continue it with --resume --out {out}, "
                         "start afresh with --overwrite, or choose another --out")
    return Trainer(config, out)


def _header(t):
    c, n_train, n_test = t.config, t.train_loader.num_samples, t.test_loader.num_samples
    from ..kernels.threads import num_threads

    print(f"model    {t.model.name}: {t.model.num_parameters():,} parameters, input 3x{c.size}x{c.size}"
          f"{' (small-input stem)' if c.small_input else ''}, {len(t.classes)} classes")
    print(f"data     {c.dataset}: {n_train} training / {n_test} test images"
          f"{', shift+zoom augmentation' if c.augment else ''}")
    print(f"optim    {c.optimizer} lr {c.learning_rate:g}, weight decay {c.decay:g}, {c.schedule} schedule with "
          f"{c.warmup_epochs:g} warm-up epoch(s), label smoothing {c.label_smoothing:g}"
          f"{f', EMA {c.ema:g}' if c.ema else ''}")
    print(f"run      {c.epochs} epochs x {t.steps_per_epoch} steps of {c.batch_size}, seed {c.seed}, "
          f"{num_threads()} threads -> {t.out}", flush=True)


def run(args):
    if args.threads is not None:
        from ..train.threads import set_threads
        set_threads(args.threads)
    given = _given(args)
    if args.augment is not None:
        given["augment"] = args.augment
    trainer = _resume(args, given) if args.resume else _new(args, given)
    if trainer.epoch >= trainer.config.epochs:
        print(f"nothing to do: the run has already trained all its epochs ({trainer.epoch}); "
              f"pass a larger --epochs to train on")
        return 0
    _header(trainer)
    t0, cpu0 = time.perf_counter(), time.process_time()
    try:
        history = trainer.fit()
    except KeyboardInterrupt:
        if trainer.saved_at_interrupt:
            print(f"\ninterrupted at epoch {trainer.epoch + 1}, batch {trainer.batch}: saved "
                  f"{trainer.saved_at_interrupt}\ncontinue with: npmobilenet train --resume --out {trainer.out}",
                  file=sys.stderr)
        else:
            print("\ninterrupted in the middle of a step: no new checkpoint; the run folder keeps the last one",
                  file=sys.stderr)
        return 130
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    last, best = history[-1], max(history, key=lambda r: r["test_acc"])
    train_s = sum(r["seconds"] for r in history)
    rate = sum(r["images_per_s"] * r["seconds"] for r in history) / max(train_s, 1e-9)
    n_test = trainer.test_loader.num_samples
    print(f"done: test accuracy {100 * last['test_acc']:.2f}% ({round(last['test_acc'] * n_test)}/{n_test}) after "
          f"{last['epoch']} epochs (best {100 * best['test_acc']:.2f}% at epoch {best['epoch']})")
    # CPU time next to wall time: on a busy machine the wall time says more about the neighbours
    print(f"time: {wall:.0f} s wall this session ({cpu:.0f} s of CPU), training steps {train_s:.0f} s "
          f"over the whole run at {rate:.0f} images/s")
    print(f"files: {trainer.out}/{{checkpoint.npz, model.npz, history.json, training_curves.png}}\n"
          f"next:  npmobilenet evaluate --checkpoint {trainer.out}")
    return 0
