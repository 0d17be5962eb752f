"""Prediction: timm's eval preprocessing, the ImageNet names, and ``npmobilenet predict`` end to end.

Golden numbers: ``tests/golden/predict_grace_hopper.npz`` (timm 1.0.31, torch 2.14.1, made by
``tests/golden/make_predict_golden.py``): timm's own transform,
``create_transform(**resolve_data_config(model=...))``, on matplotlib's sample photo
``grace_hopper.jpg``, and timm's top-5 for ``mobilenetv3_small_100`` with the seeded weights of
``tests/golden/fill.py``.
"""
import json
import pathlib
import sys

import matplotlib.cbook
import numpy as np
import pytest

import npmobilenet
from npmobilenet import cli
from npmobilenet.io import imagenet, write_file

GOLDEN = pathlib.Path(__file__).parent / "golden"
sys.path.insert(0, str(GOLDEN))
from fill import fill_state  # noqa: E402

PHOTO = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
G = np.load(GOLDEN / "predict_grace_hopper.npz")
MODEL = str(G["model"])


def run_cli(argv, capsys, monkeypatch):
    # Only this part's commands, so these tests do not depend on the other sub-commands' modules.
    monkeypatch.setattr(cli, "COMMANDS", {k: cli.COMMANDS[k] for k in ("predict", "convert")})
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """The golden model's seeded weights, as a bare state dict (like a timm file) and as ours."""
    d = tmp_path_factory.mktemp("weights")
    m = npmobilenet.create_model(MODEL)
    state = fill_state({k: v.shape for k, v in m.state_dict().items()}, int(G["seed"]))
    write_file(d / "bare.npz", state)
    m.load_state_dict(state)
    npmobilenet.save(m, d / "ours.npz")
    return d


# ---- the preprocessing table ------------------------------------------------------------------
@pytest.mark.parametrize("name, size, crop_pct, interpolation, mean, tag", [
    # timm 1.0.31, timm.models.get_pretrained_cfg(name.tag) / create_model(name).pretrained_cfg
    ("mobilenetv3_large_100", 224, 0.875, "bicubic", (0.485, 0.456, 0.406), "ra_in1k"),
    ("mobilenetv3_large_100.miil_in21k_ft_in1k", 224, 0.875, "bilinear", (0.0, 0.0, 0.0), "miil_in21k_ft_in1k"),
    ("mobilenetv3_large_075", 224, 0.875, "bilinear", (0.485, 0.456, 0.406), "untrained"),
    ("mobilenetv1_100", 224, 0.875, "bicubic", (0.5, 0.5, 0.5), "ra4_e3600_r224_in1k"),
    ("mobilenetv4_conv_medium", 256, 0.95, "bicubic", (0.485, 0.456, 0.406), "e500_r256_in1k"),
    ("mobilenetv4_conv_medium.e500_r224_in1k", 224, 0.95, "bicubic", (0.485, 0.456, 0.406), "e500_r224_in1k"),
    ("mobilenetv4_hybrid_large", 384, 0.95, "bicubic", (0.485, 0.456, 0.406), "ix_e600_r384_in1k"),
])
def test_data_config_is_timms(name, size, crop_pct, interpolation, mean, tag):
    cfg = imagenet.data_config(name)
    assert cfg["input_size"] == (3, size, size) and cfg["crop_pct"] == crop_pct
    assert cfg["interpolation"] == interpolation and cfg["mean"] == mean and cfg["tag"] == tag


def test_data_config_unknown_tag_lists_the_tags():
    with pytest.raises(ValueError, match="ra_in1k"):
        imagenet.data_config("mobilenetv3_large_100.no_such_tag")


def test_data_config_for_a_name_timm_lacks_is_timms_default():
    cfg = imagenet.data_config("mobilenetv1_025")  # npmobilenet only
    assert cfg["tag"] is None and cfg["interpolation"] == "bilinear" and cfg["crop_pct"] == 0.875


def test_every_model_has_preprocessing():
    for name in npmobilenet.list_models():
        assert imagenet.data_config(name)["input_size"][0] == 3


