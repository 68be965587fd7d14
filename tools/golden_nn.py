#!/usr/bin/python3
"""PyTorch goldens for drcnn's layer ops (include/drcnn/ops/nn.h), forward and gradients.

Writes tests/data/nn/<op>.safetensors (one file per op) with tools/safetensors_writer.py.
Every case stores its inputs, outputs and gradients in float32 and float64 as
"<case>.<f32|f64>.<tensor>", plus an int64 "<case>.params" vector with the case's parameters,
and "__metadata__" {"cases": "a,b,...", "torch_version", "formula"}; tests/ops/test_nn_golden.cpp
reads the case list and parameters from the file, so the two cannot drift apart.

Inputs are a fixed formula (no generator): x[i] = sin(0.37 i + phase) * scale for the flat
row-major index i, and the output gradient g[i] = cos(0.71 i + 0.3). The tests run on the
stored tensors (and recompute the formula for the upsampling inputs to show it is reproducible).

Ops covered: max_pool2d (values, indices, grad; stem, ceil_mode, dilation, P6, rectangular,
ties and NaN), upsample_nearest2d (F.interpolate(mode='nearest', size=...); FPN odd sizes and
downsampling), FrozenBatchNorm2d (torchvision.ops.misc, eps 1e-5 and 0), batch norm (train:
three steps of running-stat updates then the gradients; eval: gradients for x, w, b),
group norm and linear.

Run with /usr/bin/python3 (torch 1.13 CPU): /usr/bin/python3 tools/golden_nn.py [--out DIR]
"""
import argparse
import math
import os
import sys

import torch
import torch.nn.functional as F
import torchvision
from torchvision.ops.misc import FrozenBatchNorm2d

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_writer  # noqa: E402  (tools/: the shared minimal writer)

DTYPES = {"f32": torch.float32, "f64": torch.float64}


def wave(shape, phase=0.0, scale=1.0, dtype=torch.float64):
    """sin(0.37 i + phase) * scale over the flat index, computed in float64 then cast."""
    n = math.prod(shape)
    i = torch.arange(n, dtype=torch.float64)
    return (torch.sin(0.37 * i + phase) * scale).reshape(shape).to(dtype)


def grad_wave(shape, dtype):
    n = math.prod(shape)
    i = torch.arange(n, dtype=torch.float64)
    return torch.cos(0.71 * i + 0.3).reshape(shape).to(dtype)


class Writer:
    def __init__(self):
        self.tensors = {}
        self.cases = []

    def case(self, name, params):
        self.cases.append(name)
        self.tensors[f"{name}.params"] = torch.tensor(params, dtype=torch.int64)

    def put(self, name, dt, tensors):
        for k, v in tensors.items():
            self.tensors[f"{name}.{dt}.{k}"] = v.detach()

    def save(self, path, extra_meta=None):
        meta = {"cases": ",".join(self.cases), "torch_version": torch.__version__,
                "torchvision_version": torchvision.__version__,
                "formula": "input sin(0.37 i + phase) * scale; grad_output cos(0.71 i + 0.3)"}
        meta.update(extra_meta or {})
        safetensors_writer.save(path, self.tensors, meta)
        print(f"{path}: {len(self.cases)} cases, {os.path.getsize(path)} bytes")


