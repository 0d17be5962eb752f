"""Training-step benchmark: one SGD step of a whole MobileNet, npmobilenet against PyTorch.

A step is forward, label-smoothed cross-entropy, backward and a Nesterov-SGD update, on one batch
of the digits as ``npmobilenet train`` feeds them (same model, resolution, batch size and
settings as the default run).  When torch and timm are importable, the same step runs in
PyTorch on the CPU, on ``timm.create_model`` of the same name with the SAME initial weights
(copied over), with the same thread count; the first step's losses are printed side by side as
the check that both compute the same thing.  Times are medians over ``--steps`` steps after two
warm-up steps, the engines taking turns (``_alternating``); images/s = batch size / median step
time.

Run (torch is in a separate environment here)::

    python -m npmobilenet.bench.train_step [--model M] [--size 32] [--batch-size 64] [--steps 20] [--threads 2]
    PYTHONPATH=. /path/to/venv-with-torch/bin/python -m npmobilenet.bench.train_step

``--epochs N`` additionally trains N epochs with the default recipe in both libraries on the
same batches (same order and augmentation) and reports test accuracy and wall time of each.
"""
import os
import sys

if "numpy" not in sys.modules:   # BLAS reads its thread count once, when numpy loads
    _t = next((sys.argv[i + 1] for i, a in enumerate(sys.argv[:-1]) if a == "--threads"), "2")
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(_var, _t)

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from ..train.config import TrainConfig  # noqa: E402
from ..train.loop import Trainer, build_schedule  # noqa: E402


