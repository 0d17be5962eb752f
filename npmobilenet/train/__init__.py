"""Training building blocks: optimizers, learning-rate schedules, an EMA of the weights.

* ``optim``: ``SGD`` (PyTorch's), ``RMSpropTF`` (TensorFlow's, the MobileNet papers'), ``AdamW``
  (PyTorch's), ``param_groups`` (timm's weight-decay exclusion of BN parameters and biases),
  ``create_optimizer``.
* ``schedule``: ``WarmupCosine``, ``ExponentialDecay``, ``Constant``, ``create_schedule``.
* ``ema``: ``ModelEma`` with ``swapped_in(model)`` for evaluating the averaged weights.
"""
from .optim import SGD, RMSpropTF, AdamW, Optimizer, param_groups, create_optimizer  # noqa: F401
from .schedule import WarmupCosine, ExponentialDecay, Constant, Schedule, create_schedule  # noqa: F401
from .ema import ModelEma  # noqa: F401
