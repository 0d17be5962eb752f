"""Optimizers on the ``{name: live array}`` dicts of ``model.parameters()`` / ``model.grads()``.

Three update rules, each written to match a reference implementation exactly:

* ``SGD``: PyTorch's ``torch.optim.SGD`` (momentum, dampening, Nesterov, coupled weight decay).
* ``RMSpropTF``: TensorFlow 1's ``tf.train.RMSPropOptimizer``, the optimizer of the MobileNet
  V1-V3 papers, as timm ports it in ``timm/optim/rmsprop_tf.py``: the mean square starts at ONE
  (TF's ``_create_slots`` uses ``ones_initializer`` for the ``rms`` slot; PyTorch's RMSprop starts
  at zero), eps sits INSIDE the square root, and the learning rate is folded into the momentum
  buffer.  V2 paper section 6.1: "RMSPropOptimizer with both decay and momentum set to 0.9 ...
  weight decay 0.00004"; V3 section 6.1.1: RMSProp, momentum 0.9, weight decay 1e-5.  Note that
  TF-slim's trainer passed ``epsilon=1.0`` (its ``opt_epsilon`` flag) and timm's MobileNetV3
  recipe uses ``--opt-eps 0.001``: a large eps damps the division for parameters whose gradients
  are small (towards plain momentum SGD), where TF's default 1e-10 would scale their steps up
  to about ``lr`` whatever the gradient's size.
* ``AdamW``: PyTorch's ``torch.optim.AdamW`` (Loshchilov & Hutter, "Decoupled Weight Decay
  Regularization", ICLR 2019), with bias correction.

"Exactly" means the same arithmetic in the same order: in float64 the parameters agree with
PyTorch/timm to about 1e-13 relative after many steps; in float32 they differ by a few units in
the last place, because PyTorch's vectorised kernels fuse multiplies and adds.

Weight decay is skipped for BN parameters and biases by timm's rule
(``timm.optim.param_groups_weight_decay``): no decay for any parameter with ``ndim <= 1`` or a
name ending in ``.bias``.  Update rules never modify the gradients (they belong to the model) and
change the parameters in place, so the model sees every step.

Typical use::

    opt = SGD(model, lr=0.1, momentum=0.9, nesterov=True, weight_decay=4e-5)
    for step, (x, y) in enumerate(batches):
        loss = crit.forward(model.forward(x), y)
        model.backward(crit.backward())
        opt.step(lr=schedule(step))
"""
from __future__ import annotations

import math
from fnmatch import fnmatchcase

import numpy as np

from ..module import Module
from ..ops import backend


def decays(name, value, exclude_1d=True, no_weight_decay=()):
    """Whether parameter ``name`` gets weight decay: timm's rule, plus fnmatch patterns to exclude."""
    if exclude_1d and (np.ndim(value) <= 1 or name.endswith(".bias")):
        return False
    return not any(fnmatchcase(name, pat) for pat in no_weight_decay)


def param_groups(params, weight_decay, exclude_1d=True, no_weight_decay=()):
    """Split parameter names into timm's two groups: without and with weight decay.

    Inputs:
    - params: {name: array}, e.g. ``model.parameters()``.
    - weight_decay: the decay of the decayed group.
    - exclude_1d: apply timm's rule (no decay for ndim <= 1 or names ending in ``.bias``).
    - no_weight_decay: extra fnmatch patterns of names that get no decay.

    Returns:
    - [{"names": [...], "weight_decay": 0.0}, {"names": [...], "weight_decay": weight_decay}]
      (a group is left out when empty, as in timm).
    """
    off = [n for n, v in params.items() if not decays(n, v, exclude_1d, no_weight_decay)]
    on = [n for n, v in params.items() if decays(n, v, exclude_1d, no_weight_decay)]
    groups = [{"names": off, "weight_decay": 0.0}, {"names": on, "weight_decay": float(weight_decay)}]
    return [g for g in groups if g["names"]]


