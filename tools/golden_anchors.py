#!/usr/bin/python3
"""Anchors of MMDetection v2's AnchorGenerator, recomputed in torch (float32) for drcnn's tests.

Re-implements, operation by operation and in the same float32 order, mmdet v2
(mmdet/core/anchor/anchor_generator.py, AnchorGenerator):
  gen_single_level_base_anchors (center_offset, scale_major), single_level_grid_priors and
  valid_flags / single_level_valid_flags.
Written from reading that source; mmdet itself is not needed (nor installed here).

Prints the P2..P6 base anchors (spec B.4 table, MMDET column) and a few grids, and optionally
writes them to a safetensors file (--out file.safetensors) with tools/safetensors_writer.py
(8-byte little-endian header length, JSON header {name: {dtype, shape, data_offsets}}, raw data).
--hex prints every base-anchor value as a float32 hex literal (for C++ tables).

Run with /usr/bin/python3 (torch 1.13 CPU).
"""
import argparse
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_writer  # noqa: E402  (tools/: the shared minimal writer)


def gen_single_level_base_anchors(base_size, scales, ratios, center_offset=0.0, scale_major=True):
    """[A, 4] float32 base anchors (x1, y1, x2, y2) of one level, mmdet's rounding order."""
    w = base_size
    h = base_size
    x_center = center_offset * w  # Python float, rounded to float32 when it meets the tensor
    y_center = center_offset * h
    h_ratios = torch.sqrt(ratios)
    w_ratios = 1 / h_ratios
    if scale_major:  # a = ratio_index * len(scales) + scale_index
        ws = (w * w_ratios[:, None] * scales[None, :]).reshape(-1)
        hs = (h * h_ratios[:, None] * scales[None, :]).reshape(-1)
    else:
        ws = (w * scales[:, None] * w_ratios[None, :]).reshape(-1)
        hs = (h * scales[:, None] * h_ratios[None, :]).reshape(-1)
    corners = [x_center - 0.5 * ws, y_center - 0.5 * hs, x_center + 0.5 * ws, y_center + 0.5 * hs]
    return torch.stack(corners, dim=-1)


class MMDetAnchors:
    def __init__(self, strides, ratios, scales, base_sizes=None, center_offset=0.0, scale_major=True):
        self.strides = list(strides)
        self.base_sizes = list(strides) if base_sizes is None else list(base_sizes)
        self.ratios = torch.tensor(ratios, dtype=torch.float32)
        self.scales = torch.tensor(scales, dtype=torch.float32)
        self.base = [gen_single_level_base_anchors(b, self.scales, self.ratios, center_offset, scale_major)
                     for b in self.base_sizes]

    def single_level_grid_priors(self, level, feat_h, feat_w):
        base = self.base[level]
        stride = self.strides[level]
        shift_x = torch.arange(0, feat_w) * stride  # int64
        shift_y = torch.arange(0, feat_h) * stride
        shift_xx = shift_x.repeat(shift_y.shape[0])  # x fastest: row-major (y, x)
        shift_yy = shift_y.view(-1, 1).repeat(1, shift_x.shape[0]).view(-1)
        shifts = torch.stack([shift_xx, shift_yy, shift_xx, shift_yy], dim=-1).type_as(base)
        return (base[None, :, :] + shifts[:, None, :]).view(-1, 4)  # (y, x, a)

    def valid_flags(self, level, feat_h, feat_w, pad_h, pad_w):
        stride = self.strides[level]
        valid_h = min(int(math.ceil(pad_h / stride)), feat_h)
        valid_w = min(int(math.ceil(pad_w / stride)), feat_w)
        vx = torch.zeros(feat_w, dtype=torch.bool)
        vy = torch.zeros(feat_h, dtype=torch.bool)
        vx[:valid_w] = True
        vy[:valid_h] = True
        vxx = vx.repeat(feat_h)
        vyy = vy.view(-1, 1).repeat(1, feat_w).view(-1)
        valid = vxx & vyy
        a = self.base[level].shape[0]
        return valid[:, None].expand(valid.shape[0], a).contiguous().view(-1)


def f32_hex(x):
    return float(x).hex()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="write the tensors to this .safetensors file")
    ap.add_argument("--hex", action="store_true", help="print base anchors as exact hex floats")
    ap.add_argument("--full", action="store_true", help="also save the full 800x1344 grids and flags (~4.8 MB)")
    args = ap.parse_args()

    gen = MMDetAnchors(strides=[4, 8, 16, 32, 64], ratios=[0.5, 1.0, 2.0], scales=[8.0])
    out = {}
    print(f"torch {torch.__version__}; mmdet v2 AnchorGenerator semantics (center_offset 0, scale_major)")
    for lvl, base in enumerate(gen.base):
        out[f"base_P{lvl + 2}"] = base
        print(f"P{lvl + 2} (stride {gen.strides[lvl]}):")
        for row in base.tolist():
            if args.hex:
                print("   ", ", ".join(f32_hex(v) for v in row))
            else:
                print("   ", ", ".join(f"{v:.6f}" for v in row))

    # Grids: the hand-checked 2x3 grid at stride 4, a small padded batch (all levels, with the
    # valid flags of a smaller image in it), and the spec B.4 size check of an 800x1344 input
    # (its full grids, ~4.5 MB, only with --full).
    out["grid_P2_2x3"] = gen.single_level_grid_priors(0, 2, 3)
    for lvl, s in enumerate(gen.strides):
        h, w = math.ceil(96 / s), math.ceil(160 / s)
        out[f"grid_96x160_P{lvl + 2}"] = gen.single_level_grid_priors(lvl, h, w)
        out[f"valid_70x100_in_96x160_P{lvl + 2}"] = gen.valid_flags(lvl, h, w, 70, 100)
    sizes = [(math.ceil(800 / s), math.ceil(1344 / s)) for s in gen.strides]
    total = 0
    for lvl, (h, w) in enumerate(sizes):
        g = gen.single_level_grid_priors(lvl, h, w)
        total += g.shape[0]
        if args.full:
            out[f"grid_800x1344_P{lvl + 2}"] = g
            # an image of 600x1000 (padded to 608x1024) inside the 800x1344 batch
            out[f"valid_608x1024_P{lvl + 2}"] = gen.valid_flags(lvl, h, w, 608, 1024)
    print(f"800x1344 anchors per level {[h * w * 3 for h, w in sizes]}, total {total}")
    print("grid_P2_2x3 =\n", out["grid_P2_2x3"])

    # Other configurations: several scales, center_offset 0.5, scale_major False, float base size.
    g2 = MMDetAnchors(strides=[16], ratios=[0.5, 1.0, 2.0], scales=[4.0, 8.0], center_offset=0.5, scale_major=False,
                      base_sizes=[13.5])
    out["base_multi_scale_offset"] = g2.base[0]
    out["grid_multi_scale_offset_3x2"] = g2.single_level_grid_priors(0, 3, 2)
    print("multi-scale / center_offset 0.5 / scale_major False / base 13.5:\n", g2.base[0])

    if args.out:
        safetensors_writer.save(args.out, out, {"generator": "tools/golden_anchors.py", "torch": torch.__version__,
                                          "semantics": "mmdet v2 AnchorGenerator"})
        print(f"wrote {len(out)} tensors to {args.out}")


if __name__ == "__main__":
    main()
