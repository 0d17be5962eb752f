"""The training checkpoint: everything a run needs to continue bit for bit, in one atomic file.

A run's folder holds ``checkpoint.npz``, one ``.npz`` written with the library's own writer
(``npmobilenet.io.formats.write_file``: atomic, with a manifest that lists every array's shape,
dtype and CRC-32, so a truncated or corrupt file is refused on reading).  Its arrays are::

    model.<name>       the model's state_dict (parameters and BatchNorm running statistics)
    optimizer.<key>    the optimizer's state_dict (step count, hyper-parameters, momentum, ...)
    ema.<key>          the weight average's state_dict, when the run keeps one

and the manifest's ``metadata`` (JSON) holds the rest of the state:

* ``kind``: ``"npmobilenet-training-checkpoint"`` (a plain weights file is not one);
* ``config``: the ``TrainConfig`` of the run (model, data, optimizer, schedule, seed ...);
* ``epoch``, ``batch``: the position, i.e. ``batch`` batches of epoch ``epoch`` (0-based) are
  done; ``step``: optimizer updates so far (the learning-rate schedule is a pure function of it);
* ``rng``: the state of every random generator inside the model (dropout's), by module name.
  The data loader needs none: its order and augmentation are drawn from generators seeded with
  (seed, epoch, batch), so the position is its state;
* ``partial``: the running sums of the unfinished epoch (loss, correct, images, seconds), so a
  run interrupted mid-epoch reports the same epoch record as one that was not;
* ``history``: the per-epoch records so far (``history.json`` is written from it).

Resuming builds the model, optimizer and average from ``config``, loads the arrays into them and
restores the generators: the next step is the step the uninterrupted run would have taken.
"""
from __future__ import annotations

import os

import numpy as np

from ..io import formats
from ..io.errors import CheckpointError
from ..io.manifest import make_manifest

KIND = "npmobilenet-training-checkpoint"
CHECKPOINT_NAME = "checkpoint.npz"
PARTS = ("model", "optimizer", "ema")


def checkpoint_path(path):
    """``path`` itself, or ``path/checkpoint.npz`` when ``path`` is a run folder."""
    path = os.fspath(path)
    return os.path.join(path, CHECKPOINT_NAME) if os.path.isdir(path) else path


def rng_states(model):
    """``{module name: bit-generator state}`` of every module that owns a ``numpy`` Generator."""
    out = {}
    for name, m in model.named_modules():
        rng = m.__dict__.get("rng")
        if isinstance(rng, np.random.Generator):
            out[name] = rng.bit_generator.state
    return out


def set_rng_states(model, states):
    """Restore what ``rng_states`` returned; the module names must be the same."""
    mine = {name for name, m in model.named_modules() if isinstance(m.__dict__.get("rng"), np.random.Generator)}
    if mine != set(states):
        raise CheckpointError(f"the checkpoint has random generators for modules {sorted(states)}, the model "
                              f"for {sorted(mine)}")
    for name, m in model.named_modules():
        if name in states:
            m.rng.bit_generator.state = states[name]


def save_checkpoint(path, model, optimizer, ema=None, meta=None):
    """Write the training checkpoint ``path`` atomically (see the module docstring).

    Inputs:
    - model, optimizer, ema: the objects being trained (``ema`` may be None).
    - meta: JSON-serialisable dict: config, epoch, batch, step, partial, history.

    Returns:
    - path (a str).
    """
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    state.update({f"optimizer.{k}": np.asarray(v) for k, v in optimizer.state_dict().items()})
    if ema is not None:
        state.update({f"ema.{k}": np.asarray(v) for k, v in ema.state_dict().items()})
    metadata = {"kind": KIND, **(meta or {}), "rng": rng_states(model)}
    # The manifest's model record (name, create_model arguments) comes from model.config.
    return formats.write_file(path, state, make_manifest(model, state, metadata))


class TrainingCheckpoint:
    """A training checkpoint read from disk: ``.meta`` (dict), ``.parts['model'|'optimizer'|'ema']``.

    Raises ``CheckpointError`` (a ValueError naming the file) for a corrupt file and for a file
    that is not a training checkpoint (e.g. the ``model.npz`` weights of a run).
    """

    def __init__(self, path):
        self.path = checkpoint_path(path)
        if not os.path.exists(self.path):
            raise FileNotFoundError(f"no training checkpoint at {self.path}")
        state, manifest, _ = formats.read_file(self.path)
        meta = (manifest or {}).get("metadata") or {}
        if meta.get("kind") != KIND:
            raise CheckpointError(f"{self.path} holds model weights only, not a training checkpoint (no "
                                  f"optimizer state or position); resume from the run's {CHECKPOINT_NAME}")
        self.meta, self.model_record = meta, (manifest.get("model") or {})
        self.parts = {p: {} for p in PARTS}
        for k, v in state.items():
            part, _, name = k.partition(".")
            if part not in self.parts:
                raise CheckpointError(f"{self.path}: unexpected array {k!r} in a training checkpoint")
            self.parts[part][name] = v

    @property
    def config(self):
        return dict(self.meta.get("config") or {})

    def restore(self, model, optimizer, ema=None):
        """Load the arrays and generator states into freshly built objects (all or nothing per part)."""
        from ..io.checkpoint import differences

        lines = differences(model, self.parts["model"])
        if lines:
            stored, name = self.model_record.get("name"), getattr(model, "name", type(model).__name__)
            what = f"holds a {stored}, not a {name}" if stored and stored != name else f"does not fit the model {name}"
            shown = lines[:8] + ([f"... and {len(lines) - 8} more differences"] if len(lines) > 8 else [])
            raise CheckpointError(f"{self.path} {what}; nothing was loaded:\n  " + "\n  ".join(shown))
        if (ema is None) != (not self.parts["ema"]):
            raise CheckpointError(f"{self.path} was saved {'without' if ema is not None else 'with'} a weight "
                                  "average (--ema); resume with the same setting")
        try:
            optimizer.load_state_dict(self.parts["optimizer"])
            if ema is not None:
                ema.load_state_dict(self.parts["ema"])
        except ValueError as e:
            raise CheckpointError(f"{self.path}: {e}") from None
        model.load_state_dict(self.parts["model"])
        set_rng_states(model, self.meta.get("rng") or {})
        return self

    def __repr__(self):
        return (f"TrainingCheckpoint({self.path!r}, epoch={self.meta.get('epoch')}, "
                f"batch={self.meta.get('batch')}, step={self.meta.get('step')})")
