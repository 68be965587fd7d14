#!/usr/bin/python3
"""Writes PyTorch goldens for drcnn's layers and backbones to tests/data/models/.

Run with Debian's python3-torch / python3-torchvision (torch 1.13, torchvision 0.14, CPU):
    /usr/bin/python3 tools/golden_models.py [--out tests/data/models]

No weights are committed: both sides fill every parameter and buffer with the same formula of
its name (deterministic_fill below; the C++ twin is tests/common/deterministic_fill.h), so only
the outputs and gradients are stored. Models run in float64; outputs are stored as float32
where they are large (the tests state the tolerance that storage rounding implies).

  basic_block.safetensors  torchvision BasicBlock(32 -> 64, stride 2, downsample), BatchNorm2d in
                           training mode: output, input gradient, conv1 weight gradient, running stats after
  bottleneck.safetensors   torchvision Bottleneck(32 -> 16x4, stride 2, downsample), FrozenBatchNorm2d
                           (eps 1e-5): output, input gradient, conv2 and downsample weight gradients
  resnet50.safetensors     torchvision resnet50(norm_layer=FrozenBatchNorm2d) trunk on a 1x3x64x96 input:
                           C2..C5 and the gradient of sum(C2..C5 weighted) w.r.t. the input
  resnet50_fpn.safetensors the same trunk + torchvision FeaturePyramidNetwork(LastLevelMaxPool), which is
                           MMDetection's FPN with a max-pool P6 under other names: P2..P6
"""
import argparse
import math
import os
import sys

import torch
import torchvision
from torchvision.models import resnet
from torchvision.ops import FrozenBatchNorm2d
from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_writer  # noqa: E402


def fnv1a(name):
    h = 0x811C9DC5
    for b in name.encode():
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def deterministic_values(name, shape):
    """value[k] = amplitude * sin(0.7 k + phase) (+ offset), phase from the FNV-1a hash of the
    name; amplitude and offset by the tensor's role (see tests/common/deterministic_fill.h)."""
    n = 1
    for s in shape:
        n *= s
    phase = (fnv1a(name) % 10007) / 10007.0 * 2.0 * math.pi
    k = torch.arange(n, dtype=torch.float64)
    s = torch.sin(0.7 * k + phase)
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "running_mean":
        v = 0.1 * s
    elif leaf == "running_var":
        v = 1.0 + 0.2 * s
    elif len(shape) >= 2:  # conv / linear weight: std sqrt(1 / fan_in)
        fan_in = n // shape[0]
        v = math.sqrt(2.0 / fan_in) * s
    elif leaf == "weight":  # norm weight
        v = 1.0 + 0.1 * s
    else:  # biases
        v = 0.1 * s
    return v.reshape(shape)


def fill(module, rename=lambda n: n):
    with torch.no_grad():
        for name, t in list(module.named_parameters()) + list(module.named_buffers()):
            if t.dtype == torch.int64:
                continue  # num_batches_tracked
            t.copy_(deterministic_values(rename(name), tuple(t.shape)))


def input_values(shape):
    """x[k] = 2 sin(0.013 k) (tests/common/deterministic_fill.h: deterministic_input)."""
    n = 1
    for s in shape:
        n *= s
    return (2.0 * torch.sin(0.013 * torch.arange(n, dtype=torch.float64))).reshape(shape)


def output_weights(shape):
    """The upstream gradient used for backward: w[k] = cos(0.011 k)."""
    n = 1
    for s in shape:
        n *= s
    return torch.cos(0.011 * torch.arange(n, dtype=torch.float64)).reshape(shape)


def frozen_bn(c):
    return FrozenBatchNorm2d(c, eps=1e-5)


