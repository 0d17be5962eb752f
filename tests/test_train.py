"""The training loop: bit-identical resume, interrupts, divergence, checkpoints, history, metrics.

Most tests train on a tiny image folder (30 digits of 3 classes written as PNG files), so that a
run of a few steps plus its evaluations takes a second or two and the folder path is exercised.
"""
import json
import os

import numpy as np
import pytest

from npmobilenet.data import load_digits
from npmobilenet.io.errors import CheckpointError
from npmobilenet.train.checkpoint import CHECKPOINT_NAME, TrainingCheckpoint
from npmobilenet.train.config import TrainConfig
from npmobilenet.train.datasets import make_loaders
from npmobilenet.train.history import plot_history, read_history
from npmobilenet.train.loop import Trainer, TrainingDiverged, build_schedule
from npmobilenet.train.metrics import confusion_matrix, evaluate, format_confusion
from npmobilenet.train.progress import EpochProgress, format_seconds


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """root/<digit>/<i>.png: 10 grey digits each of the classes 0, 1, 2 (8x8 PNGs)."""
    import matplotlib.image as mpimg

    root = tmp_path_factory.mktemp("digits_folder")
    x, y = load_digits()
    for c in range(3):
        (root / str(c)).mkdir()
        for i, idx in enumerate(np.flatnonzero(y == c)[:10]):
            mpimg.imsave(root / str(c) / f"{i}.png", x[idx, 0], cmap="gray", vmin=0, vmax=1)
    return str(root)


