"""``npmobilenet bench``: timings, three ways.

    npmobilenet bench layers [...]          per-layer fast vs plain vs PyTorch (npmobilenet.bench.layers)
    npmobilenet bench models [...]          whole models against PyTorch CPU (npmobilenet.bench.models)
    npmobilenet bench profile MODEL [...]   per-layer time, MAdds and GFLOP/s (npmobilenet.bench.profile)
    npmobilenet bench train [...]           the default training run against PyTorch (npmobilenet.bench.train_step)

Each has its own ``--help``.
"""


def add_arguments(p):
    sub = p.add_subparsers(dest="bench", metavar="WHAT", required=True)
    # ``layers`` has its own parser (``bench.layers.main``): hand it every argument untouched.  With
    # "+" as the only prefix character, "--quick" or "--help" is a plain word to this sub-parser.
    layers = sub.add_parser("layers", help="layer timings: fast path, plain path and PyTorch",
                            add_help=False, prefix_chars="+")
    layers.add_argument("argv", nargs="*", help="options of npmobilenet.bench.layers")
    train = sub.add_parser("train", help="the default training run: step time and a whole run against PyTorch",
                           add_help=False, prefix_chars="+")
    train.add_argument("argv", nargs="*", help="options of npmobilenet.bench.train_step")
    from ..bench import models, profile
    models.add_arguments(sub.add_parser("models", help="whole models against PyTorch CPU, side by side",
                                        description=models.__doc__.split("\n\n")[0]))
    profile.add_arguments(sub.add_parser("profile", help="per-layer time, MAdds and GFLOP/s of one model",
                                         description=profile.__doc__.split("\n\n")[0]))


def run(args):
    if args.bench == "layers":
        from ..bench import layers
        return layers.main(args.argv)
    if args.bench == "train":
        from ..bench import train_step
        return train_step.main(args.argv)
    if args.bench == "models":
        from ..bench import models
        return models.run(args)
    from ..bench import profile
    return profile.run(args)