def max_pool(out_dir):
    w = Writer()
    # name: shape, kernel, stride, padding, dilation, ceil, rounding (0: plain wave, 1: round(3x): ties, 2: ties + NaN)
    cases = {
        "stem": ((2, 3, 13, 11), (3, 3), (2, 2), (1, 1), (1, 1), False, 0),
        "ceil": ((1, 2, 9, 8), (3, 3), (2, 2), (0, 0), (1, 1), True, 0),
        "ceil_pad": ((1, 2, 10, 7), (2, 2), (2, 2), (1, 1), (1, 1), True, 0),
        "dilated": ((1, 2, 10, 9), (3, 3), (1, 1), (1, 1), (2, 2), False, 0),
        "p6": ((1, 4, 7, 5), (1, 1), (2, 2), (0, 0), (1, 1), False, 0),
        "rect": ((2, 2, 9, 8), (3, 2), (2, 1), (1, 0), (1, 2), True, 0),
        "ties": ((1, 3, 8, 8), (3, 3), (2, 2), (1, 1), (1, 1), False, 1),
        "nan": ((1, 2, 8, 8), (3, 3), (2, 2), (1, 1), (1, 1), False, 2),
    }
    for name, (shape, k, s, p, d, ceil, rounding) in cases.items():
        w.case(name, list(shape) + list(k) + list(s) + list(p) + list(d) + [int(ceil), rounding])
        for dt, dtype in DTYPES.items():
            x = wave(shape, 0.2, 2.0)
            if rounding >= 1:
                x = torch.round(x * 1.5)
            if rounding == 2:
                flat = x.view(-1)
                flat[5] = float("nan")
                flat[6] = float("nan")
                flat[70] = float("nan")
            x = x.to(dtype).requires_grad_(True)
            y, idx = F.max_pool2d(x, k, s, p, d, ceil_mode=ceil, return_indices=True)
            g = grad_wave(y.shape, dtype)
            (dx,) = torch.autograd.grad(y, x, g)
            w.put(name, dt, {"input": x, "output": y, "indices": idx, "grad_output": g, "grad_input": dx})
    w.save(os.path.join(out_dir, "max_pool2d.safetensors"))


def upsample(out_dir):
    w = Writer()
    cases = {"fpn25": (25, 25, 50, 50), "fpn13": (13, 7, 25, 13), "fpn7": (7, 13, 13, 25),
             "odd": (4, 5, 7, 9), "down": (9, 6, 4, 5), "big_ratio": (3, 3, 10, 11), "same": (5, 6, 5, 6)}
    for name, (h, wd, oh, ow) in cases.items():
        w.case(name, [h, wd, oh, ow])
        for dt, dtype in DTYPES.items():
            x = wave((1, 2, h, wd), 0.5).to(dtype).requires_grad_(True)
            y = F.interpolate(x, size=(oh, ow), mode="nearest")
            g = grad_wave(y.shape, dtype)
            (dx,) = torch.autograd.grad(y, x, g)
            w.put(name, dt, {"input": x, "output": y, "grad_output": g, "grad_input": dx})
    w.save(os.path.join(out_dir, "upsample_nearest2d.safetensors"))


def bn_params(c, dtype):
    weight = (1.0 + 0.5 * wave((c,), 1.0)).to(dtype)
    bias = wave((c,), 2.0, 0.3).to(dtype)
    mean = wave((c,), 3.0, 0.4).to(dtype)
    var = (0.6 + 0.5 * wave((c,), 4.0)).to(dtype)  # in [0.1, 1.1]
    return weight, bias, mean, var


def frozen_bn(out_dir):
    w = Writer()
    shape = (2, 4, 5, 6)
    for name, eps_code in (("eps1e-5", 5), ("eps0", 0)):
        eps = 1e-5 if eps_code else 0.0
        w.case(name, list(shape) + [eps_code])  # eps = 10^-code, 0 for code 0
        for dt, dtype in DTYPES.items():
            weight, bias, mean, var = bn_params(shape[1], dtype)
            m = FrozenBatchNorm2d(shape[1], eps=eps).to(dtype)
            m.weight.copy_(weight)
            m.bias.copy_(bias)
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
            x = wave(shape, 0.1, 1.5).to(dtype).requires_grad_(True)
            y = m(x)
            g = grad_wave(y.shape, dtype)
            (dx,) = torch.autograd.grad(y, x, g)
            w.put(name, dt, {"input": x, "weight": weight, "bias": bias, "running_mean": mean, "running_var": var,
                             "output": y, "grad_output": g, "grad_input": dx})
    w.save(os.path.join(out_dir, "frozen_batch_norm2d.safetensors"))


