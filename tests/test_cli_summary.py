"""The ``summary`` and ``gradcheck`` commands, run in-process through ``npmobilenet.cli.main``."""
import numpy as np
import pytest

from npmobilenet.cli import main
from npmobilenet.gradcheck_network import activation_regions
from npmobilenet.commands.summary import default_size
from npmobilenet.module import Sequential
from npmobilenet.ops.activations import ReLU
from npmobilenet.ops.linear import Linear


def _run(argv, capsys):
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


# ---- summary ------------------------------------------------------------------------------------------
def test_summary_prints_the_table_with_its_convention(capsys):
    rc, out, err = _run(["summary", "mobilenetv1_025"], capsys)
    assert rc == 0 and err == ""
    assert "1 MAdd = 1 multiply + 1 add; FLOPs ≈ 2 × MAdds" in out
    assert "mobilenetv1_025 at 224x224" in out and "blocks.1.0.conv_dw" in out
    # timm 1.0.31 _gen_mobilenet_v1(0.25), forward hooks (reference_numbers.json "timm_gen/mobilenetv1_025")
    assert "470,072" in out and "41,030,272" in out
    assert "published: 0.5M params, 41M MAdds at 224x224" in out and "Table 6" in out
    assert "elementwise work" in out and "relu6" in out


def test_summary_options(capsys):
    rc, out, _ = _run(["summary", "v1", "--size", "160", "--num-classes", "10", "--in-chans", "1",
                       "--width", "0.25"], capsys)
    assert rc == 0
    assert "at 160x160, input 1x1x160x160" in out and "1x1x160x160" in out
    assert "published:" not in out                      # not the paper's configuration
    classifier = next(line for line in out.splitlines() if line.startswith("classifier")).split()
    assert classifier[2:5] == ["1x256", "1x10", "2,570"]   # width 0.25: 256 features, 10 classes


def test_summary_depth_groups_rows(capsys):
    rc, out, _ = _run(["summary", "mobilenetv3_small_050", "--depth", "2", "--size", "96"], capsys)
    lines = out.splitlines()
    assert rc == 0
    assert any(line.startswith("blocks.1 ") and "stage 1" in line for line in lines)
    assert not any(line.startswith("blocks.1.0") for line in lines)
    rc, out, _ = _run(["summary", "mobilenetv3_small_050", "--depth", "3", "--size", "96"], capsys)
    assert any(line.startswith("blocks.1.0 ") and "IR" in line for line in out.splitlines())


def test_summary_default_size_is_the_papers():
    assert default_size("mobilenetv4_conv_medium") == 256 and default_size("mobilenetv4_hybrid_large") == 384
    assert default_size("mobilenetv4_conv_small") == 224 and default_size("mobilenetv2_110d") == 224


@pytest.mark.parametrize("argv,words", [
    (["summary", "mobilenetv4_convsmall"], ["unknown model", "did you mean", "'mobilenetv4_conv_small'"]),
    (["summary", "mobilenetv1_025", "--size", "0"], ["--size", ">= 1", "got 0"]),
    (["summary", "mobilenetv1_025", "--size", "16"], ["16x16", "at least 32x32"]),
    (["summary", "mobilenetv1_025", "--depth", "0"], ["--depth", "got 0"]),
    (["gradcheck", "nosuchnet"], ["unknown model"]),
    (["gradcheck", "mobilenetv1_025", "--batch", "0"], ["--batch", "got 0"]),
    (["gradcheck", "mobilenetv1_025", "--mode", "train", "--batch", "1"], ["batch", "at least 2"]),
    (["gradcheck", "mobilenetv1_025", "--size", "8"], ["8x8", "at least 32x32"]),
])
def test_a_users_mistake_is_one_line(argv, words, capsys):
    rc, out, err = _run(argv, capsys)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith(f"npmobilenet {argv[0]}: error:")
    assert all(w in lines[0] for w in words), lines[0]


# ---- gradcheck ----------------------------------------------------------------------------------------
def test_gradcheck_passes_in_both_modes(capsys):
    rc, out, err = _run(["gradcheck", "mobilenetv1_025"], capsys)
    assert rc == 0, out
    assert "train mode: PASSED" in out and "eval mode: PASSED" in out
    assert "input 8x3x32x32, float64" in out and "input 2x3x32x32, float64" in out
    assert "conv_stem.weight" in out and "all parameters" in out and " NO" not in out


def test_gradcheck_finds_a_wrong_gradient(capsys, monkeypatch):
    backward = Linear.backward

    def wrong(self, dy):             # the classifier's weight gradient 1 % too large
        dx = backward(self, dy)
        self.grads()["weight"][...] *= 1.01
        return dx

    monkeypatch.setattr(Linear, "backward", wrong)
    rc, out, _ = _run(["gradcheck", "mobilenetv1_025", "--mode", "eval"], capsys)
    assert rc == 1
    assert "eval mode: FAILED" in out
    row = next(line for line in out.splitlines() if line.startswith("classifier.weight"))
    assert row.rstrip().endswith("NO")


def test_kink_crossings_are_seen():
    model = Sequential(ReLU())
    with activation_regions(model) as calls:
        for x in ([-1e-6, 2.0], [1e-6, 2.0], [1e-3, 5.0]):
            model.forward(np.array(x))
    assert calls[0] != calls[1] and calls[1] == calls[2]
    assert "forward" not in model.__dict__ and "forward" not in model[0].__dict__
