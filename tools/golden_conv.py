#!/usr/bin/python3
"""Writes PyTorch goldens of conv2d (forward and the three gradients) to tests/data/conv/.

    /usr/bin/python3 tools/golden_conv.py [--out tests/data/conv]

One file, conv2d.safetensors, float64: for each case "<name>" the tensors <name>.input,
<name>.weight, <name>.bias (when used), <name>.grad_output, <name>.output, <name>.grad_input,
<name>.grad_weight, <name>.grad_bias, and <name>.params = int64 [stride_h, stride_w, pad_h,
pad_w, dil_h, dil_w, groups, has_bias]. The metadata "cases" lists the case names in order.
Inputs come from torch's seeded generator and are stored, so the C++ side needs no generator.
"""
import argparse
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_writer  # noqa: E402

# name: (N, Cin, H, W, Cout, (kh, kw), stride, padding, dilation, groups, bias)
CASES = {
    "k3_s1_p1": (2, 4, 9, 11, 6, (3, 3), (1, 1), (1, 1), (1, 1), 1, True),
    "k3_s2_p1_nobias": (2, 4, 9, 11, 6, (3, 3), (2, 2), (1, 1), (1, 1), 1, False),
    "k3_s1_p2_d2": (1, 4, 10, 9, 5, (3, 3), (1, 1), (2, 2), (2, 2), 1, True),
    "k1_s1": (2, 8, 7, 6, 4, (1, 1), (1, 1), (0, 0), (1, 1), 1, True),
    "k1_s2_downsample": (2, 8, 9, 7, 16, (1, 1), (2, 2), (0, 0), (1, 1), 1, False),
    "k7_s2_p3_stem": (1, 3, 20, 17, 8, (7, 7), (2, 2), (3, 3), (1, 1), 1, False),
    "k3_groups2": (2, 4, 8, 8, 6, (3, 3), (1, 1), (1, 1), (1, 1), 2, True),
    "k3_depthwise_s2": (1, 6, 9, 10, 6, (3, 3), (2, 2), (1, 1), (1, 1), 6, True),
    "k3x2_s2x1_p1x0": (2, 3, 8, 7, 4, (3, 2), (2, 1), (1, 0), (1, 1), 1, True),
    "k3_s3_p0_no_full_cover": (1, 2, 10, 11, 3, (3, 3), (3, 3), (0, 0), (1, 1), 1, True),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "data", "conv"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    g = torch.Generator().manual_seed(11)
    out = {}
    for name, (n, cin, h, w, cout, k, s, p, d, groups, bias) in CASES.items():
        x = torch.randn(n, cin, h, w, generator=g, dtype=torch.float64).requires_grad_(True)
        wt = (torch.randn(cout, cin // groups, *k, generator=g, dtype=torch.float64) * 0.3).requires_grad_(True)
        b = torch.randn(cout, generator=g, dtype=torch.float64).requires_grad_(True) if bias else None
        y = F.conv2d(x, wt, b, stride=s, padding=p, dilation=d, groups=groups)
        gy = torch.randn(y.shape, generator=g, dtype=torch.float64)
        y.backward(gy)
        out[f"{name}.input"] = x.detach()
        out[f"{name}.weight"] = wt.detach()
        if bias:
            out[f"{name}.bias"] = b.detach()
            out[f"{name}.grad_bias"] = b.grad
        out[f"{name}.grad_output"] = gy
        out[f"{name}.output"] = y.detach()
        out[f"{name}.grad_input"] = x.grad
        out[f"{name}.grad_weight"] = wt.grad
        out[f"{name}.params"] = torch.tensor([*s, *p, *d, groups, int(bias)], dtype=torch.int64)
    path = os.path.join(args.out, "conv2d.safetensors")
    safetensors_writer.save(path, out, {"torch": torch.__version__, "script": "tools/golden_conv.py",
                                        "cases": ",".join(CASES)})
    print(f"{path}: {len(CASES)} cases, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
