#!/usr/bin/env python3
"""Checks the seed's DCNv2 checkpoints end to end: a caffe-style ResNet-50 trunk whose layer2..layer4
3x3 convs are the seed's DFConv2d (hkzhang95/DynamicRCNN dynamic_rcnn/utils/misc.py: offset conv
of 27 channels, offset = out[:, :18], mask = sigmoid(out[:, -9:]), modulated deformable conv),
written with the seed's names inside a (tiny-headed) maskrcnn-benchmark detector checkpoint,
converted by tools/convert_checkpoint.py, run in drcnn's ResNet with stage_with_dcn
[false, true, true, true], gives the same C2..C5 as the torch model.

    python3 tools/check_dcn_resnet.py --binary build/ci/examples/drcnn_compare_resnet \
        [--workdir /tmp/drcnn_dcn_resnet]

The reference's modulated deformable conv is torchvision.ops.deform_conv2d with mask, whose
offset layout ((dy, dx) per tap, row-major taps) is the one the seed's
deform_conv_kernel_cuda.cu reads (docs/checkpoints.md, "DCNv2 checkpoints"). The offset convs
get random weights and biases so that sampling points move by fractions of a pixel to a few
pixels and masks vary: a wrong channel split or (dx, dy) order shows as a large error.
"""
import argparse
import os
import subprocess
import sys

import torch
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import check_detectron_resnet  # noqa: E402
import check_torchvision_resnet  # noqa: E402
import convert_checkpoint  # noqa: E402
import safetensors_writer  # noqa: E402
from test_convert_checkpoint import read_safetensors, to_maskrcnn_benchmark  # noqa: E402


class SeedDFConv2d(torch.nn.Module):
    """DFConv2d(with_modulated_dcn=True, deformable_groups=1) of the seed, 3x3, padding 1."""

    def __init__(self, conv, g):
        super().__init__()
        c = conv.in_channels
        self.stride = conv.stride
        self.offset = torch.nn.Conv2d(c, 27, 3, stride=conv.stride, padding=1)
        with torch.no_grad():
            self.offset.weight.copy_(torch.randn(self.offset.weight.shape, generator=g) * 0.002)
            self.offset.bias.copy_(torch.randn(27, generator=g) * 1.5)
        self.weight = conv.weight

    def forward(self, x):
        offset_mask = self.offset(x)
        offset = offset_mask[:, :18]
        mask = offset_mask[:, -9:].sigmoid()
        return torchvision.ops.deform_conv2d(x, offset, self.weight, stride=self.stride, padding=1, mask=mask)


def dcn_resnet(seed):
    m = check_detectron_resnet.caffe_resnet(50, seed)
    g = torch.Generator().manual_seed(seed + 2)
    for layer in (m.layer2, m.layer3, m.layer4):
        for block in layer:
            block.conv2 = SeedDFConv2d(block.conv2, g)
    return m.eval()


def drcnn_named_detector(m):
    """The trunk in drcnn's names (DFConv2d's offset conv as conv2.conv_offset), with a tiny FPN and
    heads so that the file is a whole detector as the seed writes it."""
    state = {}
    for k, v in m.state_dict().items():
        if k.startswith("fc.") or k.endswith("num_batches_tracked"):
            continue
        k = k.replace(".conv2.offset.", ".conv2.conv_offset.")
        state["backbone." + k] = v.detach().clone()
    fpn, g = 8, torch.Generator().manual_seed(3)
    for i, c in enumerate((256, 512, 1024, 2048)):
        state[f"neck.lateral_convs.{i}.conv.weight"] = torch.randn(fpn, c, 1, 1, generator=g)
        state[f"neck.lateral_convs.{i}.conv.bias"] = torch.randn(fpn, generator=g)
        state[f"neck.fpn_convs.{i}.conv.weight"] = torch.randn(fpn, fpn, 3, 3, generator=g)
        state[f"neck.fpn_convs.{i}.conv.bias"] = torch.randn(fpn, generator=g)
    for name, shape in (("rpn_head.rpn_conv", (fpn, fpn, 3, 3)), ("rpn_head.rpn_cls", (3, fpn, 1, 1)),
                        ("rpn_head.rpn_reg", (12, fpn, 1, 1)), ("roi_head.bbox_head.shared_fcs.0", (16, fpn * 49)),
                        ("roi_head.bbox_head.shared_fcs.1", (16, 16)), ("roi_head.bbox_head.fc_cls", (4, 16)),
                        ("roi_head.bbox_head.fc_reg", (12, 16))):
        state[name + ".weight"] = torch.randn(*shape, generator=g)
        state[name + ".bias"] = torch.randn(shape[0], generator=g)
    return state


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", required=True, help="drcnn_compare_resnet executable")
    ap.add_argument("--workdir", default="/tmp/drcnn_dcn_resnet")
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    m = dcn_resnet(0)
    seed_state = to_maskrcnn_benchmark(drcnn_named_detector(m))
    assert "module.backbone.body.layer3.5.conv2.offset.weight" in seed_state
    assert "module.backbone.body.layer3.5.conv2.conv.weight" in seed_state
    pth = os.path.join(a.workdir, "seed_dcn.pth")
    torch.save({"model": seed_state, "iteration": 270000}, pth)
    converted = os.path.join(a.workdir, "seed_dcn.safetensors")
    convert_checkpoint.convert(pth, converted)
    with open(os.path.join(a.workdir, "seed_dcn.yaml")) as f:
        cfg = f.read()
    assert "stage_with_dcn: [false, true, true, true]" in cfg, cfg
    tensors, _ = read_safetensors(converted)
    trunk = os.path.join(a.workdir, "trunk.safetensors")
    safetensors_writer.save(trunk, {k[len("backbone."):]: v for k, v in tensors.items() if k.startswith("backbone.")})
    x = torch.randn(2, 3, 160, 224, generator=torch.Generator().manual_seed(7)) * 50
    with torch.no_grad():
        outs = check_torchvision_resnet.trunk_outputs(m, x)
    io = os.path.join(a.workdir, "io.safetensors")
    safetensors_writer.save(io, {"input": x, **outs})
    return subprocess.run([a.binary, trunk, io, "50", "caffe", "0", "0111"]).returncode


if __name__ == "__main__":
    sys.exit(main())
