#!/usr/bin/python3
"""Exports a real torchvision ResNet state_dict to safetensors and checks that drcnn, loading
it by name, reproduces torchvision's C2..C5 (the weights are ~100 MB for ResNet-50, so this is
a script run, not a committed golden; tests/models/ covers the names and the math with goldens).

    /usr/bin/python3 tools/check_torchvision_resnet.py --binary build/ci/examples/drcnn_compare_resnet \
        [--depth 50] [--workdir /tmp/drcnn_tv_resnet]

The model is torchvision.models.resnet{18,34,50,101}() with torchvision's own initialisation,
then a few training-mode forward passes on random images so the BatchNorm running statistics are
not the trivial 0 / 1; it is exported in eval mode (BatchNorm with running statistics, eps 1e-5,
which drcnn's FrozenBatchNorm2d with eps 1e-5 computes). The input is a random 2x3x224x288 batch.
"""
import argparse
import os
import subprocess
import sys

import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_writer  # noqa: E402


def trunk_outputs(model, x):
    """C2..C5 of a torchvision ResNet (no gradient)."""
    with torch.no_grad():
        y = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        outs = {}
        for i, layer in enumerate((model.layer1, model.layer2, model.layer3, model.layer4)):
            y = layer(y)
            outs[f"C{i + 2}"] = y
    return outs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", required=True, help="drcnn_compare_resnet executable")
    ap.add_argument("--depth", type=int, default=50, choices=(18, 34, 50, 101))
    ap.add_argument("--workdir", default="/tmp/drcnn_tv_resnet")
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    torch.manual_seed(0)
    model = getattr(torchvision.models, f"resnet{args.depth}")()
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(2, 3, 128, 160) * 0.5 + 0.1)
    model.eval()
    x = torch.randn(2, 3, 224, 288)
    outs = trunk_outputs(model, x)
    weights = os.path.join(args.workdir, f"resnet{args.depth}.safetensors")
    io = os.path.join(args.workdir, f"resnet{args.depth}_io.safetensors")
    safetensors_writer.save(weights, model.state_dict(), {"source": f"torchvision.models.resnet{args.depth}()"})
    safetensors_writer.save(io, {"input": x, **outs})
    print(f"wrote {weights} ({os.path.getsize(weights) / 1e6:.1f} MB) and {io}")
    cmd = [args.binary, weights, io, str(args.depth)]
    print("running", " ".join(cmd), flush=True)
    sys.exit(subprocess.call(cmd))


if __name__ == "__main__":
    main()
