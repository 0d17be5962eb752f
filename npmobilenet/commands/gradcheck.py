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
backward can fail.  Every kinked activation records which linear piece each input falls in; a
direction whose two evaluations differ there crossed a kink and is drawn again (a new u, up to
``--draws`` times), then checked at h/10 and h/100 (a wrong gradient keeps its error at any h; a
crossing becomes rarer).  Train-mode BN over few values makes a deep network's gain large (a
1e-5 step of the stem's weights can move the last layers' pre-activations by 1e-3), so early
tensors often need the smaller h.  A direction that fails without crossing a kink is a wrong
gradient, and the command exits with status 1.

    npmobilenet gradcheck mobilenetv3_small_050 --num-classes 10
    npmobilenet gradcheck mobilenetv4_hybrid_medium --width 0.5 --mode train
"""
import zlib
from contextlib import contextmanager

import numpy as np

KINKS = {"ReLU": (0.0,), "ReLU6": (0.0, 6.0), "Hardswish": (-3.0, 3.0), "Hardsigmoid": (-3.0, 3.0)}


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


def prepare(model, rng):
    """G1: parameters off their init values, BN running statistics away from (0, 1)."""
    for name, p in model.parameters().items():
        if name.endswith("layer_scale.gamma"):
            p[...] = rng.uniform(0.5, 1.5, p.shape)
        else:
            p += 0.1 * rng.standard_normal(p.shape) * (np.abs(p).mean() + 0.1)
    for name, b in model.buffers().items():
        if name.endswith("running_mean"):
            b[...] = 0.1 * rng.standard_normal(b.shape)
        elif name.endswith("running_var"):
            b[...] = rng.uniform(0.5, 1.5, b.shape)
    return model


@contextmanager
def activation_regions(model):
    """Per forward of ``model``: one checksum per kinked activation of the pieces its inputs are in."""
    calls, acts = [], [m for m in model.modules() if type(m).__name__ in KINKS]

    def top(x, _f=model.forward):
        calls.append([])
        return _f(x)

    for m in acts:
        def forward(x, _f=m.forward, _k=np.asarray(KINKS[type(m).__name__])):
            calls[-1].append(zlib.crc32(np.searchsorted(_k, x, side="right").astype(np.uint8).tobytes()))
            return _f(x)
        object.__setattr__(m, "forward", forward)
    object.__setattr__(model, "forward", top)
    try:
        yield calls
    finally:
        for m in acts + [model]:
            m.__dict__.pop("forward", None)


class _Subset:
    """The model with only some parameter tensors exposed to the checker (to redraw just those)."""

    def __init__(self, model, names):
        self.model, self.names, self.dtype = model, list(names), model.dtype

    def forward(self, x):
        return self.model.forward(x)

    def backward(self, dy):
        return self.model.backward(dy)

    def parameters(self):
        p = self.model.parameters()
        return {k: p[k] for k in self.names}

    def grads(self):
        g = self.model.grads()
        return {k: g[k] for k in self.names}


def check(model, x, draws=4, steps=(1e-5, 1e-6, 1e-7), seed=0):
    """The directional check with G4's kink handling.  Returns (report, smaller_h, inconclusive).

    A direction that crossed a kink is drawn again, up to ``draws`` times; a tensor still crossing
    is then checked at the next, smaller step h (G4: "re-run at h/10"; a wrong gradient keeps its
    error, a crossing becomes rarer).  ``report`` holds each tensor's first kink-free direction,
    ``smaller_h`` maps the tensors checked at h < 1e-5 to their h, and ``inconclusive`` names the
    tensors whose every direction crossed a kink.
    """
    from ..gradcheck import GradcheckReport, gradcheck

    final, smaller_h, pending, order = {}, {}, None, None
    for h in steps:
        for _ in range(draws):
            full = pending is None or "all parameters" in pending
            target = model if full else _Subset(model, sorted(pending - {"input"}) or list(model.parameters())[:1])
            with activation_regions(model) as calls:
                report = gradcheck(target, x, mode="directional", seed=seed, h=h)
            seed += 1
            if len(calls) != 2 + 2 * len(report.rows):
                raise RuntimeError("gradcheck's evaluation order changed; update commands/gradcheck.py")
            order = order or [r["name"] for r in report.rows]
            pending = set() if pending is None else pending
            for i, r in enumerate(report.rows):
                if r["name"] in final or (r["name"] == "all parameters" and not full):
                    continue  # done, or the all-parameter direction over a subset only
                if calls[2 + 2 * i] != calls[3 + 2 * i]:
                    pending.add(r["name"])
                else:
                    pending.discard(r["name"])
                    final[r["name"]] = r
                    if h != steps[0]:
                        smaller_h[r["name"]] = h
            if not pending:
                break
        if not pending:
            break
    out = GradcheckReport("directional")
    out.rows = [final[name] for name in order if name in final]
    return out, smaller_h, sorted(pending)


def run(args):
    from ..build import create_model

    for arg in ("size", "batch", "draws"):
        v = getattr(args, arg)
        if v is not None and v < 1:
            raise ValueError(f"--{arg} must be >= 1, got {v}")
    if args.num_classes < 1:
        raise ValueError(f"--num-classes must be >= 1 (the check differentiates the logits), got {args.num_classes}")
    model = create_model(args.model, num_classes=args.num_classes, width_mult=args.width,
                         small_input=args.small_input, seed=args.seed, dtype=np.float64)
    prepare(model, np.random.default_rng(args.seed))
    modes = ("train", "eval") if args.mode == "both" else (args.mode,)
    n_tensors = len(model.parameters())
    ok = True
    for mode in modes:
        getattr(model, mode)()
        shape = (args.batch or (8 if mode == "train" else 2), model.in_chans, args.size, args.size)
        model.check_input(np.zeros(shape))  # a size or batch the model cannot take: one clear line
        x = np.random.default_rng([args.seed, 1]).standard_normal(shape)
        report, smaller_h, inconclusive = check(model, x, args.draws, seed=args.seed)
        print(f"{model.name}, {mode} mode: {model.num_parameters():,} parameters in {n_tensors} tensors, "
              f"input {'x'.join(map(str, shape))}, float64")
        print(report)
        passed = report.passed and not inconclusive
        if smaller_h:
            print("checked at a smaller h after crossing kinks at h = 1e-5: "
                  + ", ".join(f"{k} ({v:g})" for k, v in smaller_h.items()))
        print(f"{mode} mode: {'PASSED' if passed else 'FAILED'}; {len(report.rows)} directions"
              + (f"; crossed a kink in every draw: {', '.join(inconclusive)}" if inconclusive else "") + "\n")
        ok = ok and passed
    return 0 if ok else 1
