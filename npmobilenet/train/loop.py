"""The training loop: epochs of steps, evaluation after each, a checkpoint you can resume from.

One step is the whole of backpropagation, by hand::

    logits = model.forward(x)                  # (B, num_classes)
    loss   = crit.forward(logits, y)           # label-smoothed cross-entropy, a scalar
    model.backward(crit.backward(), input_grad=False)   # grads() now hold dL/dparameter (the images need none)
    optimizer.step(lr=schedule(step))          # the update rule changes the parameters in place
    ema.update(model)                          # (optional) the running average of the weights

After each epoch the model (or its weight average) is evaluated on the test split and the run
folder gets ``checkpoint.npz`` (everything to resume: ``train/checkpoint.py``), ``model.npz``
(the weights to use, loadable with ``npmobilenet.load``), ``history.json`` and
``training_curves.png`` (``train/history.py``).

Reproducibility.  Every random number comes from a seeded generator whose state is either saved
or a function of the position: the initial weights from ``seed``; the order and augmentation of
each batch from ``(seed, epoch, batch)`` (``npmobilenet.data.Loader``); dropout masks from the
layer's own generator, saved in the checkpoint.  A run resumed from a checkpoint therefore takes
exactly the steps the uninterrupted run takes and ends with bit-identical weights.

Faults.  A NaN or infinite loss (or non-finite logits or weights) stops the run with
``TrainingDiverged`` before anything is written, so the last good checkpoint stays on disk.
Ctrl-C finishes the current step, writes a checkpoint at that exact position (even mid-epoch)
and raises ``KeyboardInterrupt``; a second Ctrl-C stops at once, keeping the previous checkpoint.
"""
from __future__ import annotations

import itertools
import math
import os
import signal
import sys
import threading
import time

import numpy as np

from ..ops.losses import CrossEntropyLoss, NonFiniteLogits
from .checkpoint import CHECKPOINT_NAME, TrainingCheckpoint, save_checkpoint
from .config import TrainConfig
from .datasets import make_loaders
from .ema import ModelEma
from .history import plot_history, write_history
from .metrics import evaluate
from .optim import SGD, AdamW, RMSpropTF
from .progress import EpochProgress
from .schedule import Constant, ExponentialDecay, WarmupCosine

MODEL_NAME, HISTORY_NAME, PLOT_NAME = "model.npz", "history.json", "training_curves.png"


class TrainingDiverged(FloatingPointError):
    """The loss, the logits or the weights became NaN or infinite; nothing was saved after it."""


def build_model(config, num_classes):
    """The model of ``config``, initialised from its seed, with ``model.config`` for the manifest."""
    from ..build import create_model

    kwargs = dict(num_classes=num_classes, drop_rate=config.drop_rate, small_input=config.small_input)
    if config.width is not None:
        kwargs["width_mult"] = config.width
    model = create_model(config.model, seed=config.seed, **kwargs)
    if not isinstance(getattr(model, "config", None), dict):
        model.config = {"name": model.name, "kwargs": {k: v for k, v in kwargs.items() if v or k == "num_classes"}}
    return model


def build_optimizer(config, model):
    """The optimizer of ``config`` with timm's weight-decay groups (none for BN and biases)."""
    lr, wd = config.learning_rate, config.decay
    if config.optimizer == "sgd":
        return SGD(model, lr=lr, momentum=0.9, nesterov=True, weight_decay=wd)
    if config.optimizer == "rmsprop":
        return RMSpropTF(model, lr=lr, alpha=0.9, eps=1e-3, momentum=0.9, weight_decay=wd)
    return AdamW(model, lr=lr, weight_decay=wd)