# ---- class names ------------------------------------------------------------------------------
def test_imagenet_class_names():
    names = imagenet.class_names()
    assert len(names) == 1000 and len(set(names)) == 1000
    # torchvision 0.29.1 _IMAGENET_CATEGORIES; synsets: timm imagenet_synsets.txt
    assert names[0] == "tench" and names[1] == "goldfish" and names[999] == "toilet tissue"
    assert names[652] == "military uniform"
    assert imagenet.read_classes()[0][0] == "n01440764"


# ---- preprocessing: pixel for pixel as timm's transform ----------------------------------------
@pytest.mark.parametrize("name", ["mobilenetv3_small_100", "mobilenetv1_100", "mobilenetv3_large_075",
                                  "mobilenetv4_conv_medium", "mobilenetv4_hybrid_medium_075"])
def test_preprocess_equals_timms_transform(name):
    img = imagenet.read_image(PHOTO)
    assert img.dtype == np.uint8 and img.shape == tuple(G["image_shape"])
    x = imagenet.preprocess(img, imagenet.data_config(name))
    assert x.dtype == np.float32 and x.shape == tuple(G[f"{name}/shape"])
    flat = x.reshape(-1)
    np.testing.assert_allclose(flat[G[f"{name}/positions"]], G[f"{name}/values"], rtol=0, atol=1e-6)
    np.testing.assert_allclose([flat.sum(dtype=np.float64), (flat.astype(np.float64) ** 2).sum()],
                               G[f"{name}/sums"], rtol=1e-9)


@pytest.mark.parametrize("filename, resize", [("mobilenet_v3_large-8738ca79.pth", 256),
                                              ("mobilenet_v3_large-5c1a4163.pth", 232)])
def test_preprocess_equals_torchvisions_transform(filename, resize):
    """torchvision's weights are evaluated with its own transform; the file name's hash picks it."""
    from npmobilenet.io.torchvision_map import torchvision_data_config

    cfg = torchvision_data_config(f"/cache/{filename}", "mobilenetv3_large_100")
    assert cfg["resize_size"] == resize and cfg["interpolation"] == "bilinear"
    x = imagenet.preprocess(imagenet.read_image(PHOTO), cfg).reshape(-1)
    key = f"torchvision_{resize}"
    np.testing.assert_allclose(x[G[f"{key}/positions"]], G[f"{key}/values"], rtol=0, atol=1e-6)
    np.testing.assert_allclose([x.sum(dtype=np.float64), (x.astype(np.float64) ** 2).sum()],
                               G[f"{key}/sums"], rtol=1e-9)


def test_resize_keeps_aspect_and_crop_is_central():
    img = np.zeros((100, 300, 3), np.uint8)
    img[:, 140:160] = 255  # a white bar in the centre
    out = imagenet.resize_shorter(img, 50, "bilinear")
    assert out.shape == (50, 150, 3)
    crop = imagenet.center_crop(out, 50)
    assert crop.shape == (50, 50, 3) and crop[:, 25].min() == 255 and crop[:, 0].max() == 0


def test_greyscale_and_rgba_images(tmp_path):
    import matplotlib.image

    rgba = np.random.default_rng(0).random((20, 30, 4)).astype(np.float32)
    matplotlib.image.imsave(tmp_path / "a.png", rgba)
    img = imagenet.read_image(tmp_path / "a.png")
    assert img.shape == (20, 30, 3) and img.dtype == np.uint8
    grey = np.asarray(np.random.default_rng(1).integers(0, 256, (20, 30)), np.uint8)
    from PIL import Image
    Image.fromarray(grey).save(tmp_path / "g.png")
    img = imagenet.read_image(tmp_path / "g.png")
    assert img.shape == (20, 30, 3) and np.array_equal(img[:, :, 1], grey)


def test_topk_orders_and_normalises():
    idx, p = imagenet.topk(np.array([[0.0, 3.0, 1.0, 3.0, -1.0]]), k=3)
    assert idx.tolist() == [[1, 3, 2]]
    assert np.all(np.diff(p[0]) <= 0) and p[0].sum() < 1


