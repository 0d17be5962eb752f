"""Write tests/golden/torchvision_<model>.npz: torchvision's logits for seeded weights.

Run with torch and torchvision installed (never needed by the package or its tests)::

    python tests/golden/make_torchvision_golden.py

For each of torchvision's ``mobilenet_v2``, ``mobilenet_v3_large`` and ``mobilenet_v3_small``:
fill every tensor of its ``state_dict`` with ``fill.fill_state`` (seeded by key name, so the
torch-free test draws the same numbers from the stored key list), run it in float64 and eval
mode on a seeded batch of two 64x64 images, and store

- ``keys`` / ``shapes``: torchvision's state-dict keys and shapes (``num_batches_tracked`` left
  out), in its order -- what a real torchvision checkpoint holds;
- ``seed``, ``x_seed``: the fill seed and the input seed
  (``np.random.default_rng(x_seed).standard_normal((2, 3, 64, 64))``);
- ``logits``: torchvision's float64 output, shape (2, 1000);
- ``bn_eps``: the eps of torchvision's BatchNorm layers (1e-3 for V3, 1e-5 for V2).
"""
import json
import pathlib
import sys

import numpy as np
import torch
import torchvision

HERE = pathlib.Path(__file__).parent
sys.path.insert(0, str(HERE))
from fill import fill_state  # noqa: E402

SEED, X_SEED = 0, 1


def main():
    for arch in ("mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"):
        net = getattr(torchvision.models, arch)().double().eval()
        sd = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
        shapes = {k: tuple(v.shape) for k, v in sd.items()}
        values = fill_state(shapes, SEED)
        net.load_state_dict({k: torch.from_numpy(v) for k, v in values.items()}, strict=False)
        x = np.random.default_rng(X_SEED).standard_normal((2, 3, 64, 64))
        with torch.no_grad():
            logits = net(torch.from_numpy(x)).numpy()
        eps = {m.eps for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)}
        assert len(eps) == 1
        np.savez(HERE / f"torchvision_{arch}.npz", keys=np.array(list(shapes)),
                 shapes=np.array(json.dumps([list(s) for s in shapes.values()])),
                 seed=SEED, x_seed=X_SEED, logits=logits, bn_eps=eps.pop(),
                 versions=np.array(f"torch {torch.__version__}, torchvision {torchvision.__version__}"))
        print(arch, logits.shape, float(np.abs(logits).max()), float(logits.std()))


if __name__ == "__main__":
    main()
