"""Weights in and out: our .npz, timm's .safetensors, PyTorch .pth, torchvision's layout.

The torchvision parity numbers come from ``tests/golden/torchvision_*.npz`` (torch 2.14.1,
torchvision 0.29.1, made by ``tests/golden/make_torchvision_golden.py``); the deterministic
weights from ``tests/golden/fill.py``.  Tests that need timm or torch skip without them.
"""
import errno
import json
import os
import pathlib
import sys
import zipfile

import numpy as np
import pytest

import npmobilenet
from npmobilenet.io import (CheckpointError, MissingExtra, TORCHVISION_MODELS, formats, key_map,
                            load, load_weights, read_state_dict, save, save_pretrained,
                            to_torchvision, write_file)
from npmobilenet.io import torchvision_map
from npmobilenet.io.atomic import atomic_write

GOLDEN = pathlib.Path(__file__).parent / "golden"
sys.path.insert(0, str(GOLDEN))
from fill import fill_state  # noqa: E402

SMALL = "mobilenetv3_small_050"
X = np.random.default_rng(7).standard_normal((2, 3, 64, 64)).astype(np.float32)


def filled(name=SMALL, seed=0, **kw):
    m = npmobilenet.create_model(name, **kw)
    m.load_state_dict(fill_state({k: v.shape for k, v in m.state_dict().items()}, seed))
    return m.eval()


@pytest.fixture(scope="module")
def small():
    return filled()


