"""The benchmark tools: per-layer profile rows add up to the step and their MAdds to ``summary()``'s,
the memory probes see a known allocation, and the ``bench`` command runs end to end."""
import json
import time

import numpy as np
import pytest

from npmobilenet import create_model, summary
from npmobilenet.bench import models, profile
from npmobilenet.cli import main


@pytest.mark.parametrize("train", [False, True])
def test_profile_rows_cover_every_leaf_and_add_up(train):
    model = create_model("mobilenetv3_small_050", num_classes=10, seed=0)
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64), dtype=np.float32)
    layers, kinds, total = profile.profile(model, x, np.array([1, 2]), train=train, repeats=2)
    names = {r["name"] for r in layers}
    leaves = {n for n, m in model.named_modules() if not m._children}
    assert leaves <= names
    assert ("loss" in names) == train and ("optimizer" in names) == train
    assert sum(r["madds"] for r in layers) == summary(model, (3, 64, 64)).total_madds * 2
    # self times: the rows are disjoint parts of each step, so they cannot exceed it by much
    assert sum(r["total_ms"] for r in layers) <= 1e3 * total * 1.5
    assert all((r["bwd_ms"] is not None) == train for r in layers if r["kind"] not in ("loss", "optimizer"))
    assert {r["dtype"] for r in layers} <= {"float32", None}
    assert layers == sorted(layers, key=lambda r: -r["total_ms"])
    assert abs(sum(k["madds_pct"] for k in kinds) - 100) < 1e-6
    conv = next(r for r in layers if r["name"] == "conv_stem")
    assert conv["kind"] == "conv-full" and conv["output_shape"] == [2, 16, 32, 32]
    assert not any("forward" in m.__dict__ or "backward" in m.__dict__ for m in model.modules())


def test_kind_of():
    m = create_model("mobilenetv3_small_050", num_classes=10)
    kinds = {n: profile.kind_of(mod) for n, mod in m.named_modules()}
    assert kinds["blocks.0.0.conv_dw"] == "conv-depthwise"
    assert kinds["blocks.0.0.conv_pw"] == "conv-pointwise"
    assert kinds["blocks.0.0.se"] == "squeeze-excite"
    assert kinds["classifier"] == "linear" and kinds["bn1"] == "batchnorm" and kinds["act1"] == "activation"


def test_time_alternating_orders_and_medians():
    calls = []
    walls, cpus = models.time_alternating([lambda: calls.append("a"), lambda: calls.append("b")], 3, warmup=1)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]
    assert len(walls) == len(cpus) == 2 and min(walls) >= 0
    walls, _ = models.time_alternating([lambda: time.sleep(0.02), lambda: None], 3, warmup=0)
    assert walls[0] >= 0.02 > walls[1]


def test_memory_probes_see_a_known_allocation():
    n = 64 * 2**20

    def step():
        a = np.ones(n // 4, np.float32)     # 64 MiB, touched
        return float(a[::4096].sum())
    assert n <= models.tracemalloc_peak(step) < 1.1 * n
    rss = models.rss_peak_delta(step)
    if rss is not None:                      # Linux only
        assert 0.9 * n <= rss < 1.5 * n


def test_format_table_marks_targets():
    row = dict(model="m", line="infer-b16", np_ms=30.0, np_img_s=1.0, torch_ms=10.0, torch_img_s=1.0,
               ratio=3.0, np_gflops=1.0, torch_gflops=1.0, cpu_ratio=2.0, predicted_mib=None)
    assert " NO" in models.format_table([row])
    row["ratio"] = 1.0
    assert " ok" in models.format_table([row])


def test_bench_profile_command_writes_json_and_csv(tmp_path, capsys):
    js, cs = tmp_path / "p.json", tmp_path / "p.csv"
    assert main(["bench", "profile", "mobilenetv3_small_050", "--size", "32", "--batch", "2", "--train",
                 "--classes", "10", "--repeats", "1", "--json", str(js), "--csv", str(cs)]) == 0
    out = capsys.readouterr().out
    assert "by kind" in out and "conv-depthwise" in out
    data = json.loads(js.read_text())
    assert data["meta"]["train"] and data["meta"]["batch"] == 2
    assert {"name", "kind", "madds", "fwd_ms", "bwd_ms", "intensity"} <= set(data["layers"][0])
    assert cs.read_text().splitlines()[0].startswith("name,op,kind,")
    assert len(cs.read_text().splitlines()) == len(data["layers"]) + 1


def test_bench_errors_are_one_line(capsys):
    assert main(["bench", "profile", "no_such_model", "--batch", "2"]) == 2
    assert main(["bench", "profile", "mobilenetv3_small_050", "--batch", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "Traceback" not in err


def test_bench_layers_passes_its_options_through(capsys):
    with pytest.raises(SystemExit) as e:
        main(["bench", "layers", "--help"])
    assert e.value.code == 0
    assert "--quick" in capsys.readouterr().out


def test_measure_without_torch(monkeypatch):
    """One line of the model table, npmobilenet alone, on a small stand-in line."""
    monkeypatch.setitem(models.LINES, "train-32", ("train", 32, 4, 10))
    row = models.measure("mobilenetv3_small_050", "train-32", None, repeats=1)
    assert row["torch_ms"] is None and row["ratio"] is None and row["np_ms"] > 0
    assert row["madds_per_image"] == summary(create_model("mobilenetv3_small_050", num_classes=10),
                                             (3, 32, 32)).total_madds
    assert row["np_tracemalloc_mib"] > 0 and row["predicted_mib"] > 0
    assert row["np_gflops"] == pytest.approx(6 * row["madds_per_image"] * 4 / row["np_ms"] / 1e6)