def batch_norm(out_dir):
    w = Writer()
    shape = (3, 4, 6, 5)
    momentum, eps = 0.1, 1e-5
    # train: three forward steps (inputs with phases 0.1, 0.2, 0.3 and growing offsets) update
    # the running stats; the gradients are those of the last step. eval: running stats used.
    for name, training in (("train", True), ("eval", False)):
        w.case(name, list(shape) + [int(training)])
        for dt, dtype in DTYPES.items():
            weight, bias, mean, var = bn_params(shape[1], dtype)
            rm, rv = mean.clone(), var.clone()
            tensors = {"weight": weight, "bias": bias, "running_mean_in": mean, "running_var_in": var}
            steps = 3 if training else 1
            for step in range(steps):
                x = (wave(shape, 0.1 * (step + 1), 1.0 + step) + 0.5 * step).to(dtype).requires_grad_(True)
                wt = weight.clone().requires_grad_(True)
                bt = bias.clone().requires_grad_(True)
                y = F.batch_norm(x, rm, rv, wt, bt, training=training, momentum=momentum, eps=eps)
                tensors[f"input{step}"] = x
            g = grad_wave(y.shape, dtype)
            dx, dw, db = torch.autograd.grad(y, (x, wt, bt), g)
            tensors.update({"output": y, "running_mean": rm, "running_var": rv, "grad_output": g,
                            "grad_input": dx, "grad_weight": dw, "grad_bias": db})
            w.put(name, dt, tensors)
    w.save(os.path.join(out_dir, "batch_norm2d.safetensors"), {"momentum": str(momentum), "eps": str(eps)})


def group_norm(out_dir):
    w = Writer()
    shape = (2, 8, 5, 4)
    for groups in (1, 2, 4, 8):
        name = f"g{groups}"
        w.case(name, list(shape) + [groups])
        for dt, dtype in DTYPES.items():
            weight, bias, _, _ = bn_params(shape[1], dtype)
            x = (wave(shape, 0.7, 2.0) + 0.25).to(dtype).requires_grad_(True)
            wt = weight.clone().requires_grad_(True)
            bt = bias.clone().requires_grad_(True)
            y = F.group_norm(x, groups, wt, bt, eps=1e-5)
            g = grad_wave(y.shape, dtype)
            dx, dw, db = torch.autograd.grad(y, (x, wt, bt), g)
            w.put(name, dt, {"input": x, "weight": weight, "bias": bias, "output": y, "grad_output": g,
                             "grad_input": dx, "grad_weight": dw, "grad_bias": db})
    w.save(os.path.join(out_dir, "group_norm.safetensors"), {"eps": "1e-05"})


def linear(out_dir):
    w = Writer()
    n, fin, fout = 5, 7, 3
    w.case("linear", [n, fin, fout])
    for dt, dtype in DTYPES.items():
        x = wave((n, fin), 0.3).to(dtype).requires_grad_(True)
        wt = wave((fout, fin), 1.3, 0.5).to(dtype).requires_grad_(True)
        bt = wave((fout,), 2.3, 0.2).to(dtype).requires_grad_(True)
        y = F.linear(x, wt, bt)
        g = grad_wave(y.shape, dtype)
        dx, dw, db = torch.autograd.grad(y, (x, wt, bt), g)
        w.put("linear", dt, {"input": x, "weight": wt, "bias": bt, "output": y, "grad_output": g,
                             "grad_input": dx, "grad_weight": dw, "grad_bias": db})
    w.save(os.path.join(out_dir, "linear.safetensors"))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "data", "nn"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)
    max_pool(args.out)
    upsample(args.out)
    frozen_bn(args.out)
    batch_norm(args.out)
    group_norm(args.out)
    linear(args.out)


if __name__ == "__main__":
    main()
