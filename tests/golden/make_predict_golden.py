"""Write tests/golden/predict_grace_hopper.npz: timm's preprocessing and top-5 on a real photo.

Run with timm installed (never needed by the package or its tests)::

    python tests/golden/make_predict_golden.py

The photo is matplotlib's sample ``grace_hopper.jpg`` (``matplotlib.cbook.get_sample_data``),
read as timm reads images: ``PIL.Image.open(path).convert("RGB")``.  For each model below the
transform is timm's own, ``create_transform(**resolve_data_config(model=model))``; the stored
checksums of its float32 output (sum, sum of squares, 64 values at seeded positions) let the
torch-free test check ``npmobilenet.io.preprocess`` pixel for pixel.

For ``MODEL`` the weights are ``fill.fill_state(model.state_dict(), SEED)``; its logits on the
preprocessed photo (eval mode) and their top-5 indices are stored too.  ``torchvision_256`` and
``torchvision_232`` hold the same checksums for torchvision's ``weights.transforms()`` of its
MobileNet V3 weights IMAGENET1K_V1 (resize 256) and IMAGENET1K_V2 (resize 232).
"""
import pathlib
import sys

import matplotlib.cbook
import numpy as np
import timm
import torch
from PIL import Image
from timm.data import create_transform, resolve_data_config

HERE = pathlib.Path(__file__).parent
sys.path.insert(0, str(HERE))
from fill import fill_state  # noqa: E402

MODEL, SEED = "mobilenetv3_small_100", 0
# One weight per kind of preprocessing: bicubic/ImageNet, bicubic/Inception mean, bilinear,
# 256 px at crop 0.95, 224 px at crop 0.95.
CONFIGS = ["mobilenetv3_small_100", "mobilenetv1_100", "mobilenetv3_large_075", "mobilenetv4_conv_medium",
           "mobilenetv4_hybrid_medium_075"]


def checksums(x, rng):
    flat = x.reshape(-1)
    pos = np.sort(rng.choice(flat.size, 64, replace=False))
    return np.array([flat.sum(dtype=np.float64), (flat.astype(np.float64) ** 2).sum()]), pos, flat[pos]


def main():
    path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    img = Image.open(path).convert("RGB")
    out = {"image_shape": np.array(np.asarray(img).shape)}
    for name in CONFIGS:
        m = timm.create_model(name, pretrained=False)
        cfg = resolve_data_config(model=m)
        x = create_transform(**cfg)(img).numpy()
        sums, pos, vals = checksums(x, np.random.default_rng(0))
        out[f"{name}/shape"], out[f"{name}/sums"] = np.array(x.shape), sums
        out[f"{name}/positions"], out[f"{name}/values"] = pos, vals
        print(name, cfg, x.shape, sums)
        if name == MODEL:
            sd = m.state_dict()
            values = fill_state({k: tuple(v.shape) for k, v in sd.items()}, SEED)
            m.load_state_dict({k: torch.from_numpy(v).float() for k, v in values.items()}, strict=False)
            m.eval()
            with torch.no_grad():
                logits = m(torch.from_numpy(x)[None]).numpy()[0]
            top = np.argsort(-logits)[:6]
            print("top-6", top, logits[top], "gaps", -np.diff(logits[top]))
            out["logits"], out["top5"] = logits, top[:5]
    # torchvision's own eval transforms for its MobileNet weights (resize 256 for V1, 232 for V2).
    from torchvision.models import MobileNet_V3_Large_Weights
    for weights, resize in ((MobileNet_V3_Large_Weights.IMAGENET1K_V1, 256),
                            (MobileNet_V3_Large_Weights.IMAGENET1K_V2, 232)):
        x = weights.transforms()(img).numpy()
        assert weights.transforms().resize_size == [resize]
        sums, pos, vals = checksums(x, np.random.default_rng(0))
        key = f"torchvision_{resize}"
        out[f"{key}/shape"], out[f"{key}/sums"] = np.array(x.shape), sums
        out[f"{key}/positions"], out[f"{key}/values"] = pos, vals
        print(key, x.shape, sums)
    out["model"], out["seed"] = np.array(MODEL), SEED
    out["versions"] = np.array(f"timm {timm.__version__}, torch {torch.__version__}")
    np.savez(HERE / "predict_grace_hopper.npz", **out)


if __name__ == "__main__":
    main()
