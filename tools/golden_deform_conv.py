#!/usr/bin/env python3
"""Writes torchvision goldens of deform_conv2d (forward and every gradient) to tests/data/deform_conv/.

    /work/venv/bin/python tools/golden_deform_conv.py [--out tests/data/deform_conv]

One file, deform_conv2d.safetensors, float64: for each case "<name>" the tensors <name>.input,
<name>.offset, <name>.mask (when used), <name>.weight, <name>.bias (when used),
<name>.grad_output, <name>.output and <name>.grad_<each of them>, and <name>.params = int64
[stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups, offset_groups, has_mask, has_bias].
The metadata "cases" lists the case names in order. Inputs come from torch's seeded generator
and are stored, so the C++ side needs no generator. Offsets are N(0, scale^2): scale 1.5 moves
many samples across the border, scale 6 pushes most of them outside the map.
"""
import argparse
import os
import sys

import torch
import torchvision
from torchvision.ops import deform_conv2d

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_writer  # noqa: E402

# name: (N, Cin, H, W, Cout, (kh, kw), stride, padding, dilation, groups, offset_groups,
#        mask: None | "random" | "zero" | "some_zero", bias, offset scale)
CASES = {
    "k3_p1_mask": (2, 3, 5, 6, 5, (3, 3), (1, 1), (1, 1), (1, 1), 1, 1, "random", True, 1.5),
    "k3_p1_dcnv1": (1, 3, 5, 6, 5, (3, 3), (1, 1), (1, 1), (1, 1), 1, 1, None, True, 1.5),
    "outside": (1, 2, 5, 4, 4, (3, 3), (1, 1), (1, 1), (1, 1), 1, 1, "random", True, 6.0),
    "zero_mask": (1, 2, 4, 5, 4, (3, 3), (1, 1), (1, 1), (1, 1), 1, 1, "zero", True, 1.5),
    "some_zero_mask": (2, 2, 4, 5, 4, (3, 3), (1, 1), (1, 1), (1, 1), 1, 1, "some_zero", False, 1.5),
    "groups2_og2": (1, 4, 5, 6, 6, (3, 3), (1, 1), (1, 1), (1, 1), 2, 2, "random", True, 1.5),
    "groups1_og4": (1, 8, 4, 5, 3, (3, 3), (1, 1), (1, 1), (1, 1), 1, 4, "random", True, 1.5),
    "groups4_og2": (1, 8, 4, 4, 8, (3, 3), (1, 1), (1, 1), (1, 1), 4, 2, "random", False, 1.5),
    "s2_p2_d2": (2, 2, 9, 8, 4, (3, 3), (2, 2), (2, 2), (2, 2), 1, 1, "random", True, 1.5),
    "k3x2_s2x1_p1x0": (1, 3, 8, 7, 4, (3, 2), (2, 1), (1, 0), (1, 1), 1, 1, "random", False, 1.5),
    "k1": (2, 5, 5, 6, 3, (1, 1), (1, 1), (0, 0), (1, 1), 1, 1, "random", True, 1.5),
    "k3_s2_dcnv1_og3": (1, 6, 7, 7, 4, (3, 3), (2, 2), (1, 1), (1, 1), 1, 3, None, False, 1.5),
}


def conv_out(size, k, s, p, d):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "data", "deform_conv"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    g = torch.Generator().manual_seed(17)
    f64 = torch.float64
    out = {}
    for name, (n, cin, h, w, cout, k, s, p, d, groups, og, mask_kind, bias, scale) in CASES.items():
        ho, wo = conv_out(h, k[0], s[0], p[0], d[0]), conv_out(w, k[1], s[1], p[1], d[1])
        taps = k[0] * k[1]
        x = torch.randn(n, cin, h, w, generator=g, dtype=f64).requires_grad_(True)
        off = (torch.randn(n, 2 * og * taps, ho, wo, generator=g, dtype=f64) * scale).requires_grad_(True)
        m = None
        if mask_kind is not None:
            m = torch.rand(n, og * taps, ho, wo, generator=g, dtype=f64)
            if mask_kind == "zero":
                m = torch.zeros_like(m)
            elif mask_kind == "some_zero":
                m = m * (torch.rand(m.shape, generator=g, dtype=f64) > 0.4)
            m.requires_grad_(True)
        wt = (torch.randn(cout, cin // groups, *k, generator=g, dtype=f64) * 0.3).requires_grad_(True)
        b = torch.randn(cout, generator=g, dtype=f64).requires_grad_(True) if bias else None
        y = deform_conv2d(x, off, wt, b, stride=s, padding=p, dilation=d, mask=m)
        gy = torch.randn(y.shape, generator=g, dtype=f64)
        y.backward(gy)
        tensors = {"input": x, "offset": off, "weight": wt}
        if m is not None:
            tensors["mask"] = m
        if b is not None:
            tensors["bias"] = b
        for key, t in tensors.items():
            out[f"{name}.{key}"] = t.detach()
            out[f"{name}.grad_{key}"] = t.grad
        out[f"{name}.grad_output"] = gy
        out[f"{name}.output"] = y.detach()
        out[f"{name}.params"] = torch.tensor([*s, *p, *d, groups, og, int(m is not None), int(bias)],
                                             dtype=torch.int64)
    path = os.path.join(args.out, "deform_conv2d.safetensors")
    safetensors_writer.save(path, out, {"torch": torch.__version__, "torchvision": torchvision.__version__,
                                        "script": "tools/golden_deform_conv.py", "cases": ",".join(CASES)})
    print(f"{path}: {len(CASES)} cases, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
