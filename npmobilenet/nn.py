"""The layer library, torch.nn-style: ``from npmobilenet import nn; nn.Conv2d(3, 16, 3, stride=2)``.

Each class is a thin module around a pure forward/backward function pair in ``npmobilenet.ops``.
"""
from .module import Module, Sequential, BackwardBeforeForward  # noqa: F401
from .ops.conv import Conv2d  # noqa: F401
from .ops.batchnorm import BatchNorm2d  # noqa: F401
from .ops.activations import ReLU, ReLU6, Hardsigmoid, Hardswish, GELU, Identity  # noqa: F401
from .ops.linear import Linear  # noqa: F401
from .ops.pooling import GlobalAvgPool2d, Flatten  # noqa: F401
from .ops.dropout import Dropout  # noqa: F401
from .ops.squeeze_excite import SqueezeExcite  # noqa: F401
from .ops.residual import Residual, LayerScale2d  # noqa: F401
from .ops.losses import CrossEntropyLoss  # noqa: F401
