"""Weights in and out: our ``.npz``, timm's ``.safetensors``, PyTorch ``.pth``, torchvision's layout.

::

    model = npmobilenet.create_model("mobilenetv3_small_050", num_classes=10)
    npmobilenet.save(model, "run/model.npz")
    again = npmobilenet.load("run/model.npz")     # no name needed: the file says

* ``save(model, path, metadata=None)`` / ``load(path, model=None, **kwargs)`` /
  ``load_weights(model, path)``: see ``checkpoint.py``.
* ``save_pretrained(model, folder)``: a timm model folder (``hub.py``), for
  ``timm.create_model("local-dir:folder", pretrained=True)``.
* ``read_state_dict(path)``: the raw tensors and the manifest of any supported file.
* ``from_torchvision`` / ``to_torchvision`` / ``key_map``: torchvision's V2/V3 layout
  (``torchvision_map.py``).
* ``data_config``, ``read_image``, ``preprocess``, ``class_names``, ``topk``: timm's eval
  preprocessing and the ImageNet labels (``imagenet.py``).
* Errors: ``CheckpointError`` (a ``ValueError``) and ``MissingExtra`` (an ``ImportError``).
"""
from .checkpoint import differences, load, load_weights, read_state_dict, save
from .errors import CheckpointError, MissingExtra
from .formats import read_file, write_file
from .hub import save_pretrained
from .imagenet import class_names, data_config, preprocess, read_image, topk
from .torchvision_map import TORCHVISION_MODELS, from_torchvision, key_map, to_torchvision

__all__ = ["save", "load", "load_weights", "read_state_dict", "differences", "save_pretrained",
           "read_file", "write_file", "CheckpointError", "MissingExtra", "from_torchvision",
           "to_torchvision", "key_map", "TORCHVISION_MODELS", "class_names", "data_config",
           "preprocess", "read_image", "topk"]
