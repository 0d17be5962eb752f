"""``npmobilenet gradcheck MODEL``: the whole network's backward pass against finite differences.

The directional check (``npmobilenet.gradcheck(model, x, mode="directional")``, STYLE G3), in
float64: for one random unit direction u per parameter tensor, one for the input and one over all
parameters, the central difference [L(θ+hu) − L(θ−hu)] / 2h (h = 1e-5) must equal <∇L, u>
within 1e-6 relative (plus 1e-9·‖∇L‖ absolute).  L = <model(x), r> with a fixed Gaussian r.

Set-up (G1): the parameters are moved off their initial values (exact zeros and ones; the
hybrids' layer scales from 1e-5 to U(0.5, 1.5)) and BN gets non-trivial running statistics, so
eval mode is a real test too.  Train mode uses batch statistics and needs enough values per BN
channel: at 32x32 the last stage is 1x1 (MobileNetV4's ``norm_head`` always is), and a BN over two
values is so curved that h = 1e-5 is too coarse; hence batch 8 in train mode, 2 in eval mode.

Kinks (G4): ReLU, ReLU6, hard-swish and hard-sigmoid have kinks (0, 6, ±3).  If θ ± hu puts some
pre-activation on two sides of one, the central difference is not the derivative and a correct
backward can fail.  ``npmobilenet.gradcheck_network.check_network`` sees such crossings and draws
again (a new u, up to ``--draws`` times per input, then new inputs), then checks at h/10 and h/100;
a tensor that fails along a kink-free direction is also checked at the smaller h, where the
truncation error of a very curved network falls 100x per step and a wrong gradient keeps its
error.  A tensor that fails at every h is a wrong gradient, and the command exits with status 1.

    npmobilenet gradcheck mobilenetv3_small_050 --num-classes 10
    npmobilenet gradcheck mobilenetv4_hybrid_medium --width 0.5 --mode train
"""
import numpy as np


def add_arguments(p):
    p.add_argument("model", help="model name or alias (see npmobilenet.list_models())")
    p.add_argument("--size", type=int, default=32, help="input height and width (default 32)")
    p.add_argument("--batch", type=int, default=None, help="batch size (default 8 in train mode, 2 in eval mode)")
    p.add_argument("--mode", choices=("train", "eval", "both"), default="both",
                   help="BN with batch statistics (train), running statistics (eval), or both (default)")
    p.add_argument("--width", type=float, default=None, help="width multiplier (default: the model's)")
    p.add_argument("--num-classes", type=int, default=10, help="classifier outputs (default 10)")
    p.add_argument("--small-input", action="store_true",
                   help="total stride 8 instead of 32 (the stem and first strided block at stride 1)")
    p.add_argument("--draws", type=int, default=4, help="directions drawn at each h after kink crossings (default 4)")
    p.add_argument("--seed", type=int, default=0,
                   help="seeds the initialisation, the perturbation, the input and the directions (default 0)")


def run(args):
    from ..build import create_model
    from ..gradcheck_network import STEPS, check_network, perturb

    for arg in ("size", "batch", "draws"):
        v = getattr(args, arg)
        if v is not None and v < 1:
            raise ValueError(f"--{arg} must be >= 1, got {v}")
    if args.num_classes < 1:
        raise ValueError(f"--num-classes must be >= 1 (the check differentiates the logits), got {args.num_classes}")
    model = create_model(args.model, num_classes=args.num_classes, width_mult=args.width,
                         small_input=args.small_input, seed=args.seed, dtype=np.float64)
    perturb(model, np.random.default_rng(args.seed))
    modes = ("train", "eval") if args.mode == "both" else (args.mode,)
    n_tensors = len(model.parameters())
    ok = True
    for mode in modes:
        getattr(model, mode)()
        shape = (args.batch or (8 if mode == "train" else 2), model.in_chans, args.size, args.size)
        model.check_input(np.zeros(shape))  # a size or batch the model cannot take: one clear line
        result = check_network(model, lambda k: np.random.default_rng([args.seed, 1, k]).standard_normal(shape),
                               draws=args.draws, seed=args.seed)
        report, inconclusive = result.report(), result.crossed
        smaller_h = {k: h for k, h in result.verified.items() if h != STEPS[0]}
        print(f"{model.name}, {mode} mode: {model.num_parameters():,} parameters in {n_tensors} tensors, "
              f"input {'x'.join(map(str, shape))}, float64")
        print(report)
        passed = result.passed
        if smaller_h:
            print("checked at a smaller h after crossing kinks at h = 1e-5: "
                  + ", ".join(f"{k} ({v:g})" for k, v in smaller_h.items()))
        print(f"{mode} mode: {'PASSED' if passed else 'FAILED'}; {len(report.rows)} directions"
              + (f"; crossed a kink in every draw: {', '.join(inconclusive)}" if inconclusive else "") + "\n")
        ok = ok and passed
    return 0 if ok else 1
