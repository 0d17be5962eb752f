"""The settings of a training run, with the defaults that train a MobileNet on the digits.

One frozen dataclass holds everything that decides the numbers a run produces, so a checkpoint
can store it (as JSON) and a resumed run rebuild exactly the same model, data and optimizer.
What only decides *how fast* (thread count) or *where* (the output folder) is not part of it.

The defaults are the configuration ``npmobilenet train`` runs with no options: MobileNetV3-Small
at width 0.5 on the packaged UCI digits enlarged to 64x64, measured to reach >= 98.5 % test
accuracy within a few minutes on a 2-core laptop CPU (``npmobilenet/train/README.md``).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

# Per-optimizer defaults: (learning rate, weight decay) for a batch of 64.
#   sgd:     Nesterov momentum 0.9, lr 0.1 with cosine decay (Goyal et al. 2017's recipe, scaled to
#            the batch); weight decay 5e-4, ten times the papers' ImageNet 4e-5: 1,437 training
#            images need more regularisation (seeds 0-3: 98.9-99.4 % test accuracy, against
#            98.3 % for seeds 0 and 3 at 5e-5; train/README.md).
#   rmsprop: TF's RMSProp as the MobileNet papers used it (rho 0.9, momentum 0.9, eps 1e-3 as timm's
#            V3 recipe); timm's lr 0.064 for batch 1024 -> 0.004 for 64, weight decay 1e-5 (V3 paper).
#   adamw:   lr 2e-3, decoupled weight decay 0.05 (the V4 recipe's decay, a small-batch lr).
OPTIMIZER_DEFAULTS = {"sgd": (0.1, 5e-4), "rmsprop": (0.004, 1e-5), "adamw": (2e-3, 0.05)}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that fixes a training run's numbers.

    Fields:
    - model: model name (``npmobilenet.list_models()``); width: its width multiplier (None: the
      name's); small_input: stem and first strided block at stride 1 (total stride 8);
      drop_rate: dropout before the classifier.
    - dataset: ``"digits"`` or the path of an image folder (one sub-folder per class, or
      ``train/`` and ``val/`` (or ``test/``) folders of class folders); size: input resolution;
      augment: random shift and zoom of the training images.
    - epochs, batch_size, limit_batches: epochs, images per step, and (for quick checks) at most
      this many batches per epoch (None: all).
    - optimizer ("sgd", "rmsprop", "adamw"), lr, weight_decay (None: ``OPTIMIZER_DEFAULTS``).
    - schedule ("cosine", "exponential", "constant"), warmup_epochs: the learning-rate curve (the
      warm-up takes at most half of the run).
    - label_smoothing; ema: decay of the weight average evaluated instead of the weights (0: off).
    - seed: seeds the initial weights, the split of a folder, the order, augmentation and dropout.
    """
    model: str = "mobilenetv3_small_050"
    width: float | None = None
    small_input: bool = False
    drop_rate: float = 0.2
    dataset: str = "digits"
    size: int = 64
    augment: bool = True
    epochs: int = 15
    batch_size: int = 64
    limit_batches: int | None = None
    optimizer: str = "sgd"
    lr: float | None = None
    weight_decay: float | None = None
    schedule: str = "cosine"
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    ema: float = 0.995
    seed: int = 0

    def __post_init__(self):
        def bad(field, want):
            raise ValueError(f"TrainConfig: {field} must be {want}, got {getattr(self, field)!r}")

        for f in ("epochs", "batch_size", "size"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                bad(f, "a positive int")
        if self.limit_batches is not None and (not isinstance(self.limit_batches, int) or self.limit_batches < 1):
            bad("limit_batches", "None or a positive int")
        if not isinstance(self.seed, int) or self.seed < 0:
            bad("seed", "a non-negative int")
        if self.optimizer not in OPTIMIZER_DEFAULTS:
            bad("optimizer", f"one of {', '.join(OPTIMIZER_DEFAULTS)}")
        if self.schedule not in ("cosine", "exponential", "constant"):
            bad("schedule", "cosine, exponential or constant")
        for f in ("lr", "weight_decay", "width"):
            v = getattr(self, f)
            if v is not None and (not math.isfinite(v) or v < 0 or (f != "weight_decay" and v == 0)):
                bad(f, "None or a positive finite number")
        if not 0 <= self.label_smoothing < 1:
            bad("label_smoothing", "in [0, 1)")
        if not 0 <= self.ema < 1:
            bad("ema", "a decay in [0, 1) (0: no weight average)")
        if not 0 <= self.drop_rate < 1:
            bad("drop_rate", "in [0, 1)")
        if not 0 <= self.warmup_epochs < math.inf:
            bad("warmup_epochs", "a finite number >= 0")

    @property
    def learning_rate(self):
        return OPTIMIZER_DEFAULTS[self.optimizer][0] if self.lr is None else float(self.lr)

    @property
    def decay(self):
        return OPTIMIZER_DEFAULTS[self.optimizer][1] if self.weight_decay is None else float(self.weight_decay)

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d):
        """Rebuild from ``to_dict()`` (a checkpoint's ``config``); unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"TrainConfig: unknown settings {unknown} (a checkpoint from a newer version?)")
        return cls(**d)

    def differences(self, other, ignore=()):
        """``[(field, mine, theirs)]`` for every field that differs, except those in ``ignore``."""
        return [(f.name, getattr(self, f.name), getattr(other, f.name)) for f in dataclasses.fields(self)
                if f.name not in ignore and getattr(self, f.name) != getattr(other, f.name)]

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)
