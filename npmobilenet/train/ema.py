"""Exponential moving average (EMA) of a model's weights, evaluated in place of the raw weights.

After every optimizer step, each parameter AND buffer (BN running statistics) is averaged::

    ema <- decay * ema + (1 - decay) * w

the update of timm's ``ModelEmaV2`` and of TensorFlow's ``tf.train.ExponentialMovingAverage``.
The MobileNetV3 paper (section 6.1.1) evaluates "exponential moving average with decay 0.9999".
The average is a low-pass filter over roughly the last ``1 / (1 - decay)`` steps (5,000 for
0.9998), so it only helps runs that are much longer than that.  TF-slim's trainer passed the global
step as ``num_updates``, which caps the decay at ``(1 + n) / (10 + n)`` after n updates so that
the average follows the weights early on; ``warmup=True`` does the same and is what a short run on
a laptop wants (with ``warmup=False`` and decay 0.9998, 700 steps leave 87 % of the average at the
initial weights).

Use::

    ema = ModelEma(model, decay=0.9998, warmup=True)
    ... opt.step(); ema.update(model) ...
    with ema.swapped_in(model):
        accuracy = evaluate(model)        # runs on the averaged weights
    # the model has its own weights back here
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np


def _live_state(model):
    """``{name: live array}`` of every parameter and buffer, with ``state_dict`` key names."""
    return {**model.parameters(), **model.buffers()}


class ModelEma:
    """A moving average of ``model``'s parameters and buffers.

    Inputs:
    - model: the Module being trained; the average starts as a copy of its current state.
    - decay: weight of the old average per update (0 <= decay < 1).
    - warmup: cap the decay at (1 + n) / (10 + n) for the n-th update (TF's num_updates rule).
    """

    def __init__(self, model, decay=0.9998, warmup=False):
        if not 0 <= decay < 1:
            raise ValueError(f"ModelEma: decay must be in [0, 1), got {decay}")
        self.decay, self.warmup, self.num_updates = float(decay), bool(warmup), 0
        self.shadow = {k: v.copy() for k, v in _live_state(model).items()}

    def current_decay(self):
        """The decay the next ``update`` will use."""
        if self.warmup:
            n = self.num_updates
            return min(self.decay, (1 + n) / (10 + n))
        return self.decay

    def update(self, model):
        """Fold the model's current weights into the average (call after each optimizer step)."""
        live = _live_state(model)
        if live.keys() != self.shadow.keys():
            raise ValueError(f"ModelEma.update: the model's names differ from the average's: "
                             f"{sorted(live.keys() ^ self.shadow.keys())}")
        d = self.current_decay()
        for k, e in self.shadow.items():
            e *= d
            e += (1 - d) * live[k].astype(e.dtype, copy=False)
        self.num_updates += 1

    def set(self, model):
        """Restart the average at the model's current weights."""
        for k, v in _live_state(model).items():
            np.copyto(self.shadow[k], v, casting="unsafe")

    def copy_to(self, model):
        """Overwrite the model's weights with the average (e.g. before saving the final model)."""
        model.load_state_dict(self.shadow)

    @contextmanager
    def swapped_in(self, model):
        """Run the enclosed code with the averaged weights in ``model``, then restore its own."""
        own = model.state_dict()
        model.load_state_dict(self.shadow)
        try:
            yield model
        finally:
            model.load_state_dict(own)

    def state_dict(self):
        """Flat ``{str: ndarray}``: ``decay``, ``warmup``, ``num_updates`` and ``shadow.<name>``."""
        out = {"decay": np.array(self.decay), "warmup": np.array(self.warmup),
               "num_updates": np.array(self.num_updates, dtype=np.int64)}
        out.update({f"shadow.{k}": v.copy() for k, v in self.shadow.items()})
        return out

    def load_state_dict(self, sd):
        """Restore from ``state_dict()``; nothing changes unless every name and shape fits."""
        want = {"decay", "warmup", "num_updates"} | {f"shadow.{k}" for k in self.shadow}
        problems = [f"missing key {k!r}" for k in sorted(want - sd.keys())]
        problems += [f"unexpected key {k!r}" for k in sorted(sd.keys() - want)]
        problems += [f"shadow.{k}: shape {np.shape(sd[f'shadow.{k}'])}, expected {v.shape}"
                     for k, v in self.shadow.items()
                     if f"shadow.{k}" in sd and np.shape(sd[f"shadow.{k}"]) != v.shape]
        if problems:
            raise ValueError("ModelEma.load_state_dict: nothing was loaded;\n  " + "\n  ".join(problems))
        self.decay, self.warmup = float(sd["decay"]), bool(sd["warmup"])
        self.num_updates = int(sd["num_updates"])
        for k, v in self.shadow.items():
            np.copyto(v, sd[f"shadow.{k}"], casting="unsafe")
        return self

    def __repr__(self):
        return (f"ModelEma(decay={self.decay}, warmup={self.warmup}, num_updates={self.num_updates}, "
                f"{len(self.shadow)} tensors)")