def build_schedule(config, steps_per_epoch):
    """The learning rate per step: warm-up (at most half the run), then cosine / exponential (0.97
    per epoch) / constant."""
    total = config.epochs * steps_per_epoch
    warmup = min(int(round(config.warmup_epochs * steps_per_epoch)), total // 2)
    if config.schedule == "cosine":
        return WarmupCosine(config.learning_rate, total_steps=total, warmup_steps=warmup)
    if config.schedule == "exponential":
        return ExponentialDecay(config.learning_rate, 0.97, steps_per_epoch, warmup_steps=warmup)
    return Constant(config.learning_rate, warmup_steps=warmup)


def _finite(arrays):
    return all(np.isfinite(a).all() for a in arrays)


class Trainer:
    """Train ``config`` (a ``TrainConfig``) and write the run to the folder ``out``.

    Inputs:
    - config: the run's settings; out: the run folder (None: write nothing, e.g. in a notebook).
    - stream, tty: where the progress bar goes (stderr) and whether to draw it in place.
    - callbacks: functions ``f(trainer)`` called after every step (e.g. to stop early or log).

    Use ``Trainer(config, out).fit()``, or ``Trainer.resume(out).fit()`` to continue a run.
    """

    def __init__(self, config, out=None, *, stream=None, tty=None, callbacks=()):
        if not isinstance(config, TrainConfig):
            raise TypeError(f"Trainer: config must be a TrainConfig, got {type(config).__name__}")
        self.config, self.out = config, (os.fspath(out) if out is not None else None)
        self.stream, self.tty, self.callbacks = stream, tty, list(callbacks)
        self.train_loader, self.test_loader = make_loaders(config)
        self.classes = self.train_loader.classes
        self.model = build_model(config, len(self.classes))
        self.optimizer = build_optimizer(config, self.model)
        self.steps_per_epoch = min(len(self.train_loader), config.limit_batches or len(self.train_loader))
        self.schedule = build_schedule(config, self.steps_per_epoch)
        self.ema = ModelEma(self.model, config.ema, warmup=True) if config.ema else None
        self.crit = CrossEntropyLoss(config.label_smoothing)
        self.epoch = self.batch = self.step = 0          # position: batches done in epoch, updates done
        self.history, self.lr = [], 0.0
        self.partial = self._new_partial()
        self.in_step, self.stop_requested, self.saved_at_interrupt = False, False, None

    # ---- resuming ------------------------------------------------------------------------------
    @classmethod
    def resume(cls, path, *, epochs=None, out=None, **kw):
        """A trainer at the position of a checkpoint: ``path`` is a run folder, its checkpoint.npz,
        or a ``TrainingCheckpoint`` already read.

        ``epochs`` (optional) changes the planned length of the run: the learning-rate schedule is
        then recomputed for the new length, so the continuation differs from the original plan.
        """
        ckpt = path if isinstance(path, TrainingCheckpoint) else TrainingCheckpoint(path)
        config = TrainConfig.from_dict(ckpt.config)
        if epochs is not None and epochs != config.epochs:
            config = config.replace(epochs=epochs)
        meta = ckpt.meta
        if meta.get("epoch", 0) > config.epochs:
            raise ValueError(f"{ckpt.path} has already trained {meta['epoch']} epochs; "
                             f"--epochs {config.epochs} is fewer")
        trainer = cls(config, out if out is not None else os.path.dirname(os.path.abspath(ckpt.path)), **kw)
        ckpt.restore(trainer.model, trainer.optimizer, trainer.ema)
        trainer.epoch, trainer.batch, trainer.step = int(meta["epoch"]), int(meta["batch"]), int(meta["step"])
        trainer.lr = float(meta.get("lr", 0.0))
        trainer.partial = dict(meta.get("partial") or trainer._new_partial())
        trainer.history = list(meta.get("history") or [])
        if trainer.batch > trainer.steps_per_epoch:
            raise ValueError(f"{ckpt.path} stopped at batch {trainer.batch}, past the {trainer.steps_per_epoch} "
                             f"batches per epoch of its own settings (inconsistent checkpoint)")
        return trainer

    # ---- the loop ------------------------------------------------------------------------------
    def fit(self):
        """Train until ``config.epochs`` are done; returns the history (list of epoch records)."""
        previous = self._install_sigint()
        try:
            while self.epoch < self.config.epochs:
                self.run_epoch()
        except KeyboardInterrupt:
            # A step is all or nothing: save only at a step boundary (never half an update).
            if not self.in_step and self.out is not None:
                self.saved_at_interrupt = self.save_checkpoint()
            raise
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        return self.history

    def run_epoch(self):
        """Finish the current epoch (from ``self.batch``), evaluate, record and save."""
        cfg, e = self.config, self.epoch
        bar = EpochProgress(e + 1, cfg.epochs, self.steps_per_epoch, self.batch, self.stream, self.tty)
        p, t0, secs0, images0 = self.partial, time.perf_counter(), self.partial["seconds"], self.partial["images"]
        batches = itertools.islice(self.train_loader.epoch(e, start=self.batch), self.steps_per_epoch - self.batch)
        for x, y in batches:
            self.train_step(x, y)
            p["seconds"] = secs0 + (time.perf_counter() - t0)
            rate = (p["images"] - images0) / max(1e-9, p["seconds"] - secs0)
            bar.update(self.batch, rate, loss=p["loss_sum"] / p["images"], acc=p["correct"] / p["images"])
            for cb in self.callbacks:
                cb(self)
            if self.stop_requested:
                raise KeyboardInterrupt
        if not _finite(list(self.model.parameters().values()) + list(self.model.buffers().values())):
            raise self._diverged("the weights or BatchNorm statistics")
        bar.note("evaluating...")
        record = self._end_epoch_record()
        self.history.append(record)
        self.epoch, self.batch, self.partial = e + 1, 0, self._new_partial()
        if self.out is not None:
            self.save()
        bar.close(self.summary(record))
        if self.stop_requested:
            raise KeyboardInterrupt
        return record

    def train_step(self, x, y):
        """One update on the batch ``(x, y)`` and its bookkeeping (position, running sums).

        Returns (loss, number of correct predictions).  ``in_step`` is True from the first change
        of state to the last, so an interrupt never saves half a step.
        """
        self.in_step = True
        # A diverging run overflows before it is caught below; that is reported as an error of its
        # own (TrainingDiverged), so NumPy's overflow warnings would only be noise here.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            logits = self.model.forward(x)
            try:
                loss = self.crit.forward(logits, y)
            except NonFiniteLogits:
                raise self._diverged("the logits") from None
            if not math.isfinite(loss):
                raise self._diverged(f"the loss ({loss})")
            self.model.backward(self.crit.backward(), input_grad=False)   # images need no gradient
            self.lr = self.schedule(self.step)
            self.optimizer.step(lr=self.lr)
            if self.ema is not None:
                self.ema.update(self.model)
        loss, correct = float(loss), int((logits.argmax(axis=1) == y).sum())
        self.step += 1
        self.batch += 1
        p = self.partial
        p["loss_sum"] += loss * len(y)
        p["correct"] += correct
        p["images"] += len(y)
        self.in_step = False
        return loss, correct

    def evaluate(self):
        """Test-split metrics (``metrics.evaluate``) of the weights in use (the average, with --ema)."""
        if self.ema is None:
            return evaluate(self.model, self.test_loader)
        with self.ema.swapped_in(self.model):
            return evaluate(self.model, self.test_loader)

    def _end_epoch_record(self):
        p, test = self.partial, self.evaluate()
        n = max(1, p["images"])
        return {"epoch": self.epoch + 1, "train_loss": p["loss_sum"] / n, "train_acc": p["correct"] / n,
                "test_loss": test["loss"], "test_acc": test["accuracy"], "lr": self.lr,
                "seconds": p["seconds"], "images_per_s": p["images"] / max(1e-9, p["seconds"])}

    @staticmethod
    def summary(r):
        return (f"train loss {r['train_loss']:.4f} acc {100 * r['train_acc']:.2f}%  |  test loss "
                f"{r['test_loss']:.4f} acc {100 * r['test_acc']:.2f}%  |  lr {r['lr']:.3g}  |  "
                f"{r['seconds']:.1f} s, {r['images_per_s']:.0f} img/s")

    # ---- files ---------------------------------------------------------------------------------
    def path(self, name):
        return os.path.join(self.out, name)

    def save_checkpoint(self):
        """Write ``checkpoint.npz`` at the current position; returns its path."""
        os.makedirs(self.out, exist_ok=True)
        meta = {"config": self.config.to_dict(), "epoch": self.epoch, "batch": self.batch, "step": self.step,
                "lr": self.lr, "partial": self.partial, "history": self.history}
        return save_checkpoint(self.path(CHECKPOINT_NAME), self.model, self.optimizer, self.ema, meta)

    def save(self):
        """The end-of-epoch files: checkpoint (first: it is what --resume needs), weights, history, plot."""
        from ..io import save as save_weights

        self.save_checkpoint()
        last = self.history[-1]
        meta = {"dataset": self.config.dataset, "size": self.config.size, "classes": list(self.classes),
                "mean": [float(v) for v in self.train_loader.mean], "std": [float(v) for v in self.train_loader.std],
                "epoch": last["epoch"], "test_acc": last["test_acc"], "ema": bool(self.ema),
                "train_config": self.config.to_dict()}
        if self.ema is None:
            save_weights(self.model, self.path(MODEL_NAME), meta)
        else:
            with self.ema.swapped_in(self.model):
                save_weights(self.model, self.path(MODEL_NAME), meta)
        write_history(self.path(HISTORY_NAME), self.history)
        plot_history(self.history, self.path(PLOT_NAME), title=f"{self.model.name} on {self.config.dataset}")

    # ---- faults --------------------------------------------------------------------------------
    def _diverged(self, what):
        last = (f"the last good checkpoint is {self.path(CHECKPOINT_NAME)} (after epoch {self.epoch})"
                if self.out is not None and os.path.exists(self.path(CHECKPOINT_NAME)) else "no checkpoint was written")
        return TrainingDiverged(
            f"training diverged: {what} became NaN or infinite at epoch {self.epoch + 1}, batch {self.batch + 1} "
            f"(step {self.step + 1}, learning rate {self.schedule(self.step):.3g}); stopped without saving; {last}. "
            f"Try a smaller --lr (this run: {self.config.learning_rate:g}) or a longer --warmup-epochs")

    def _install_sigint(self):
        """First Ctrl-C: finish the step (or the evaluation and saving), save, stop.  Second: stop at
        once without saving.  (Signal handlers exist in the main thread only.)"""
        if threading.current_thread() is not threading.main_thread():
            return None

        def handler(signum, frame):
            if self.stop_requested:
                self.in_step = True      # stopping anywhere: the state may be half-updated, do not save
                raise KeyboardInterrupt
            self.stop_requested = True
            sys.stderr.write("\nstopping at the end of this step to save a checkpoint (Ctrl-C again to stop now)\n")

        return signal.signal(signal.SIGINT, handler)

    @staticmethod
    def _new_partial():
        return {"loss_sum": 0.0, "correct": 0, "images": 0, "seconds": 0.0}
