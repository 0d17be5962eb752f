"""Architecture tables: every MobileNet as data (``table`` defines the rows; ``v1`` ... ``v4`` hold the tables).

``npmobilenet.build`` walks a table to build a model; the tables themselves compute nothing.
"""
from .table import (ACT_NAMES, CN, DS, ER, IR, MQA, UIR, Arch, from_arch_def, label,  # noqa: F401
                    parse_block_str, to_block_str)
from .registry import ALIASES, MODELS, ModelEntry, list_models, resolve  # noqa: F401
from .v1 import V1, V1_HEAD  # noqa: F401
from .v2 import V2  # noqa: F401
from .v3 import V3_LARGE, V3_SMALL  # noqa: F401
from .v4 import (V4_CONV_LARGE, V4_CONV_MEDIUM, V4_CONV_SMALL, V4_HYBRID_LARGE,  # noqa: F401
                 V4_HYBRID_MEDIUM)
