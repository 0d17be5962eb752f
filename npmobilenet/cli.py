"""The ``npmobilenet`` command: one sub-command per job, each with ``--help``.

A user's mistake (an unknown model, a missing file, a bad argument) prints one clear line on
stderr and exits with status 2; only a bug in the library shows a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# sub-command -> (module, help).  Each module has ``add_arguments(parser)`` and ``run(args)``;
# they are imported only when their command runs, so ``npmobilenet --help`` is instant.
COMMANDS = {
    "tour": ("npmobilenet.commands.tour", "build a block, run it forward and backward, check its gradients"),
    "summary": ("npmobilenet.commands.summary", "per-layer parameters, MAdds and training memory of a model"),
    "gradcheck": ("npmobilenet.commands.gradcheck", "check a whole model's gradients against finite differences"),
    "predict": ("npmobilenet.commands.predict", "classify images with a model and its weights (top-5, ImageNet names)"),
    "train": ("npmobilenet.commands.train", "train a MobileNet on the packaged digits or your image folder (CPU)"),
    "evaluate": ("npmobilenet.commands.evaluate", "test accuracy and confusion matrix of a trained model"),
    "convert": ("npmobilenet.commands.convert", "convert weights between .npz, .safetensors, .pth and torchvision's layout"),
    "bench": ("npmobilenet.commands.bench", "benchmarks: layers, whole models against PyTorch CPU, per-layer profile"),
}

USER_ERRORS = (ValueError, TypeError, KeyError, FileNotFoundError, IsADirectoryError,
               PermissionError, FloatingPointError)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="npmobilenet",
        description="MobileNets V1-V4 in plain NumPy: hand-written backward passes, checked gradients.")
    from . import __version__
    parser.add_argument("--version", action="version", version=f"npmobilenet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(p)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return importlib.import_module(args._module).run(args) or 0
    except USER_ERRORS as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"npmobilenet {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader went away (`npmobilenet summary X | head`): stop quietly, as Unix tools do
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"npmobilenet {args.command}: interrupted", file=sys.stderr)
        return 130