# ---- end to end ---------------------------------------------------------------------------------
def test_model_logits_on_the_photo_equal_timms(weights):
    model = npmobilenet.load(weights / "ours.npz")
    x = imagenet.preprocess(imagenet.read_image(PHOTO), imagenet.data_config(MODEL))
    logits = model(x[None])[0]
    ref = G["logits"]
    np.testing.assert_allclose(logits, ref, rtol=0, atol=1e-4 * np.abs(ref).max())
    assert imagenet.topk(logits)[0][0].tolist() == G["top5"].tolist()


@pytest.mark.parametrize("args", [["--weights", "ours.npz"], ["--weights", "bare.npz", "--model", MODEL]],
                         ids=["manifest", "named"])
def test_predict_command_prints_timms_top5(weights, args, capsys, monkeypatch):
    argv = ["predict", PHOTO] + [str(weights / a) if a.endswith(".npz") else a for a in args]
    code, out, err = run_cli(argv, capsys, monkeypatch)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"{MODEL}") and "resize 256 bicubic, crop 224x224" in lines[0]
    assert lines[1] == PHOTO
    rows = [line.split() for line in lines[2:7]]
    assert [int(r[2]) for r in rows] == G["top5"].tolist()
    names = imagenet.class_names()
    assert [" ".join(r[3:]) for r in rows] == [names[i] for i in G["top5"]]


def test_predict_json_for_two_images(weights, capsys, monkeypatch):
    code, out, err = run_cli(["predict", "--json", "--weights", str(weights / "ours.npz"), PHOTO, PHOTO],
                             capsys, monkeypatch)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["model"] == MODEL and doc["tag"] is None and len(doc["predictions"]) == 2
    for pred in doc["predictions"]:
        assert [t["index"] for t in pred["top"]] == G["top5"].tolist()
        assert pred["top"][0]["label"] == imagenet.class_names()[G["top5"][0]]


@pytest.mark.parametrize("argv, message", [
    (["predict", "--weights", "{w}/ours.npz", "missing.jpg"], "no such image: missing.jpg"),
    (["predict", "--weights", "{w}/absent.npz", PHOTO], "no such weights file"),
    (["predict", "--weights", "{w}/bare.npz", PHOTO], "--model"),
    (["predict", "--weights", "{w}/ours.npz", "--model", "mobilenetv3_large_100", PHOTO],
     "holds mobilenetv3_small_100 weights"),
    (["predict", "--weights", "{w}/ours.npz", "--topk", "0", PHOTO], "--topk"),
])
def test_predict_user_errors_are_one_message(weights, capsys, monkeypatch, argv, message):
    argv = [a.replace("{w}", str(weights)) for a in argv]
    code, out, err = run_cli(argv, capsys, monkeypatch)
    assert code == 2 and message in err and "Traceback" not in err
    assert err.startswith("npmobilenet predict: error:")


def test_predict_and_convert_are_registered():
    assert "predict" in cli.COMMANDS and "convert" in cli.COMMANDS


def test_convert_torchvision_to_ours_and_back(tmp_path, capsys, monkeypatch):
    g = np.load(GOLDEN / "torchvision_mobilenet_v3_small.npz")
    shapes = dict(zip([str(k) for k in g["keys"]], map(tuple, json.loads(str(g["shapes"])))))
    write_file(tmp_path / "tv.npz", fill_state(shapes, int(g["seed"])))
    code, out, err = run_cli(["convert", str(tmp_path / "tv.npz"), str(tmp_path / "ours.npz")], capsys, monkeypatch)
    assert code == 0, err and "mobilenetv3_small_100" in out
    m = npmobilenet.load(tmp_path / "ours.npz")  # the manifest carries torchvision's eps
    assert {b.eps for b in m.modules() if type(b).__name__ == "BatchNorm2d"} == {1e-3}
    code, out, err = run_cli(["convert", "--torchvision", str(tmp_path / "ours.npz"), str(tmp_path / "tv2.npz")],
                             capsys, monkeypatch)
    assert code == 0, err
    back = dict(np.load(tmp_path / "tv2.npz"))
    assert [k for k in back if not k.endswith("num_batches_tracked")] == list(shapes)