def basic_block():
    down = torch.nn.Sequential(torch.nn.Conv2d(32, 64, 1, stride=2, bias=False), torch.nn.BatchNorm2d(64))
    m = resnet.BasicBlock(32, 64, stride=2, downsample=down).double().train()
    fill(m)
    x = input_values((2, 32, 10, 12)).requires_grad_(True)
    y = m(x)
    y.backward(output_weights(y.shape))
    return {"output": y.detach(), "grad_input": x.grad, "grad_conv1_weight": m.conv1.weight.grad,
            "grad_bn1_weight": m.bn1.weight.grad,
            "bn1_running_mean": m.bn1.running_mean, "bn1_running_var": m.bn1.running_var,
            "downsample_1_running_var": m.downsample[1].running_var}


def bottleneck():
    down = torch.nn.Sequential(torch.nn.Conv2d(32, 64, 1, stride=2, bias=False), frozen_bn(64))
    m = resnet.Bottleneck(32, 16, stride=2, downsample=down, norm_layer=frozen_bn).double()
    fill(m)
    x = input_values((2, 32, 9, 14)).requires_grad_(True)
    y = m(x)
    y.backward(output_weights(y.shape))
    return {"output": y.detach(), "grad_input": x.grad, "grad_conv2_weight": m.conv2.weight.grad,
            "grad_downsample_0_weight": m.downsample[0].weight.grad}


def resnet50_trunk():
    m = resnet.resnet50(norm_layer=frozen_bn).double()
    fill(m)
    return m


def trunk_forward(m, x):
    x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
    outs = []
    for layer in (m.layer1, m.layer2, m.layer3, m.layer4):
        x = layer(x)
        outs.append(x)
    return outs


def resnet50_golden():
    m = resnet50_trunk()
    x = input_values((1, 3, 64, 96)).requires_grad_(True)
    outs = trunk_forward(m, x)
    loss = sum((o * output_weights(o.shape)).sum() for o in outs)
    loss.backward()
    res = {f"C{i + 2}": o.detach().float() for i, o in enumerate(outs)}
    res["grad_input"] = x.grad
    # torchvision's state-dict keys and shapes (without the classifier), for the naming test.
    keys = [f"{k}:{'x'.join(map(str, v.shape))}" for k, v in m.state_dict().items() if not k.startswith("fc.")]
    return res, {"state_keys": ",".join(keys)}


def fpn_rename(name):
    """torchvision FeaturePyramidNetwork names -> MMDetection FPN names (what drcnn uses)."""
    parts = name.split(".")
    kind = {"inner_blocks": "lateral_convs", "layer_blocks": "fpn_convs"}[parts[0]]
    return f"{kind}.{parts[1]}.conv.{parts[-1]}"


def resnet50_fpn_golden():
    m = resnet50_trunk()
    fpn = FeaturePyramidNetwork([256, 512, 1024, 2048], 256, extra_blocks=LastLevelMaxPool()).double()
    fill(fpn, fpn_rename)
    with torch.no_grad():
        outs = trunk_forward(m, input_values((1, 3, 64, 96)))
        p = fpn({str(i): o for i, o in enumerate(outs)})
    keys = [f"{fpn_rename(k)}:{'x'.join(map(str, v.shape))}" for k, v in fpn.state_dict().items()]
    return {f"P{i + 2}": v.float() for i, v in enumerate(p.values())}, {"state_keys": ",".join(keys)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "data", "models"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    meta = {"torch": torch.__version__, "torchvision": torchvision.__version__, "script": "tools/golden_models.py"}
    for name, fn in (("basic_block", basic_block), ("bottleneck", bottleneck), ("resnet50", resnet50_golden),
                     ("resnet50_fpn", resnet50_fpn_golden)):
        tensors = fn()
        extra = {}
        if isinstance(tensors, tuple):
            tensors, extra = tensors
        path = os.path.join(args.out, f"{name}.safetensors")
        safetensors_writer.save(path, tensors, {**meta, **extra})
        print(f"{path}: " + ", ".join(f"{k} {list(v.shape)}" for k, v in tensors.items()) +
              f" ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
