"""Model names: timm's names (and a few short aliases) -> a table plus width and depth multipliers.

Every ``mobilenetv1_*`` ... ``mobilenetv4_*`` name below is registered in timm 1.0.31 with the same
table and multipliers (``timm.models.efficientnet._gen_mobilenet_v1/_v2``,
``timm.models.mobilenetv3._gen_mobilenet_v3/_v4``), except ``mobilenetv1_075/_050/_025``: the
V1 paper's Table 6 widths, which timm builds with ``_gen_mobilenet_v1`` but does not register.
The ``tf_*`` ports (TF 'SAME' padding) and the anti-aliased V4 variants are not provided.
"""
import difflib
import fnmatch
from dataclasses import dataclass

from .table import Arch
from .v1 import V1, V1_HEAD
from .v2 import V2
from .v3 import V3_LARGE, V3_SMALL
from .v4 import V4_CONV_LARGE, V4_CONV_MEDIUM, V4_CONV_SMALL, V4_HYBRID_LARGE, V4_HYBRID_MEDIUM


@dataclass(frozen=True)
class ModelEntry:
    """A named model: its table, width (channel) and depth multipliers.

    fix_first_last: timm's ``fix_stem_head`` (``mobilenetv2_110d/_120d``): the stem and head widths
        and the depths of the first and last stages are not scaled.
    """
    arch: Arch
    width: float = 1.0
    depth: float = 1.0
    fix_first_last: bool = False


MODELS = {
    "mobilenetv1_100": ModelEntry(V1, 1.0),
    "mobilenetv1_100h": ModelEntry(V1_HEAD, 1.0),
    "mobilenetv1_125": ModelEntry(V1, 1.25),
    "mobilenetv1_075": ModelEntry(V1, 0.75),   # not registered in timm (paper Table 6)
    "mobilenetv1_050": ModelEntry(V1, 0.5),    # not registered in timm (paper Table 6)
    "mobilenetv1_025": ModelEntry(V1, 0.25),   # not registered in timm (paper Table 6)
    "mobilenetv2_035": ModelEntry(V2, 0.35),
    "mobilenetv2_050": ModelEntry(V2, 0.5),
    "mobilenetv2_075": ModelEntry(V2, 0.75),
    "mobilenetv2_100": ModelEntry(V2, 1.0),
    "mobilenetv2_140": ModelEntry(V2, 1.4),
    "mobilenetv2_110d": ModelEntry(V2, 1.1, depth=1.2, fix_first_last=True),
    "mobilenetv2_120d": ModelEntry(V2, 1.2, depth=1.4, fix_first_last=True),
    "mobilenetv3_large_075": ModelEntry(V3_LARGE, 0.75),
    "mobilenetv3_large_100": ModelEntry(V3_LARGE, 1.0),
    "mobilenetv3_large_150d": ModelEntry(V3_LARGE, 1.5, depth=1.2),
    "mobilenetv3_small_050": ModelEntry(V3_SMALL, 0.5),
    "mobilenetv3_small_075": ModelEntry(V3_SMALL, 0.75),
    "mobilenetv3_small_100": ModelEntry(V3_SMALL, 1.0),
    "mobilenetv4_conv_small_035": ModelEntry(V4_CONV_SMALL, 0.35),
    "mobilenetv4_conv_small_050": ModelEntry(V4_CONV_SMALL, 0.5),
    "mobilenetv4_conv_small": ModelEntry(V4_CONV_SMALL, 1.0),
    "mobilenetv4_conv_medium": ModelEntry(V4_CONV_MEDIUM, 1.0),
    "mobilenetv4_conv_large": ModelEntry(V4_CONV_LARGE, 1.0),
    "mobilenetv4_hybrid_medium_075": ModelEntry(V4_HYBRID_MEDIUM, 0.75),
    "mobilenetv4_hybrid_medium": ModelEntry(V4_HYBRID_MEDIUM, 1.0),
    "mobilenetv4_hybrid_large_075": ModelEntry(V4_HYBRID_LARGE, 0.75),
    "mobilenetv4_hybrid_large": ModelEntry(V4_HYBRID_LARGE, 1.0),
}

# Short names (compared after lower-casing and turning '_' into '-'); torchvision's names too.
ALIASES = {
    "v1": "mobilenetv1_100", "v2": "mobilenetv2_100", "v3": "mobilenetv3_large_100",
    "v3-large": "mobilenetv3_large_100", "v3-small": "mobilenetv3_small_100",
    "v4-conv-small": "mobilenetv4_conv_small", "v4-conv-medium": "mobilenetv4_conv_medium",
    "v4-conv-large": "mobilenetv4_conv_large", "v4-hybrid-medium": "mobilenetv4_hybrid_medium",
    "v4-hybrid-large": "mobilenetv4_hybrid_large",
    "mobilenet-v2": "mobilenetv2_100", "mobilenet-v3-large": "mobilenetv3_large_100",
    "mobilenet-v3-small": "mobilenetv3_small_100",
}


def list_models(pattern=None):
    """Sorted model names, optionally filtered by a shell-style pattern (``'mobilenetv4*'``), as timm's."""
    names = sorted(MODELS)
    return names if pattern is None else [n for n in names if fnmatch.fnmatch(n, pattern)]


def resolve(name):
    """``(canonical name, ModelEntry)`` for a model name or alias; ValueError with close matches otherwise."""
    if not isinstance(name, str):
        raise TypeError(f"create_model: name must be a str such as 'mobilenetv3_large_100', got {type(name).__name__}")
    if name in MODELS:
        return name, MODELS[name]
    key = name.strip().lower().replace("_", "-")
    if key in ALIASES:
        return ALIASES[key], MODELS[ALIASES[key]]
    if name.strip().lower() in MODELS:
        return name.strip().lower(), MODELS[name.strip().lower()]
    close = difflib.get_close_matches(name.strip().lower(), list(MODELS) + list(ALIASES), n=5, cutoff=0.5)
    hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else "see npmobilenet.list_models()"
    raise ValueError(f"unknown model {name!r}; {hint}")
