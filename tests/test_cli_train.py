"""``npmobilenet train`` and ``npmobilenet evaluate`` end to end, in-process, a few steps each.

This is the check that a broken training command cannot land: the digits, a real MobileNet, the
checkpoint, the history, the plot, ``evaluate`` on the result, and the user-facing errors.
"""
import json
import os

import numpy as np
import pytest

from npmobilenet.cli import main
from npmobilenet.data import load_digits
from npmobilenet.train.loop import Trainer

QUICK = ["--model", "mobilenetv3_small_050", "--size", "32", "--epochs", "1", "--limit-batches", "2",
         "--batch-size", "16", "--threads", "2"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """One short digits run shared by the tests below (the end-to-end check itself)."""
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", *QUICK, "--out", str(out)]) == 0
    return out


def test_train_writes_a_complete_run(run_dir, capsys):
    for name in ("checkpoint.npz", "model.npz", "history.json", "training_curves.png"):
        assert (run_dir / name).stat().st_size > 0, name
    hist = json.loads((run_dir / "history.json").read_text())
    assert len(hist) == 1 and hist[0]["epoch"] == 1
    assert {"epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "seconds"} <= set(hist[0])
    assert 0 <= hist[0]["test_acc"] <= 1


def test_train_prints_header_epoch_line_and_result(tmp_path, capsys):
    assert main(["train", *QUICK, "--out", str(tmp_path / "r"), "--optimizer", "rmsprop"]) == 0
    out, err = capsys.readouterr()
    assert "model    mobilenetv3_small_050" in out and "rmsprop lr 0.004" in out
    assert "done: test accuracy" in out and "images/s" in out
    # stderr is not a terminal here: exactly one line for the one epoch, with the test accuracy
    lines = [ln for ln in err.splitlines() if ln.startswith("epoch")]
    assert len(lines) == 1 and "test loss" in lines[0] and "img/s" in lines[0] and "\r" not in err


def test_evaluate_reports_the_runs_accuracy_and_confusion_matrix(run_dir, capsys):
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(run_dir)]) == 0
    out = capsys.readouterr().out
    acc = json.loads((run_dir / "history.json").read_text())[-1]["test_acc"]
    assert f"test accuracy {100 * acc:.2f}%" in out
    table = out[out.index("true \\ pred"):].splitlines()
    assert len(table) == 11 and table[0].split()[-1] == "recall"
    assert main(["evaluate", "--checkpoint", str(run_dir / "model.npz"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["count"] == 360 and doc["accuracy"] == acc
    assert np.array(doc["confusion"]).sum() == 360 and np.trace(doc["confusion"]) == doc["correct"]


def test_resume_refuses_other_settings_naming_them(run_dir, capsys):
    assert main(["train", "--resume", "--out", str(run_dir), "--model", "mobilenetv3_small_075"]) == 2
    err = capsys.readouterr().err
    assert "--model mobilenetv3_small_050" in err and "--model mobilenetv3_small_075" in err
    assert "Traceback" not in err


def test_existing_run_is_not_overwritten(run_dir, capsys):
    assert main(["train", *QUICK, "--out", str(run_dir)]) == 2
    assert "already holds a training run" in capsys.readouterr().err


def test_resume_of_a_finished_run_does_nothing(run_dir, capsys):
    before = (run_dir / "checkpoint.npz").read_bytes()
    assert main(["train", "--resume", "--out", str(run_dir)]) == 0
    assert "already trained all its epochs" in capsys.readouterr().out
    assert (run_dir / "checkpoint.npz").read_bytes() == before


def test_ctrl_c_saves_and_resume_finishes(tmp_path, capsys, monkeypatch):
    calls = {"n": 0}
    step = Trainer.train_step

    def interrupted_after_one(self, x, y):
        out = step(self, x, y)
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt          # as the Ctrl-C handler does, between steps
        return out

    monkeypatch.setattr(Trainer, "train_step", interrupted_after_one)
    out = tmp_path / "r"
    assert main(["train", *QUICK, "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert "interrupted at epoch 1, batch 1" in err and f"--resume --out {out}" in err
    assert not (out / "history.json").exists()
    assert main(["train", "--resume", "--out", str(out)]) == 0
    assert "resuming" in capsys.readouterr().out
    assert len(json.loads((out / "history.json").read_text())) == 1


def test_divergence_exits_with_a_message(tmp_path, capsys):
    code = main(["train", *QUICK, "--epochs", "2", "--optimizer", "sgd", "--lr", "1e12", "--warmup-epochs", "0",
                 "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "training diverged" in err and "smaller --lr" in err and "Traceback" not in err


def test_evaluate_refuses_corrupt_files_and_other_models(run_dir, tmp_path, capsys):
    bad = tmp_path / "checkpoint.npz"
    bad.write_bytes((run_dir / "checkpoint.npz").read_bytes()[:5000])
    assert main(["evaluate", "--checkpoint", str(bad)]) == 2
    assert "checkpoint.npz" in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint", str(run_dir), "--model", "mobilenetv2_100"]) == 2
    err = capsys.readouterr().err
    assert "mobilenetv3_small_050" in err and "mobilenetv2_100" in err


def test_bad_options_are_one_line_errors(tmp_path, capsys):
    assert main(["train", "--epochs", "0", "--out", str(tmp_path / "r")]) == 2
    assert "epochs" in capsys.readouterr().err
    assert main(["train", "--dataset", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r")]) == 2
    assert "nowhere" in capsys.readouterr().err
    assert main(["train", "--resume"]) == 2
    assert "--resume needs" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "r")


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for opt in ("--lr", "--batch-size", "--optimizer", "--weight-decay", "--label-smoothing", "--warmup-epochs",
                "--ema", "--seed", "--size", "--width", "--dataset", "--resume", "--threads"):
        assert opt in text
    assert "--limit-batches" not in text


def test_folder_dataset_through_the_cli(tmp_path, capsys):
    import matplotlib.image as mpimg

    x, y = load_digits()
    for c in (3, 7):
        (tmp_path / "data" / f"digit{c}").mkdir(parents=True)
        for i, idx in enumerate(np.flatnonzero(y == c)[:6]):
            mpimg.imsave(tmp_path / "data" / f"digit{c}" / f"{i}.png", x[idx, 0], cmap="gray")
    args = ["--model", "mobilenetv3_small_050", "--epochs", "1", "--batch-size", "4", "--dataset",
            str(tmp_path / "data"), "--out", str(tmp_path / "r")]
    assert main(["train", *args]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "digit3" in out and "digit7" in out and "test split: 2 images" in out
