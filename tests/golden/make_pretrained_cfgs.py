"""Write npmobilenet/io/pretrained_cfgs.py: timm's preprocessing numbers for every MobileNet weight.

Run with timm installed (never needed by the package or its tests)::

    python tests/golden/make_pretrained_cfgs.py > npmobilenet/io/pretrained_cfgs.py

For every timm model name of the V1-V4 families (``timm.list_models``) it records the default
tag (``timm.create_model(name).pretrained_cfg["tag"]``) and, for every tag with weights
(``timm.list_models(pretrained=True)``) plus each default tag, the fields of
``timm.models.get_pretrained_cfg(name.tag)`` that the eval transform and the labels use.
"""
import re

import timm
from timm.models import get_pretrained_cfg

FAMILY = re.compile(r"^(tf_)?mobilenetv[1-4]_")
MEANS = {(0.485, 0.456, 0.406): "IMAGENET", (0.5, 0.5, 0.5): "INCEPTION", (0.0, 0.0, 0.0): "ZERO"}
STDS = {(0.229, 0.224, 0.225): "IMAGENET_STD", (0.5, 0.5, 0.5): "INCEPTION", (1.0, 1.0, 1.0): "ONE"}


def row(full):
    c = get_pretrained_cfg(full)
    c = c.to_dict() if hasattr(c, "to_dict") else dict(c.__dict__)
    size = c["input_size"][1]
    test = c.get("test_input_size")
    return (f"    {full!r}: ({size}, {c['crop_pct']!r}, {c['interpolation']!r}, "
            f"{MEANS[tuple(c['mean'])]}, {STDS[tuple(c['std'])]}, {c.get('crop_mode') or 'center'!r}, "
            f"{c['num_classes']}, {test[1] if test else None}, {c.get('test_crop_pct')!r}),")


def main():
    names = [n for n in timm.list_models() if FAMILY.match(n)]
    defaults = {n: timm.create_model(n, pretrained=False).pretrained_cfg["tag"] for n in names}
    tagged = sorted(set(n for n in timm.list_models(pretrained=True) if FAMILY.match(n.split(".")[0]))
                    | {f"{n}.{t}" for n, t in defaults.items()})
    print(HEADER.format(version=timm.__version__))
    print("DEFAULT_TAGS = {")
    for n in names:
        print(f"    {n!r}: {defaults[n]!r},")
    print("}\n")
    print("# name.tag: (size, crop_pct, interpolation, mean, std, crop_mode, num_classes,")
    print("#            test_size, test_crop_pct)")
    print("CFGS = {")
    for full in tagged:
        print(row(full))
    print("}")


HEADER = '''"""timm's eval preprocessing for every MobileNet V1-V4 weight, by ``name.tag``.

Generated from timm {version} by ``tests/golden/make_pretrained_cfgs.py`` (the fields of
``timm.models.get_pretrained_cfg(name.tag)``); do not edit by hand.  ``DEFAULT_TAGS`` is the tag
``timm.create_model(name)`` picks.  The eval transform is ``imagenet.preprocess``: resize the
shorter side to ``floor(size / crop_pct)``, centre-crop ``size``, scale to [0, 1], normalise.
``num_classes`` tells ImageNet-1k heads (1000) from ImageNet-12k/21k ones.
"""
IMAGENET = (0.485, 0.456, 0.406)  # timm IMAGENET_DEFAULT_MEAN
INCEPTION = (0.5, 0.5, 0.5)  # timm IMAGENET_INCEPTION_MEAN / _STD
ZERO = (0.0, 0.0, 0.0)
ONE = (1.0, 1.0, 1.0)
IMAGENET_STD = (0.229, 0.224, 0.225)  # timm IMAGENET_DEFAULT_STD

# timm's ``_cfg`` defaults in mobilenetv3.py: for names without an entry below.
FALLBACK = (224, 0.875, "bilinear", IMAGENET, IMAGENET_STD, "center", 1000, None, None)
'''

if __name__ == "__main__":
    main()