def same_state(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def snapshot(model):
    return {k: v.copy() for k, v in model.state_dict().items()}


def no_temp_files(directory):
    return [p.name for p in pathlib.Path(directory).iterdir() if p.name.endswith(".tmp")]


# ---- our format: npz + manifest --------------------------------------------------------------
def test_npz_round_trip_rebuilds_the_model_without_its_name(small, tmp_path):
    path = save(small, tmp_path / "model.npz", metadata={"epoch": 3, "top1": 0.5})
    again = npmobilenet.load(path)
    assert again.name == SMALL and not again.training
    assert same_state(small.state_dict(), again.state_dict())
    np.testing.assert_array_equal(small(X), again(X))


def test_manifest_records_model_versions_and_every_tensor(small, tmp_path):
    model = filled(SMALL, num_classes=10)
    save(model, tmp_path / "m.npz", metadata={"epoch": 3})
    state, manifest = read_state_dict(tmp_path / "m.npz")
    assert manifest["format"] == "npmobilenet" and manifest["format_version"] == 1
    assert manifest["library_version"] == npmobilenet.__version__
    assert manifest["model"]["name"] == SMALL and manifest["model"]["kwargs"]["num_classes"] == 10
    assert manifest["metadata"] == {"epoch": 3}
    assert list(manifest["tensors"]) == list(model.state_dict())
    for k, v in model.state_dict().items():
        assert manifest["tensors"][k]["shape"] == list(v.shape)
        assert manifest["tensors"][k]["dtype"] == "float32"
    assert npmobilenet.load(tmp_path / "m.npz").num_classes == 10


def test_float64_model_comes_back_float64(tmp_path):
    m = filled(SMALL).to(np.float64)
    again = npmobilenet.load(save(m, tmp_path / "m64.npz"))
    assert again.dtype == np.float64
    np.testing.assert_array_equal(m(X.astype(np.float64)), again(X.astype(np.float64)))


def test_metadata_must_be_json(small, tmp_path):
    with pytest.raises(TypeError, match="JSON"):
        save(small, tmp_path / "m.npz", metadata={"bad": object()})
    assert not list(tmp_path.iterdir())


def test_unknown_suffix_is_refused(small, tmp_path):
    with pytest.raises(ValueError, match=r"\.npz.*\.safetensors.*\.pth"):
        save(small, tmp_path / "model.weights")


def test_newer_format_version_is_refused(small, tmp_path):
    state = small.state_dict()
    manifest = formats.mf.make_manifest(small, state)
    manifest["format_version"] = 99
    write_file(tmp_path / "new.npz", state, manifest)
    with pytest.raises(CheckpointError, match="format 99.*upgrade"):
        npmobilenet.load(tmp_path / "new.npz")


# ---- atomic writes ---------------------------------------------------------------------------
def test_failed_write_keeps_the_previous_file_and_leaves_no_temp(small, tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    save(small, path)
    before = path.read_bytes()

    def half_then_disk_full(f, arrays):
        f.write(before[: len(before) // 2])  # part of a file is on disk...
        raise OSError(errno.ENOSPC, "No space left on device")  # ...then the disk is full

    monkeypatch.setattr(formats, "_write_npz", half_then_disk_full)
    with pytest.raises(OSError, match="No space"):
        save(filled(SMALL, seed=1), path)
    assert path.read_bytes() == before
    assert no_temp_files(tmp_path) == []
    assert same_state(npmobilenet.load(path).state_dict(), small.state_dict())


def test_interrupted_write_leaves_no_temp_and_no_file(tmp_path):
    def interrupted(f):
        f.write(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "new.npz", interrupted)
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_replaces_whole_file(tmp_path):
    p = tmp_path / "f.bin"
    p.write_bytes(b"old content that is longer")
    atomic_write(p, lambda f: f.write(b"new"))
    assert p.read_bytes() == b"new" and no_temp_files(tmp_path) == []


# ---- mismatched and damaged checkpoints: one error, everything listed, nothing loaded -------------
def expect_refusal(model, path, *patterns):
    before = snapshot(model)
    with pytest.raises(CheckpointError) as info:
        load_weights(model, path)
    for pattern in patterns:
        assert pattern in str(info.value), str(info.value)
    assert same_state(before, model.state_dict()), "a refused checkpoint changed the model"
    return str(info.value)


def test_another_model_is_refused_with_every_difference(tmp_path):
    path = save(filled("mobilenetv3_small_100"), tmp_path / "other.npz")
    target = filled(SMALL, seed=5)
    msg = expect_refusal(target, path, "holds mobilenetv3_small_100 weights", "not " + SMALL)
    assert "conv_stem.weight: file shape (16, 3, 3, 3), model shape (16, 3, 3, 3)" not in msg
    assert "conv_head.weight: file shape (1024, 576, 1, 1), model shape (1024, 288, 1, 1)" in msg
    with pytest.raises(CheckpointError, match="holds mobilenetv3_small_100 weights"):
        npmobilenet.load(path, SMALL)


def test_same_shapes_but_another_network_is_refused(tmp_path):
    """Same tensor names and shapes (here: another BatchNorm eps) is still another model."""
    m = filled(SMALL)
    m.config = {"name": "mobilenetv3_small_075", "kwargs": {}}
    path = save(m, tmp_path / "renamed.npz")
    expect_refusal(filled(SMALL), path, "holds mobilenetv3_small_075 weights")


@pytest.mark.parametrize("change, expected", [
    (lambda s: s.pop("classifier.bias"), ["missing keys (1): classifier.bias"]),
    (lambda s: s.update({"extra.weight": np.ones(3, np.float32)}), ["unexpected keys (1): extra.weight"]),
    (lambda s: s.update({"bn1.weight": np.ones(7, np.float32)}), ["bn1.weight: file shape (7,), model shape (16,)"]),
    (lambda s: s.update({"bn1.bias": np.zeros(16, np.int32)}), ["bn1.bias: file dtype int32, expected a float dtype"]),
    (lambda s: (s.pop("bn1.bias"), s.update({"bn1.weight": np.ones(7, np.float32), "x.y": np.ones(1)})),
     ["missing keys (1): bn1.bias", "unexpected keys (1): x.y", "bn1.weight: file shape (7,)"]),
], ids=["missing", "extra", "shape", "dtype", "all-at-once"])
def test_bare_state_dict_differences_are_all_listed(small, tmp_path, change, expected):
    state = small.state_dict()
    change(state)
    write_file(tmp_path / "bad.npz", state)
    expect_refusal(filled(SMALL, seed=3), tmp_path / "bad.npz", "nothing was loaded", *expected)


def test_num_batches_tracked_is_accepted_and_ignored(small, tmp_path):
    state = formats.with_bn_counters(small.state_dict())
    assert sum(k.endswith("num_batches_tracked") for k in state) == \
        sum(k.endswith("running_var") for k in state)
    write_file(tmp_path / "with_counters.npz", state)
    m = load_weights(filled(SMALL, seed=9), tmp_path / "with_counters.npz")
    assert same_state(m.state_dict(), small.state_dict())


def test_truncated_npz_is_refused(small, tmp_path):
    data = pathlib.Path(save(small, tmp_path / "m.npz")).read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 100):
        (tmp_path / "t.npz").write_bytes(data[:cut])
        expect_refusal(filled(SMALL), tmp_path / "t.npz", "truncated or corrupt")


def test_flipped_byte_in_npz_is_refused(small, tmp_path):
    path = tmp_path / "m.npz"
    save(small, path)
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("blocks.0.0.conv_dw.weight.npy")
    data = bytearray(path.read_bytes())
    data[info.header_offset + 30 + len(info.filename) + 200] ^= 0xFF  # inside that tensor's data
    path.write_bytes(bytes(data))
    expect_refusal(filled(SMALL), path, "truncated or corrupt", "CRC")


def test_tampered_tensor_disagrees_with_manifest(small, tmp_path):
    state = small.state_dict()
    manifest = formats.mf.make_manifest(small, state)
    state["bn1.bias"] = state["bn1.bias"] + 1  # the bytes change, the manifest's CRC does not
    write_file(tmp_path / "m.npz", state, manifest)
    expect_refusal(filled(SMALL), tmp_path / "m.npz", "is corrupt",
                   "bn1.bias: the bytes do not match their CRC-32")


def test_not_a_weights_file(tmp_path):
    (tmp_path / "notes").write_text("hello")
    with pytest.raises(CheckpointError, match="not a weights file"):
        read_state_dict(tmp_path / "notes")
    with pytest.raises(FileNotFoundError, match="no such weights file"):
        read_state_dict(tmp_path / "absent.npz")


def test_file_without_a_name_needs_one(small, tmp_path):
    write_file(tmp_path / "bare.npz", small.state_dict())
    with pytest.raises(CheckpointError, match="does not say which model"):
        npmobilenet.load(tmp_path / "bare.npz")
    m = npmobilenet.load(tmp_path / "bare.npz", SMALL)
    assert same_state(m.state_dict(), small.state_dict())


def test_bare_state_dict_head_size_is_read_off_the_shapes(tmp_path):
    src = filled(SMALL, num_classes=7)
    write_file(tmp_path / "bare7.npz", src.state_dict())
    m = npmobilenet.load(tmp_path / "bare7.npz", SMALL)
    assert m.num_classes == 7 and same_state(m.state_dict(), src.state_dict())


# ---- timm's format: safetensors --------------------------------------------------------------
def test_safetensors_round_trip_and_torch_keys(small, tmp_path):
    pytest.importorskip("safetensors")
    from safetensors.numpy import load_file

    path = save(small, tmp_path / "m.safetensors", metadata={"note": "x"})
    raw = load_file(path)
    # Exactly timm's state_dict keys: ours plus BN's num_batches_tracked (int64 scalars).
    counters = {k for k in raw if k.endswith("num_batches_tracked")}
    assert set(raw) - counters == set(small.state_dict())
    assert counters == {k[:-len("running_var")] + "num_batches_tracked"
                        for k in small.state_dict() if k.endswith("running_var")}
    assert all(raw[k].dtype == np.int64 and raw[k].shape == () for k in counters)
    again = npmobilenet.load(path)
    assert again.name == SMALL and same_state(again.state_dict(), small.state_dict())


def test_truncated_safetensors_is_refused(small, tmp_path):
    pytest.importorskip("safetensors")
    data = pathlib.Path(save(small, tmp_path / "m.safetensors")).read_bytes()
    for cut in (len(data) - 10, 20, 4):
        (tmp_path / "t.safetensors").write_bytes(data[:cut])
        expect_refusal(filled(SMALL), tmp_path / "t.safetensors", "not a readable .safetensors file")


def test_flipped_byte_in_safetensors_is_caught_by_the_manifest(small, tmp_path):
    pytest.importorskip("safetensors")
    path = tmp_path / "m.safetensors"
    data = bytearray(pathlib.Path(save(small, path)).read_bytes())
    data[-100] ^= 0x01  # a tensor byte: safetensors itself keeps no checksum
    path.write_bytes(bytes(data))
    expect_refusal(filled(SMALL), path, "is corrupt", "do not match their CRC-32")


def test_bfloat16_safetensors_are_widened_exactly(tmp_path):
    pytest.importorskip("safetensors")
    # A hand-made file: header + two bfloat16 values (1.0 = 0x3F80, -2.5 = 0xC020).
    header = json.dumps({"w": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}).encode()
    header += b" " * (-len(header) % 8)
    (tmp_path / "bf.safetensors").write_bytes(len(header).to_bytes(8, "little") + header
                                              + np.array([0x3F80, 0xC020], "<u2").tobytes())
    state, _ = read_state_dict(tmp_path / "bf.safetensors")
    assert state["w"].dtype == np.float32 and state["w"].tolist() == [1.0, -2.5]


def test_missing_safetensors_names_the_extra(small, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    with pytest.raises(MissingExtra, match=r"pip install 'npmobilenet\[safetensors\]'"):
        save(small, tmp_path / "m.safetensors")


def test_missing_torch_names_the_extra(small, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(MissingExtra, match=r"pip install 'npmobilenet\[torch\]'"):
        save(small, tmp_path / "m.pth")


def test_timm_model_folder_round_trip(small, tmp_path):
    pytest.importorskip("safetensors")
    folder = save_pretrained(small, tmp_path / "export")
    config = json.loads((tmp_path / "export" / "config.json").read_text())
    assert config["architecture"] == SMALL and config["num_classes"] == 1000
    assert config["pretrained_cfg"]["input_size"] == [3, 224, 224]
    again = npmobilenet.load(folder)
    assert again.name == SMALL and same_state(again.state_dict(), small.state_dict())


def test_timm_folder_refuses_what_timm_cannot_build(tmp_path):
    m = npmobilenet.create_model(SMALL, small_input=True)
    m.config = {"name": SMALL, "kwargs": {"small_input": True}}
    with pytest.raises(ValueError, match="small_input"):
        save_pretrained(m, tmp_path / "x")


def test_export_keys_and_shapes_equal_timms(tmp_path):
    """The exported file holds exactly timm's state_dict keys and shapes, in timm's order.

    Golden list: tests/golden/timm_state_dict_keys.json (timm 1.0.31, ``num_batches_tracked``
    omitted there; the safetensors export adds one per BatchNorm, as timm's state_dict has).
    """
    pytest.importorskip("safetensors")
    golden = json.loads((GOLDEN / "timm_state_dict_keys.json").read_text())
    names = [n for n in golden if not n.startswith("_")]
    assert names and all(n in npmobilenet.list_models() for n in names)
    for name in names:
        want = [(k, tuple(shape)) for k, shape in golden[name]]
        model = npmobilenet.create_model(name)
        assert [(k, v.shape) for k, v in model.state_dict().items()] == want, name
        state, _ = read_state_dict(save(model, tmp_path / f"{name}.safetensors"))
        counters = {k for k in state if k.endswith("num_batches_tracked")}
        assert {(k, v.shape) for k, v in state.items() if k not in counters} == set(want), name
        assert counters == {k[:-len("running_var")] + "num_batches_tracked" for k, _ in want
                            if k.endswith(".running_var")}, name


# ---- torchvision -----------------------------------------------------------------------------
def torchvision_golden(arch):
    g = np.load(GOLDEN / f"torchvision_{arch}.npz")
    shapes = dict(zip([str(k) for k in g["keys"]], map(tuple, json.loads(str(g["shapes"])))))
    return g, shapes, fill_state(shapes, int(g["seed"]))


@pytest.mark.parametrize("arch", sorted(TORCHVISION_MODELS))
def test_torchvision_weights_give_torchvisions_logits(arch, tmp_path):
    """Seeded weights in torchvision's layout -> our model -> torchvision's float64 logits."""
    g, shapes, state = torchvision_golden(arch)
    write_file(tmp_path / "tv.npz", state)  # a torchvision state dict, keys as torchvision's
    m = npmobilenet.load(tmp_path / "tv.npz")
    name, kwargs = TORCHVISION_MODELS[arch]
    assert m.name == name and m.dtype == np.float64
    eps = {b.eps for b in m.modules() if type(b).__name__ == "BatchNorm2d"}
    assert eps == {float(g["bn_eps"])}
    x = np.random.default_rng(int(g["x_seed"])).standard_normal((2, 3, 64, 64))
    ref = g["logits"]
    np.testing.assert_allclose(m(x), ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())


@pytest.mark.parametrize("arch", sorted(TORCHVISION_MODELS))
def test_torchvision_key_map_is_generated_and_invertible(arch):
    g, shapes, state = torchvision_golden(arch)
    name, kwargs = TORCHVISION_MODELS[arch]
    m = npmobilenet.create_model(name, **kwargs)
    kmap = key_map(m.state_dict().keys(), name)
    assert list(kmap.values()) == list(shapes)  # same tensors, same order, every one
    assert torchvision_map.detect_torchvision(state) == arch
    back = to_torchvision(torchvision_map.from_torchvision(state, m, name), name)
    plain = {k: v for k, v in back.items() if not k.endswith("num_batches_tracked")}
    assert list(plain) == list(shapes)
    assert all(np.array_equal(plain[k], state[k]) for k in shapes)


def test_torchvision_without_eps_differs():
    """The import's BatchNorm eps matters: with timm's default 1e-5 the logits move."""
    g, shapes, state = torchvision_golden("mobilenet_v3_small")
    m = npmobilenet.create_model("mobilenetv3_small_100", dtype=np.float64)
    m.load_state_dict(torchvision_map.from_torchvision(state, m, "mobilenetv3_small_100"))
    x = np.random.default_rng(int(g["x_seed"])).standard_normal((2, 3, 64, 64))
    assert np.abs(m.eval()(x) - g["logits"]).max() > 1e-3


def test_torchvision_missing_key_is_listed(tmp_path):
    g, shapes, state = torchvision_golden("mobilenet_v2")
    state.pop("features.3.conv.1.1.running_var")
    write_file(tmp_path / "tv.npz", state)
    with pytest.raises(CheckpointError, match=r"missing torchvision keys \(1\): features\.3\.conv\.1\.1\.running_var"):
        npmobilenet.load(tmp_path / "tv.npz")


# ---- PyTorch and timm (dev checks: skipped where they are not installed) ------------------------
def test_pth_round_trip(small, tmp_path):
    torch = pytest.importorskip("torch")
    path = save(small, tmp_path / "m.pth")
    raw = torch.load(path, weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in raw.values())
    torch.save({"state_dict": {"module." + k: v for k, v in raw.items()}, "epoch": 1}, tmp_path / "ckpt.pth")
    m = npmobilenet.load(tmp_path / "ckpt.pth", SMALL)
    assert same_state(m.state_dict(), small.state_dict())
    (tmp_path / "cut.pth").write_bytes(pathlib.Path(path).read_bytes()[:-50])
    expect_refusal(filled(SMALL), tmp_path / "cut.pth", "not a readable PyTorch file")


def timm_models():
    return [n for n in npmobilenet.list_models() if n in npmobilenet.io.pretrained_cfgs.DEFAULT_TAGS]


@pytest.mark.parametrize("name", timm_models())
def test_export_loads_into_timm_strict(name, tmp_path):
    timm = pytest.importorskip("timm")
    torch = pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    from safetensors.torch import load_file

    ours = filled(name, seed=2)
    path = save(ours, tmp_path / "m.safetensors")
    ref = timm.create_model(name).eval()
    ref.load_state_dict(load_file(path), strict=True)
    size = 64 if "hybrid" not in name else 64
    x = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
    with torch.no_grad():
        want = ref(torch.from_numpy(x)).numpy()
    got = ours(x)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * np.abs(want).max())


def test_atomic_write_keeps_permissions(tmp_path):
    p = tmp_path / "f.bin"
    atomic_write(p, lambda f: f.write(b"a"))
    umask = os.umask(0)
    os.umask(umask)
    assert p.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    p.chmod(0o640)
    atomic_write(p, lambda f: f.write(b"b"))
    assert p.stat().st_mode & 0o777 == 0o640


def test_timm_folders_both_ways(tmp_path):
    """timm's own export folder loads here; ours loads in timm via ``local-dir:``."""
    timm = pytest.importorskip("timm")
    torch = pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    pytest.importorskip("huggingface_hub")
    from timm.models._hub import save_for_hf

    ref = timm.create_model("mobilenetv3_small_050.lamb_in1k")
    values = fill_state({k: tuple(v.shape) for k, v in ref.state_dict().items()}, 4)
    ref.load_state_dict({k: torch.from_numpy(v).float() for k, v in values.items()}, strict=False)
    ref.eval()
    save_for_hf(ref, tmp_path / "timm_export", safe_serialization=True)
    ours = npmobilenet.load(tmp_path / "timm_export")
    assert ours.name == SMALL and ours.pretrained_cfg["tag"] == "lamb_in1k"
    with torch.no_grad():
        want = ref(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(ours(X), want, rtol=1e-4, atol=1e-5 * np.abs(want).max())

    save_pretrained(ours, tmp_path / "ours_export")
    back = timm.create_model(f"local-dir:{tmp_path / 'ours_export'}", pretrained=True).eval()
    with torch.no_grad():
        again = back(torch.from_numpy(X)).numpy()
    np.testing.assert_array_equal(again, want)


def test_timm_folder_of_torchvision_weights_carries_the_eps(tmp_path):
    pytest.importorskip("safetensors")
    g, shapes, state = torchvision_golden("mobilenet_v3_small")
    write_file(tmp_path / "mobilenet_v3_small-047dcff4.npz", state)
    m = npmobilenet.load(tmp_path / "mobilenet_v3_small-047dcff4.npz")
    save_pretrained(m, tmp_path / "export")
    config = json.loads((tmp_path / "export" / "config.json").read_text())
    assert config["model_args"] == {"bn_eps": 1e-3, "bn_momentum": 0.01}  # timm's resolve_bn_args
    # Only fields timm's PretrainedCfg has (timm 1.0.31 refuses others, e.g. resize_size).
    assert set(config["pretrained_cfg"]) <= {"tag", "input_size", "test_input_size", "interpolation",
                                              "crop_pct", "test_crop_pct", "crop_mode", "mean", "std",
                                              "num_classes", "label_names", "label_descriptions",
                                              "license", "first_conv", "classifier"}
    again = npmobilenet.load(tmp_path / "export")
    assert {b.eps for b in again.modules() if type(b).__name__ == "BatchNorm2d"} == {1e-3}


def test_alias_names_the_same_model(small, tmp_path):
    save(filled("mobilenetv3_small_100"), tmp_path / "m.npz")
    assert npmobilenet.load(tmp_path / "m.npz", "v3-small").name == "mobilenetv3_small_100"


def test_torchvision_weights_refuse_a_model_with_the_wrong_eps(tmp_path):
    g, shapes, state = torchvision_golden("mobilenet_v3_small")
    write_file(tmp_path / "tv.npz", state)
    expect_refusal(npmobilenet.create_model("mobilenetv3_small_100"), tmp_path / "tv.npz",
                   "trained with BatchNorm eps 0.001", "bn_eps=0.001")
    m = npmobilenet.create_model("mobilenetv3_small_100", bn_eps=1e-3, bn_momentum=0.01)
    assert load_weights(m, tmp_path / "tv.npz") is m
