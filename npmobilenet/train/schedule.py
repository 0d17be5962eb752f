"""Learning-rate schedules: pure functions of the step number, ``lr = schedule(step)``.

A schedule keeps no state, so resuming from a checkpoint needs only the step count.  Steps count
optimizer updates from 0.  Every schedule can start with a linear warm-up of ``warmup_steps``
steps: ``lr(s) = base_lr * s / warmup_steps`` for ``s < warmup_steps``, so step 0 has lr 0 and step
``warmup_steps`` reaches ``base_lr`` (the convention of Hugging Face's
``get_cosine_schedule_with_warmup``; Goyal et al. 2017, "Accurate, Large Minibatch SGD", for why).
The decay that follows counts its steps from the end of the warm-up.

* ``WarmupCosine``: half a cosine from ``base_lr`` down to ``min_lr`` at ``total_steps``
  (Loshchilov & Hutter, "SGDR", ICLR 2017, without restarts).
* ``ExponentialDecay``: ``base_lr * decay_rate ** (steps / decay_steps)``, as
  ``tf.train.exponential_decay``; with ``staircase`` the exponent is floored, so the rate drops once
  every ``decay_steps``.  The papers: V1/V2 "learning rate decay rate of 0.98 per epoch" (V2
  section 6.1, initial lr 0.045); V3 section 6.1.1 "initial learning rate of 0.1 ... decay rate of
  0.01 every 3 epochs"; timm's V3 recipe uses 0.973 every 2.4 epochs.  Give ``decay_steps`` in
  optimizer steps: ``epochs_per_decay * steps_per_epoch``.
* ``Constant``: ``base_lr`` after the warm-up.
"""
from __future__ import annotations

import math


class Schedule:
    """Base: validation, the warm-up, and ``__call__(step) -> lr``."""

    def __init__(self, base_lr, warmup_steps=0):
        if base_lr < 0:
            raise ValueError(f"{type(self).__name__}: base_lr must be >= 0, got {base_lr}")
        if not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise ValueError(f"{type(self).__name__}: warmup_steps must be an int >= 0, got {warmup_steps!r}")
        self.base_lr, self.warmup_steps = float(base_lr), warmup_steps

    def __call__(self, step):
        if step < 0:
            raise ValueError(f"{type(self).__name__}: step must be >= 0, got {step}")
        if step < self.warmup_steps:
            return self.base_lr * step / self.warmup_steps
        return self.after_warmup(step - self.warmup_steps)

    def after_warmup(self, s):
        raise NotImplementedError

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class Constant(Schedule):
    """``base_lr`` (after an optional warm-up)."""

    def after_warmup(self, s):
        return self.base_lr


class WarmupCosine(Schedule):
    """Linear warm-up, then ``min_lr + (base_lr - min_lr) * (1 + cos(pi * s / S)) / 2``.

    Here ``s`` counts steps after the warm-up and ``S = total_steps - warmup_steps``; from
    ``total_steps`` on the rate stays at ``min_lr``.  Key values: lr(0) = 0 (with a warm-up),
    lr(warmup_steps) = base_lr, lr(warmup_steps + S/2) = (base_lr + min_lr) / 2,
    lr(total_steps) = min_lr.
    """

    def __init__(self, base_lr, total_steps, warmup_steps=0, min_lr=0.0):
        super().__init__(base_lr, warmup_steps)
        if not isinstance(total_steps, int) or total_steps <= warmup_steps:
            raise ValueError(f"WarmupCosine: total_steps must be an int > warmup_steps ({warmup_steps}), "
                             f"got {total_steps!r}")
        if not 0 <= min_lr <= base_lr:
            raise ValueError(f"WarmupCosine: min_lr must be in [0, base_lr], got {min_lr}")
        self.total_steps, self.min_lr = total_steps, float(min_lr)

    def after_warmup(self, s):
        progress = min(1.0, s / (self.total_steps - self.warmup_steps))
        return self.min_lr + (self.base_lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


class ExponentialDecay(Schedule):
    """Linear warm-up, then ``max(min_lr, base_lr * decay_rate ** (s / decay_steps))``.

    With ``staircase`` (TF-slim's choice) the exponent is ``s // decay_steps``.
    """

    def __init__(self, base_lr, decay_rate, decay_steps, staircase=True, warmup_steps=0, min_lr=0.0):
        super().__init__(base_lr, warmup_steps)
        if not 0 < decay_rate <= 1:
            raise ValueError(f"ExponentialDecay: decay_rate must be in (0, 1], got {decay_rate}")
        if decay_steps <= 0:
            raise ValueError(f"ExponentialDecay: decay_steps must be > 0, got {decay_steps}")
        self.decay_rate, self.decay_steps = float(decay_rate), decay_steps
        self.staircase, self.min_lr = bool(staircase), float(min_lr)

    def after_warmup(self, s):
        exponent = s // self.decay_steps if self.staircase else s / self.decay_steps
        return max(self.min_lr, self.base_lr * self.decay_rate ** exponent)


SCHEDULES = {"cosine": WarmupCosine, "exponential": ExponentialDecay, "constant": Constant}


def create_schedule(name, base_lr, **kw):
    """``create_schedule("cosine" | "exponential" | "constant", base_lr, ...)``."""
    if name not in SCHEDULES:
        raise ValueError(f"create_schedule: unknown schedule {name!r}; choose from {', '.join(SCHEDULES)}")
    return SCHEDULES[name](base_lr, **kw)