class Optimizer:
    """Base class: holds the parameter and gradient dicts, per-parameter state, hyper-parameters.

    Subclasses name their per-parameter state arrays in ``slots``, their hyper-parameters in
    ``hparams`` and implement ``_update(p, g, wd, state)`` for one parameter.
    """
    slots = ()
    hparams = ("lr", "weight_decay")

    def __init__(self, params, grads=None, *, lr, weight_decay=0.0, exclude_1d=True, no_weight_decay=()):
        self._module = None
        if isinstance(params, Module):
            if grads is not None:
                raise TypeError(f"{self._label()}: give a model, or a params dict and a grads dict, not both")
            self._module = params
            params, grads = params.parameters(), params.grads()
        if not isinstance(params, dict) or not isinstance(grads, dict):
            raise TypeError(f"{self._label()}: expected a Module or two dicts name -> array, got "
                            f"{type(params).__name__} and {type(grads).__name__}")
        if params.keys() != grads.keys():
            raise ValueError(f"{self._label()}: params and grads have different names: "
                             f"{sorted(params.keys() ^ grads.keys())}")
        for k, p in params.items():
            if not isinstance(p, np.ndarray) or not np.issubdtype(p.dtype, np.floating):
                raise TypeError(f"{self._label()}: parameter {k!r} must be a float ndarray, got {type(p).__name__}")
            if grads[k].shape != p.shape:
                raise ValueError(f"{self._label()}: grad {k!r} has shape {grads[k].shape}, parameter {p.shape}")
        if lr < 0 or weight_decay < 0:
            raise ValueError(f"{self._label()}: lr and weight_decay must be >= 0, got {lr}, {weight_decay}")
        self.params, self.grads = params, grads
        self.lr, self.weight_decay = float(lr), float(weight_decay)
        self.decay_mask = {k: decays(k, p, exclude_1d, no_weight_decay) for k, p in params.items()}
        self.step_count = 0
        self.state = {slot: {k: self._init_slot(slot, p) for k, p in params.items()} for slot in self.slots}

    def _label(self):
        return type(self).__name__

    def _init_slot(self, slot, p):
        return np.zeros_like(p)

    def step(self, lr=None):
        """Apply one update to every parameter in place; ``lr`` (if given) replaces ``self.lr``."""
        if lr is not None:
            self.lr = float(lr)
        if self._module is not None:
            live = self._module.parameters()
            if any(live.get(k) is not p for k, p in self.params.items()):
                raise RuntimeError(f"{self._label()}.step: the model's parameter arrays were replaced "
                                   f"(by model.to(...)?) after the optimizer was made; make the optimizer last")
        self.step_count += 1
        for k, p in self.params.items():
            wd = self.weight_decay if self.decay_mask[k] else 0.0
            self._update(p, self.grads[k], wd, {s: self.state[s][k] for s in self.slots})

    def _update(self, p, g, wd, state):
        raise NotImplementedError

    # ---- checkpointing: a flat {str: ndarray} dict, so np.savez can store it as it is ----------
    def state_dict(self):
        """Copies of everything the next steps depend on: hyper-parameters, step count, state.

        Keys: ``"optimizer"`` (class name), ``"step"``, ``"hp.<name>"`` and ``"<slot>.<param>"``;
        every value is a NumPy array (0-d for scalars).
        """
        out = {"optimizer": np.array(self._label()), "step": np.array(self.step_count, dtype=np.int64)}
        out.update({f"hp.{h}": np.array(getattr(self, h)) for h in self.hparams})
        for slot in self.slots:
            out.update({f"{slot}.{k}": v.copy() for k, v in self.state[slot].items()})
        return out

    def load_state_dict(self, sd):
        """Restore from ``state_dict()``; the next ``step()`` then continues bit for bit.

        Nothing changes unless everything fits; raises ValueError listing the differences.
        """
        problems = []
        kind = str(np.asarray(sd.get("optimizer", "?")))
        if kind != self._label():
            problems.append(f"checkpoint is for optimizer {kind!r}, this is {self._label()}")
        want = {"optimizer", "step"} | {f"hp.{h}" for h in self.hparams} \
            | {f"{s}.{k}" for s in self.slots for k in self.params}
        problems += [f"missing key {k!r}" for k in sorted(want - sd.keys())]
        problems += [f"unexpected key {k!r}" for k in sorted(sd.keys() - want)]
        for s in self.slots:
            for k, v in self.state[s].items():
                key = f"{s}.{k}"
                if key in sd and np.shape(sd[key]) != v.shape:
                    problems.append(f"{key}: shape {np.shape(sd[key])}, expected {v.shape}")
        if problems:
            raise ValueError(f"{self._label()}.load_state_dict: nothing was loaded;\n  " + "\n  ".join(problems))
        self.step_count = int(sd["step"])
        for h in self.hparams:
            setattr(self, h, np.asarray(sd[f"hp.{h}"]).item())
        for s in self.slots:
            for k, v in self.state[s].items():
                np.copyto(v, sd[f"{s}.{k}"], casting="unsafe")
        return self

    def __repr__(self):
        hp = ", ".join(f"{h}={getattr(self, h)!r}" for h in self.hparams)
        n_off = sum(not d for d in self.decay_mask.values())
        return (f"{self._label()}({len(self.params)} tensors, {n_off} without weight decay, {hp}, "
                f"step={self.step_count})")


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, exactly ``torch.optim.SGD``.

    With g the gradient, p the parameter, mu the momentum, tau the dampening::

        g <- g + wd * p                       (coupled weight decay, an L2 term in the loss)
        v <- g                                 on the first step
        v <- mu * v + (1 - tau) * g            afterwards
        g <- g + mu * v  (Nesterov)   or   g <- v
        p <- p - lr * g

    Nesterov's form is Sutskever et al. (ICML 2013) rewritten for the look-ahead point, as PyTorch
    does; it needs momentum > 0 and no dampening.
    """
    slots = ("momentum_buffer",)
    hparams = ("lr", "momentum", "dampening", "nesterov", "weight_decay")

    def __init__(self, params, grads=None, *, lr, momentum=0.0, dampening=0.0, nesterov=False,
                 weight_decay=0.0, **kw):
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: nesterov=True requires momentum > 0 and dampening = 0")
        if momentum < 0:
            raise ValueError(f"SGD: momentum must be >= 0, got {momentum}")
        self.momentum, self.dampening, self.nesterov = float(momentum), float(dampening), bool(nesterov)
        super().__init__(params, grads, lr=lr, weight_decay=weight_decay, **kw)

    def _update(self, p, g, wd, state):
        v = state["momentum_buffer"]
        if backend.fast() and p.flags.c_contiguous and g.flags.c_contiguous and v.flags.c_contiguous \
                and p.dtype == g.dtype == v.dtype:       # the same arithmetic in one pass (kernels/sgd.py)
            from ..kernels.sgd import sgd
            sgd(p.reshape(-1), g.reshape(-1), v.reshape(-1), self.lr, self.momentum, 1 - self.dampening, wd,
                self.nesterov, self.step_count == 1)
            return
        if wd:
            g = g + wd * p
        if self.momentum:
            if self.step_count == 1:
                v[...] = g
            else:
                v *= self.momentum
                v += (1 - self.dampening) * g
            g = g + self.momentum * v if self.nesterov else v
        p -= self.lr * g


class RMSpropTF(Optimizer):
    """RMSprop as TensorFlow 1 computes it (``ApplyRMSProp``), matching timm's ``RMSpropTF``.

    With rho the decay ("alpha" in timm), mu the momentum::

        g  <- g + wd * p                           (or, decoupled: p <- p * (1 - lr * wd))
        ms <- ms + (1 - rho) * (g^2 - ms)          ms starts at 1, not 0
        mom <- mu * mom + lr * g / sqrt(ms + eps)  (lr_in_momentum, TF's form)
        p  <- p - mom

    Starting ``ms`` at 1 makes the first steps about ``lr * g`` instead of the ``lr / sqrt(1 - rho)``
    -sized jump an all-zero start gives.  Because lr enters the momentum buffer, a change of lr
    takes effect gradually, unlike PyTorch's ``p -= lr * mom`` (``lr_in_momentum=False``).
    """
    slots = ("square_avg", "momentum_buffer")
    hparams = ("lr", "alpha", "eps", "momentum", "weight_decay", "decoupled_decay", "lr_in_momentum")

    def __init__(self, params, grads=None, *, lr=0.01, alpha=0.9, eps=1e-10, momentum=0.0,
                 weight_decay=0.0, decoupled_decay=False, lr_in_momentum=True, **kw):
        if not 0 <= alpha < 1 or eps < 0 or momentum < 0:
            raise ValueError(f"RMSpropTF: need 0 <= alpha < 1, eps >= 0, momentum >= 0; got "
                             f"alpha={alpha}, eps={eps}, momentum={momentum}")
        self.alpha, self.eps, self.momentum = float(alpha), float(eps), float(momentum)
        self.decoupled_decay, self.lr_in_momentum = bool(decoupled_decay), bool(lr_in_momentum)
        super().__init__(params, grads, lr=lr, weight_decay=weight_decay, **kw)

    def _init_slot(self, slot, p):
        return np.ones_like(p) if slot == "square_avg" else np.zeros_like(p)

    def _update(self, p, g, wd, state):
        if wd and self.decoupled_decay:
            p *= 1 - self.lr * wd
        elif wd:
            g = g + wd * p
        ms = state["square_avg"]
        ms += (1 - self.alpha) * (g * g - ms)        # TF's order of operations
        avg = np.sqrt(ms + self.eps)
        if self.momentum > 0:
            mom = state["momentum_buffer"]
            mom *= self.momentum
            if self.lr_in_momentum:
                mom += (self.lr * g) / avg       # torch addcdiv's rounding order: (value * t1) / t2
                p -= mom
            else:
                mom += g / avg
                p -= self.lr * mom
        else:
            p -= (self.lr * g) / avg


class AdamW(Optimizer):
    """Adam with decoupled weight decay, exactly ``torch.optim.AdamW`` (amsgrad off).

    At step t (counting from 1)::

        p <- p * (1 - lr * wd)                     (decoupled: not part of the gradient)
        m <- m + (1 - b1) * (g - m)                (torch's lerp form of b1*m + (1-b1)*g)
        v <- b2 * v + (1 - b2) * g^2
        p <- p - (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    """
    slots = ("exp_avg", "exp_avg_sq")
    hparams = ("lr", "beta1", "beta2", "eps", "weight_decay")

    def __init__(self, params, grads=None, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, **kw):
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1) or eps < 0:
            raise ValueError(f"AdamW: need 0 <= beta < 1 and eps >= 0, got betas={betas}, eps={eps}")
        self.beta1, self.beta2, self.eps = float(betas[0]), float(betas[1]), float(eps)
        super().__init__(params, grads, lr=lr, weight_decay=weight_decay, **kw)

    def _update(self, p, g, wd, state):
        t = self.step_count
        if wd:
            p *= 1 - self.lr * wd
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m += (1 - self.beta1) * (g - m)
        v *= self.beta2
        v += (1 - self.beta2) * (g * g)
        step_size = self.lr / (1 - self.beta1 ** t)
        denom = np.sqrt(v) / math.sqrt(1 - self.beta2 ** t) + self.eps
        p -= (step_size * m) / denom


OPTIMIZERS = {"sgd": SGD, "rmsproptf": RMSpropTF, "adamw": AdamW}


def create_optimizer(name, model, **kw):
    """``create_optimizer("sgd" | "rmsproptf" | "adamw", model, lr=..., ...)`` (timm's names)."""
    key = name.lower().replace("_", "").replace("-", "")
    if key not in OPTIMIZERS:
        raise ValueError(f"create_optimizer: unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[key](model, **kw)
