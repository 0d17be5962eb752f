"""``npmobilenet summary MODEL``: parameters, multiply-adds and training memory, layer by layer.

One train-mode forward pass at batch 1 measures every layer (``npmobilenet.summary``); the table
states its convention in the header (1 MAdd = 1 multiply + 1 add; FLOPs ≈ 2 × MAdds), ends with
the exact totals, the elementwise work the MAdds leave out, and, for the papers' models, the
published rounded figures beside this model's.

    npmobilenet summary mobilenetv3_large_100
    npmobilenet summary v4-hybrid-medium --depth 3          # one row per block
    npmobilenet summary mobilenetv1_050 --size 160 --num-classes 10
"""


def add_arguments(p):
    p.add_argument("model", help="model name or alias (see npmobilenet.list_models())")
    p.add_argument("--size", type=int, default=None,
                   help="input height and width (default: the papers' resolution: MobileNetV4 Conv-S 224, "
                        "Conv-M and Hybrid-M 256, Conv-L and Hybrid-L 384; otherwise 224)")
    p.add_argument("--in-chans", type=int, default=3, help="input channels (default 3)")
    p.add_argument("--num-classes", type=int, default=1000, help="classifier outputs (default 1000)")
    p.add_argument("--width", type=float, default=None, help="width multiplier (default: the model's)")
    p.add_argument("--depth", type=int, default=None,
                   help="group the rows by the first N parts of their names: 1 top level, 2 stages, 3 blocks")


def default_size(name):
    """The resolution the papers report ``name`` at (MobileNetV4: 224, 256 or 384), else 224."""
    from ..count import PUBLISHED
    return PUBLISHED[name][0].resolution if name in PUBLISHED else 224


def run(args):
    from ..build import create_model
    from ..count import summary

    for arg in ("size", "in_chans", "num_classes", "depth"):
        v = getattr(args, arg)
        if v is not None and v < (0 if arg == "num_classes" else 1):
            flag = "--" + arg.replace("_", "-")
            raise ValueError(f"{flag} must be {'>= 0' if arg == 'num_classes' else '>= 1'}, got {v}")
    model = create_model(args.model, num_classes=args.num_classes, in_chans=args.in_chans, width_mult=args.width)
    size = args.size or default_size(model.name)
    print(summary(model, (args.in_chans, size, size), depth=args.depth))
    return 0
