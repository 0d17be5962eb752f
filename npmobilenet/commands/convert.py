"""``npmobilenet convert``: move weights between formats and layouts.

    npmobilenet convert mobilenet_v3_large-8738ca79.pth mnv3.npz        # torchvision -> ours
    npmobilenet convert run/model.npz model.safetensors                  # ours -> timm
    npmobilenet convert run/model.npz export/ --timm-folder              # config.json + safetensors
    npmobilenet convert model.safetensors tv.pth --model mobilenetv3_large_100 --torchvision

The input is read as ``npmobilenet.load`` reads it (so a torchvision file becomes the timm-named
model, and the output's manifest records what to build); the output format follows its suffix.
"""
from __future__ import annotations

import os


def add_arguments(p):
    p.add_argument("input", help="weights: .npz, .safetensors, .pth, or a timm model folder")
    p.add_argument("output", help="the file to write (.npz, .safetensors or .pth) or, with "
                                  "--timm-folder, a folder")
    p.add_argument("--model", metavar="NAME[.TAG]", help="model name, when the input does not name it")
    p.add_argument("--timm-folder", action="store_true",
                   help="write a timm model folder (model.safetensors + config.json) for "
                        "timm.create_model('local-dir:OUTPUT', pretrained=True)")
    p.add_argument("--torchvision", action="store_true",
                   help="write torchvision's layout (mobilenet_v2 / mobilenet_v3_large / _small)")


def run(args):
    from ..io import MissingExtra, load, save, save_pretrained, to_torchvision, write_file

    if args.timm_folder and args.torchvision:
        raise ValueError("choose one of --timm-folder and --torchvision")
    try:
        model = load(args.input, args.model)
        if args.timm_folder:
            save_pretrained(model, args.output)
            what = f"{os.path.join(args.output, 'model.safetensors')} + config.json"
        elif args.torchvision:
            write_file(args.output, to_torchvision(model.state_dict(), model.name))
            what = f"{args.output} (torchvision layout)"
        else:
            save(model, args.output)
            what = args.output
    except MissingExtra as e:
        raise ValueError(str(e)) from e
    n = model.num_parameters()
    print(f"wrote {what}: {model.name}, {len(model.state_dict())} tensors, {n:,} parameters")
    return 0
