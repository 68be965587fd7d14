#!/usr/bin/env python3
"""Checks the Detectron path end to end: a ResNet written as Detectron's R-50.pkl / R-101.pkl
(caffe2 blob names, AffineChannel instead of BatchNorm, stride on the first 1x1), converted by
tools/convert_checkpoint.py, loaded into drcnn's ResNet with style caffe and frozen BN eps 0,
gives the same C2..C5 as the caffe-style network in torch.

    python3 tools/check_detectron_resnet.py --binary build/ci/examples/drcnn_compare_resnet \
        [--depth 50] [--workdir /tmp/drcnn_detectron_resnet]

The reference is torchvision's ResNet made caffe style (each stage's first bottleneck strides in
conv1 instead of conv2) with every BatchNorm an affine channel (running mean 0, variance 1,
eps 0: y = x * s + b, Caffe2's AffineChannel) and random scales and shifts; its weights are
written as a Detectron pickle ({"blobs": {name: numpy array}}, protocol 2, as Detectron's files).
"""
import argparse
import os
import pickle
import subprocess
import sys

import torch
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import check_torchvision_resnet  # noqa: E402
import convert_checkpoint  # noqa: E402
import safetensors_writer  # noqa: E402

BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}


def to_detectron_blobs(sd, depth):
    """A torchvision bottleneck ResNet state dict spelled as Detectron's blobs (plus its classifier
    and one training-state blob, which the converter must list and leave out)."""
    blobs = {"conv1_w": sd["conv1.weight"].numpy(), "res_conv1_bn_s": sd["bn1.weight"].numpy(),
             "res_conv1_bn_b": sd["bn1.bias"].numpy(), "pred_w": sd["fc.weight"].numpy(),
             "pred_b": sd["fc.bias"].numpy(), "conv1_w_momentum": sd["conv1.weight"].numpy()}
    for s, nb in enumerate(BLOCKS[depth], start=1):
        for b in range(nb):
            p, q = f"layer{s}.{b}.", f"res{s + 1}_{b}_"
            for i, br in ((1, "2a"), (2, "2b"), (3, "2c")):
                blobs[f"{q}branch{br}_w"] = sd[f"{p}conv{i}.weight"].numpy()
                blobs[f"{q}branch{br}_bn_s"] = sd[f"{p}bn{i}.weight"].numpy()
                blobs[f"{q}branch{br}_bn_b"] = sd[f"{p}bn{i}.bias"].numpy()
            if b == 0:
                blobs[f"{q}branch1_w"] = sd[f"{p}downsample.0.weight"].numpy()
                blobs[f"{q}branch1_bn_s"] = sd[f"{p}downsample.1.weight"].numpy()
                blobs[f"{q}branch1_bn_b"] = sd[f"{p}downsample.1.bias"].numpy()
    return blobs


def caffe_resnet(depth, seed):
    torch.manual_seed(seed)
    m = getattr(torchvision.models, f"resnet{depth}")()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.eps = 0.0
                mod.running_mean.zero_()
                mod.running_var.fill_(1.0)
                mod.weight.copy_(torch.rand(mod.weight.shape, generator=g) * 0.5 + 0.25)
                mod.bias.copy_(torch.randn(mod.bias.shape, generator=g) * 0.1)
    for layer in (m.layer2, m.layer3, m.layer4):
        layer[0].conv1.stride = (2, 2)  # caffe style: the stride moves to the first 1x1
        layer[0].conv2.stride = (1, 1)
    return m.eval()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", required=True, help="drcnn_compare_resnet executable")
    ap.add_argument("--depth", type=int, default=50, choices=(50, 101))
    ap.add_argument("--workdir", default="/tmp/drcnn_detectron_resnet")
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    m = caffe_resnet(a.depth, 0)
    pkl = os.path.join(a.workdir, f"R-{a.depth}.pkl")
    with open(pkl, "wb") as f:
        pickle.dump({"blobs": to_detectron_blobs(m.state_dict(), a.depth)}, f, protocol=2)
    weights = os.path.join(a.workdir, f"R-{a.depth}.safetensors")
    convert_checkpoint.convert(pkl, weights)
    x = torch.randn(2, 3, 224, 288, generator=torch.Generator().manual_seed(7)) * 50
    outs = check_torchvision_resnet.trunk_outputs(m, x)
    io = os.path.join(a.workdir, "io.safetensors")
    safetensors_writer.save(io, {"input": x, **outs})
    return subprocess.run([a.binary, weights, io, str(a.depth), "caffe", "0"]).returncode


if __name__ == "__main__":
    sys.exit(main())