def tiny(folder, **kw):
    """A few steps of a small V3 on the folder: dropout and an EMA on, so their state is tested."""
    base = dict(model="mobilenetv3_small_050", dataset=folder, size=32, batch_size=8, epochs=2,
                optimizer="adamw", drop_rate=0.2, ema=0.9, warmup_epochs=0.5, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def final_state(trainer):
    out = {f"model.{k}": v for k, v in trainer.model.state_dict().items()}
    out.update({f"opt.{k}": v for k, v in trainer.optimizer.state_dict().items()})
    out.update({f"ema.{k}": v for k, v in trainer.ema.state_dict().items()})
    return out


def assert_bit_identical(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        np.testing.assert_array_equal(a[k], b[k], err_msg=k, strict=True)


def without_times(history):
    return [{k: v for k, v in r.items() if k not in ("seconds", "images_per_s")} for r in history]


@pytest.fixture(scope="module")
def straight(folder, tmp_path_factory):
    """The uninterrupted reference run: 2 epochs of 3 steps."""
    t = Trainer(tiny(folder), tmp_path_factory.mktemp("straight"), tty=False)
    t.fit()
    return t


def test_straight_run_writes_its_files(straight):
    assert straight.epoch == 2 and straight.step == 6 and straight.steps_per_epoch == 3
    for name in (CHECKPOINT_NAME, "model.npz", "history.json", "training_curves.png"):
        assert os.path.getsize(straight.path(name)) > 0, name
    hist = read_history(straight.path("history.json"))
    assert [r["epoch"] for r in hist] == [1, 2]
    assert set(hist[0]) == {"epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "seconds",
                            "images_per_s"}
    for r in hist:
        assert 0 <= r["train_acc"] <= 1 and 0 <= r["test_acc"] <= 1 and r["seconds"] > 0
        assert np.isfinite(r["train_loss"]) and np.isfinite(r["test_loss"])
    with open(straight.path("training_curves.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    # the weights file is the EMA's and is loadable without naming the model
    import npmobilenet
    m = npmobilenet.load(straight.path("model.npz"))
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, straight.ema.shadow[k])


def test_resume_at_epoch_boundary_is_bit_identical(folder, straight, tmp_path):
    first = Trainer(tiny(folder, epochs=2), tmp_path, tty=False)
    first.run_epoch()                       # one epoch, then a "new process" resumes
    assert TrainingCheckpoint(tmp_path).meta["epoch"] == 1
    resumed = Trainer.resume(tmp_path, tty=False)
    assert (resumed.epoch, resumed.batch, resumed.step) == (1, 0, 3)
    resumed.fit()
    assert_bit_identical(final_state(resumed), final_state(straight))
    assert without_times(resumed.history) == without_times(straight.history)


def test_ctrl_c_mid_epoch_saves_and_resume_is_bit_identical(folder, straight, tmp_path):
    def interrupt_after_4_steps(trainer):
        if trainer.step == 4:
            raise KeyboardInterrupt

    t = Trainer(tiny(folder), tmp_path, tty=False, callbacks=[interrupt_after_4_steps])
    with pytest.raises(KeyboardInterrupt):
        t.fit()
    assert t.saved_at_interrupt == t.path(CHECKPOINT_NAME)
    meta = TrainingCheckpoint(tmp_path).meta
    assert (meta["epoch"], meta["batch"], meta["step"]) == (1, 1, 4)
    assert meta["partial"]["images"] == 8 and len(meta["history"]) == 1
    resumed = Trainer.resume(tmp_path, tty=False)
    resumed.fit()
    assert_bit_identical(final_state(resumed), final_state(straight))
    assert without_times(resumed.history) == without_times(straight.history)


def test_dropout_generator_state_is_part_of_the_checkpoint(folder, straight):
    # with the dropout generator left at its initial state the resumed run would differ
    ckpt = TrainingCheckpoint(straight.out)
    assert list(ckpt.meta["rng"]) == ["dropout"]
    fresh = Trainer(tiny(folder), None, tty=False)
    assert fresh.model.dropout.rng.bit_generator.state != ckpt.meta["rng"]["dropout"]


def test_nan_stops_training_and_keeps_last_good_checkpoint(folder, tmp_path):
    def poison(trainer):
        if trainer.step == 4:                                # in epoch 2, after epoch 1 was saved
            trainer.model.conv_stem.weight[0, 0, 0, 0] = np.nan

    t = Trainer(tiny(folder), tmp_path, tty=False, callbacks=[poison])
    with pytest.raises(TrainingDiverged, match=r"NaN or infinite at epoch 2, batch 2 .*last good checkpoint is "
                                               r".*checkpoint.npz \(after epoch 1\)"):
        t.fit()
    ckpt = TrainingCheckpoint(tmp_path)
    assert ckpt.meta["epoch"] == 1 and ckpt.meta["step"] == 3
    assert all(np.isfinite(v).all() for v in ckpt.parts["model"].values())
    resumed = Trainer.resume(tmp_path, tty=False)           # the good checkpoint still resumes
    assert resumed.step == 3 and np.isfinite(resumed.model.conv_stem.weight).all()


def test_nan_in_last_step_of_epoch_is_not_saved(folder, tmp_path):
    def poison(trainer):
        if trainer.step == 3:                                # the last step of epoch 1
            trainer.model.classifier.weight[...] = np.inf

    t = Trainer(tiny(folder), tmp_path, tty=False, callbacks=[poison])
    with pytest.raises(TrainingDiverged, match="weights or BatchNorm statistics.*no checkpoint was written"):
        t.fit()
    assert not (tmp_path / CHECKPOINT_NAME).exists()


def test_huge_learning_rate_diverges_with_a_clear_message(folder, tmp_path):
    t = Trainer(tiny(folder, optimizer="sgd", lr=1e12, warmup_epochs=0, epochs=3, drop_rate=0.0, ema=0.0),
                tmp_path, tty=False)
    with pytest.raises(TrainingDiverged, match="smaller --lr"):
        t.fit()


def test_corrupt_checkpoint_is_refused(straight, tmp_path):
    data = bytearray(open(straight.path(CHECKPOINT_NAME), "rb").read())
    bad = tmp_path / CHECKPOINT_NAME
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checkpoint.npz"):
        Trainer.resume(bad)
    bad.write_bytes(bytes(data[: len(data) // 3]))           # truncated
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        Trainer.resume(bad)


def test_weights_file_is_not_a_training_checkpoint(straight):
    with pytest.raises(CheckpointError, match="model weights only"):
        Trainer.resume(straight.path("model.npz"))


def test_checkpoint_of_another_model_is_refused(folder, straight):
    other = Trainer(tiny(folder, model="mobilenetv3_small_075"), None, tty=False)
    with pytest.raises(CheckpointError,
                       match=r"(?s)holds a mobilenetv3_small_050, not a mobilenetv3_small_075.*shape.*more differences"):
        TrainingCheckpoint(straight.out).restore(other.model, other.optimizer, other.ema)
    no_ema = Trainer(tiny(folder, ema=0.0), None, tty=False)
    with pytest.raises(CheckpointError, match="weight average"):
        TrainingCheckpoint(straight.out).restore(no_ema.model, no_ema.optimizer, None)


def test_overfits_one_batch(folder):
    # the classic sanity check of a training loop: the loss of one repeated batch must collapse
    t = Trainer(tiny(folder, optimizer="adamw", lr=3e-3, drop_rate=0.0, ema=0.0, label_smoothing=0.0,
                     warmup_epochs=0, augment=False, epochs=50), None, tty=False)
    x, y = next(iter(t.train_loader.epoch(0)))
    losses = [t.train_step(x, y)[0] for _ in range(25)]
    assert losses[-1] < 0.1 * losses[0], losses
    assert t.train_step(x, y)[1] == len(y)        # every image of the batch right


def test_width_and_small_input_survive_saving(tmp_path):
    # the weights file must rebuild the same network: model.config records the create_model arguments
    import npmobilenet
    from npmobilenet.train.loop import build_model

    m = build_model(TrainConfig(width=0.35, small_input=True, drop_rate=0.2), num_classes=3)
    assert m.plan.total_stride == 8 and m.num_classes == 3
    npmobilenet.save(m, tmp_path / "m.npz")
    again = npmobilenet.load(tmp_path / "m.npz")
    assert again.plan.total_stride == 8 and again.dropout.p == 0.2
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(again.state_dict()[k], v, err_msg=k)


# ---- pieces ----------------------------------------------------------------------------------

def test_config_validation_and_round_trip():
    c = TrainConfig(optimizer="adamw", lr=None)
    assert c.learning_rate == 2e-3 and c.decay == 0.05
    assert TrainConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    assert TrainConfig().differences(TrainConfig(size=48)) == [("size", 64, 48)]
    for bad in (dict(epochs=0), dict(optimizer="lbfgs"), dict(lr=-1.0), dict(ema=1.0), dict(warmup_epochs=-1),
                dict(size=1.5), dict(label_smoothing=1.0)):
        with pytest.raises(ValueError, match="TrainConfig"):
            TrainConfig(**bad)
    with pytest.raises(ValueError, match="unknown settings"):
        TrainConfig.from_dict({"model": "x", "colour": "red"})


def test_schedule_warms_up_then_decays_to_zero():
    s = build_schedule(TrainConfig(epochs=4, warmup_epochs=1, lr=0.2), steps_per_epoch=10)
    assert s(0) == 0 and s(5) == pytest.approx(0.1) and s(10) == pytest.approx(0.2)
    assert s(25) == pytest.approx(0.1) and s(40) == pytest.approx(0.0)
    assert all(s(i) >= s(i + 1) for i in range(10, 40))
    short = build_schedule(TrainConfig(epochs=1, warmup_epochs=1, lr=0.2), steps_per_epoch=10)
    assert short.warmup_steps == 5 and short(5) == pytest.approx(0.2)   # warm-up: at most half the run


def test_folder_split_is_stratified_and_normalised(folder):
    train, test = make_loaders(tiny(folder))
    assert train.classes == ("0", "1", "2") and train.num_samples == 24 and test.num_samples == 6
    assert np.bincount(test.labels).tolist() == [2, 2, 2]
    x, _ = next(iter(train.epoch(0)))
    assert x.shape == (8, 3, 32, 32)
    xt = np.concatenate([b for b, _ in test])
    assert abs(float(xt.mean())) < 0.5      # normalised with the training statistics


def test_confusion_matrix_and_table():
    cm = confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0], 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    text = format_confusion(cm, ["a", "b", "c"]).splitlines()
    assert text[0].split()[-1] == "recall" and len(text) == 4
    assert text[1].split() == ["a", "1", "1", ".", "50.0%"]
    assert text[3].split() == ["c", "1", ".", "2", "66.7%"]


def test_evaluate_counts_and_restores_mode(straight):
    straight.model.train()
    res = evaluate(straight.model, straight.test_loader)
    assert straight.model.training
    assert res["count"] == 6 and res["confusion"].sum() == 6
    assert res["correct"] == np.trace(res["confusion"]) and res["accuracy"] == res["correct"] / 6


def test_evaluate_counts_overflowing_logits_as_wrong():
    from npmobilenet.data import Loader
    from npmobilenet.module import Module

    class Overflowing(Module):         # image 1 of each batch overflows, the others predict class x[0]
        num_classes = 3

        def forward(self, x):
            logits = np.eye(3, dtype=np.float32)[x[:, 0, 0, 0].astype(int)] * 5
            logits[1] = np.float32(3e38) * 10
            return logits

    x = np.array([0, 1, 2, 1], np.float32).reshape(4, 1, 1, 1)
    res = evaluate(Overflowing(), Loader(x, np.array([0, 1, 2, 0]), 4, shuffle=False))
    assert res["non_finite"] == 1 and res["correct"] == 2 and res["loss"] == np.inf
    assert res["confusion"].tolist() == [[1, 1, 0], [0, 0, 0], [0, 0, 1]]   # the overflowing image is left out


def test_progress_bar_tty_and_log_styles():
    import io

    log = io.StringIO()
    bar = EpochProgress(2, 10, total=5, stream=log, tty=False)
    for i in range(1, 6):
        bar.update(i, 100.0, loss=0.5, acc=0.9)
    bar.close("done")
    assert log.getvalue() == "epoch  2/10  done\n"          # one line per epoch, nothing else
    term = io.StringIO()
    bar = EpochProgress(1, 3, total=4, stream=term, tty=True, min_interval=0)
    bar.update(2, 150.0, loss=0.25, acc=0.5)
    assert "\r" in term.getvalue() and "[##########..........] 2/4" in term.getvalue()
    assert "loss 0.25" in term.getvalue() and "acc 50.0%" in term.getvalue() and "150 img/s" in term.getvalue()
    bar.note("evaluating...")
    assert term.getvalue().endswith("evaluating...\033[K")
    bar.close("summary")
    assert term.getvalue().endswith("\repoch 1/3  summary\033[K\n")
    quiet = io.StringIO()
    EpochProgress(1, 3, total=4, stream=quiet, tty=False).note("evaluating...")
    assert quiet.getvalue() == ""
    assert format_seconds(75.3) == "1:15" and format_seconds(3725) == "1:02:05"


def test_plot_history(tmp_path):
    recs = [{"epoch": e, "train_loss": 1 / e, "train_acc": 0.5 + e / 10, "test_loss": 1.2 / e,
             "test_acc": 0.4 + e / 10} for e in (1, 2, 3)]
    plot_history(recs, tmp_path / "c.png", title="t")
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