def _alternating(engines, batches, steps):
    """``{name: (median seconds per step, median CPU seconds per step, first loss)}``.

    Two warm-up steps each (JIT compilation, allocator, caches), then the engines take turns, one
    step each, swapping which goes first every round, so that a change of load on a shared
    machine hits both alike.  CPU time is the process's (all threads): on a busy machine wall time
    mostly measures waiting for a core, so read both.
    """
    first = {name: step(*batches[0]) for name, step in engines.items()}
    for name, step in engines.items():
        step(*batches[1 % len(batches)])
    wall, cpu = {n: [] for n in engines}, {n: [] for n in engines}
    names = list(engines)
    for i in range(steps):
        x, y = batches[i % len(batches)]
        for name in (names if i % 2 == 0 else names[::-1]):
            t, c = time.perf_counter(), time.process_time()
            engines[name](x, y)
            wall[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
    return {n: (statistics.median(wall[n]), statistics.median(cpu[n]), first[n]) for n in engines}


def torch_twin(trainer):
    """``(model, optimizer, criterion)`` in PyTorch, matching the trainer's, with its current weights."""
    import timm
    import torch

    c = trainer.config
    kw = dict(num_classes=len(trainer.classes), drop_rate=c.drop_rate)
    if c.width is not None:
        raise SystemExit("--width: timm has no width override for a model name; compare a named width instead")
    model = timm.create_model(c.model, **kw)
    if c.small_input:   # the same change as npmobilenet's small_input: stem and first strided block at stride 1
        model.conv_stem.stride = (1, 1)
        first = next(m for m in model.blocks.modules() if isinstance(m, torch.nn.Conv2d) and m.stride != (1, 1))
        first.stride = (1, 1)
    sd = {k: torch.from_numpy(np.array(v)) for k, v in trainer.model.state_dict().items()}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if unexpected or any(not k.endswith("num_batches_tracked") for k in missing):
        raise SystemExit(f"timm's {c.model} has other tensors: missing {missing}, unexpected {unexpected}")
    from ..train.optim import decays
    groups = [{"params": [p for n, p in model.named_parameters() if decays(n, p.detach().numpy()) == on],
               "weight_decay": c.decay if on else 0.0} for on in (False, True)]
    if c.optimizer != "sgd":
        raise SystemExit("the torch twin implements the sgd recipe only")
    opt = torch.optim.SGD(groups, lr=c.learning_rate, momentum=0.9, nesterov=True)
    return model.train(), opt, torch.nn.CrossEntropyLoss(label_smoothing=c.label_smoothing)


def bench_steps(trainer, steps):
    """Step times of npmobilenet and (if importable) PyTorch on the same batches and weights."""
    batches = [b for _, b in zip(range(4), trainer.train_loader.epoch(0))]
    engines, version = {}, None
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        model, opt, crit = torch_twin(trainer)     # built first: it copies the initial weights
        torch.set_num_threads(trainer_threads())
        version = torch.__version__

        def torch_step(x, y):
            opt.zero_grad(set_to_none=True)
            loss = crit(model(torch.from_numpy(x)), torch.from_numpy(y))
            loss.backward()
            opt.step()
            return float(loss.detach())
        engines["torch"] = torch_step
    engines["npmobilenet"] = lambda x, y: trainer.train_step(x, y)[0]
    return _alternating(engines, batches, steps), version


def trainer_threads():
    from ..kernels.threads import num_threads
    return num_threads()


def torch_run(trainer):
    """Train the torch twin with the trainer's recipe on the same batches, with the same weight
    average (TF's warm-up rule, as ``ModelEma``); returns (test accuracy, training seconds)."""
    import torch

    model, opt, crit = torch_twin(trainer)
    torch.set_num_threads(trainer_threads())
    sched, decay = build_schedule(trainer.config, trainer.steps_per_epoch), trainer.config.ema
    ema = {k: v.detach().clone() for k, v in model.state_dict().items()} if decay else None
    t0, step = time.perf_counter(), 0
    for e in range(trainer.config.epochs):
        model.train()
        for x, y in trainer.train_loader.epoch(e):
            for g in opt.param_groups:
                g["lr"] = sched(step)
            opt.zero_grad(set_to_none=True)
            crit(model(torch.from_numpy(x)), torch.from_numpy(y)).backward()
            opt.step()
            if ema is not None:
                d = min(decay, (1 + step) / (10 + step))
                with torch.no_grad():
                    for k, v in model.state_dict().items():
                        if v.is_floating_point():
                            ema[k].mul_(d).add_(v, alpha=1 - d)
            step += 1
    seconds = time.perf_counter() - t0
    if ema is not None:
        model.load_state_dict(ema)
    model.eval()
    with torch.no_grad():
        correct = sum(int((model(torch.from_numpy(x)).argmax(1).numpy() == y).sum()) for x, y in trainer.test_loader)
    return correct / trainer.test_loader.num_samples, seconds


def main(argv=None):
    d = TrainConfig()
    p = argparse.ArgumentParser(prog="python -m npmobilenet.bench.train_step", description=__doc__.split("\n")[0])
    p.add_argument("--model", default=d.model)
    p.add_argument("--size", type=int, default=d.size)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--small-input", action="store_true")
    p.add_argument("--steps", type=int, default=20, help="timed steps (after 2 warm-up steps)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs", type=int, default=0, help="also train this many epochs in both libraries")
    args = p.parse_args(argv)
    from ..train.threads import set_threads
    set_threads(args.threads)
    cfg = TrainConfig(model=args.model, size=args.size, batch_size=args.batch_size, small_input=args.small_input,
                      optimizer="sgd", epochs=args.epochs or d.epochs)
    print(f"{cfg.model} at {cfg.size}x{cfg.size}{' (small input)' if cfg.small_input else ''}, batch "
          f"{cfg.batch_size}, sgd, {args.threads} threads; median of {args.steps} steps")
    # no dropout in the timed steps, so the two first losses must agree (the masks would differ)
    res, version = bench_steps(Trainer(cfg.replace(drop_rate=0.0), None), args.steps)
    for name in ("npmobilenet", "torch"):
        if name in res:
            wall, cpu, loss = res[name]
            label = name if name == "npmobilenet" else f"torch {version}"
            print(f"  {label:<20} {1000 * wall:8.1f} ms/step  {cfg.batch_size / wall:7.1f} images/s  "
                  f"CPU {1000 * cpu:7.1f} ms/step  first loss {loss:.6f}")
    if "torch" in res:
        print(f"  npmobilenet / torch: step time {res['npmobilenet'][0] / res['torch'][0]:.2f}x, "
              f"CPU time {res['npmobilenet'][1] / res['torch'][1]:.2f}x")
    else:
        print("  (torch not importable: no comparison)")
    if args.epochs:
        print(f"the whole default recipe ({cfg.epochs} epochs, dropout {cfg.drop_rate}, EMA {cfg.ema}), "
              "same batches in both; times are of the training steps only")
        ours = Trainer(cfg, None, tty=False)
        ours.fit()
        secs = sum(r["seconds"] for r in ours.history)
        print(f"  {args.epochs} epochs, npmobilenet: test accuracy {100 * ours.history[-1]['test_acc']:.2f}%, "
              f"training steps {secs:.0f} s ({ours.train_loader.num_samples * args.epochs / secs:.0f} images/s)")
        if "torch" in res:
            acc, secs = torch_run(Trainer(cfg, None, tty=False))
            print(f"  {args.epochs} epochs, torch:       test accuracy {100 * acc:.2f}%, "
                  f"training steps {secs:.0f} s ({ours.train_loader.num_samples * args.epochs / secs:.0f} images/s)")

if __name__ == "__main__":
    main()
