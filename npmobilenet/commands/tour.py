"""``npmobilenet tour``: a MobileNetV3 block built, run forward and backward, and its gradients checked.

The block is the one MobileNetV3 repeats (Howard et al., 2019, Fig. 4): 1x1 expand, hard-swish,
k x k depthwise, squeeze-and-excite, 1x1 linear projection, and the skip.  Its gradients are checked
against central finite differences in float64, one random direction per tensor.
"""
import time

import numpy as np


def add_arguments(p):
    p.add_argument("--channels", type=int, default=16, help="block input/output channels (default 16)")
    p.add_argument("--expand", type=int, default=64, help="expanded channels (default 64)")
    p.add_argument("--kernel", type=int, default=5, help="depthwise kernel size, odd (default 5)")
    p.add_argument("--size", type=int, default=8, help="input height and width (default 8)")
    p.add_argument("--seed", type=int, default=0)


def run(args):
    from ..blocks.inverted_residual import InvertedResidual
    from ..build import make_divisible
    from ..gradcheck import gradcheck

    if args.kernel < 1 or args.kernel % 2 == 0:
        raise ValueError(f"--kernel must be a positive odd number, got {args.kernel}")
    for name in ("channels", "expand", "size"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be >= 1, got {getattr(args, name)}")
    rd = make_divisible(args.expand / 4)  # the V3 squeeze width, from the expanded channels
    block = InvertedResidual(args.channels, args.expand, args.channels, dw_kernel_size=args.kernel,
                             act_layer="hard_swish", rd_channels=rd, rng=args.seed)
    print(f"A MobileNetV3 block: {args.channels} -> {args.expand} (1x1, hard-swish) -> depthwise "
          f"{args.kernel}x{args.kernel} -> SE (squeeze {rd}) -> {args.channels} (1x1, linear) + skip\n")
    print(block, "\n")
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal((2, args.channels, args.size, args.size)).astype(np.float32)

    t = time.perf_counter()
    y = block(x)
    dx = block.backward(rng.standard_normal(y.shape).astype(np.float32))
    ms = 1e3 * (time.perf_counter() - t)
    print(f"forward  x {x.shape} -> y {y.shape}   (float32)")
    print(f"backward dy {y.shape} -> dx {dx.shape}, and a gradient for each of "
          f"{len(block.grads())} parameter tensors ({block.num_parameters():,} numbers) in {ms:.1f} ms\n")

    block.to(np.float64)
    report = gradcheck(block, x.astype(np.float64), mode="directional", seed=args.seed)
    print(report)
    return 0 if report.passed else 1
