"""``python -m npmobilenet.figures [--out DIR] [--quick] [NAME ...]``: regenerate the figures."""
import argparse
import sys
import time

from . import FIGURES, generate


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m npmobilenet.figures",
                                description="Regenerate the figures from the library's own numbers.",
                                epilog="figures: " + "; ".join(f"{k}: {v[1]}" for k, v in FIGURES.items()))
    p.add_argument("names", nargs="*", metavar="NAME", help="figures to draw (default: all)")
    p.add_argument("--out", default="figures", help="output folder (default: ./figures)")
    p.add_argument("--quick", action="store_true", help="cheaper versions, for testing")
    args = p.parse_args(argv)
    unknown = [n for n in args.names if n not in FIGURES]
    if unknown:
        print(f"error: unknown figure(s) {', '.join(unknown)}; choose from {', '.join(FIGURES)}", file=sys.stderr)
        return 2
    for name in args.names or list(FIGURES):
        t = time.time()
        (path,) = generate(args.out, [name], quick=args.quick)
        print(f"{path}  ({time.time() - t:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
