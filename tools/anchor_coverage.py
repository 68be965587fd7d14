#!/usr/bin/env python3
"""How well a preset's RPN anchors cover a COCO dataset's boxes: for each ground-truth box, the
best IoU with any anchor (mmdet AnchorGenerator: square strides, ratios h/w, one size per level =
stride x scale, centre offset 0, the anchors of every feature-map position of an image of the
given size). A box whose best IoU is below the RPN's min_pos_iou (0.3) never gets a positive
anchor; below pos_iou_thr (0.7) it only gets the low-quality match. docs/training.md
("Why small_cpu learned slowly on shapes") quotes its output.

    python3 tools/anchor_coverage.py D/annotations/instances_train.json --size 256 --scales 4 2

Needs numpy only.
"""
import argparse
import json
import math

import numpy as np


def anchors(size, strides, ratios, scale):
    out = []
    for s in strides:
        base = s * scale
        n = math.ceil(size / s)
        cx, cy = np.meshgrid(np.arange(n) * s, np.arange(n) * s)
        cx, cy = cx.ravel().astype(np.float64), cy.ravel().astype(np.float64)
        for r in ratios:
            h, w = base * math.sqrt(r), base / math.sqrt(r)
            out.append(np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1))
    return np.concatenate(out)


def best_iou(gt, anc, chunk=256):
    area_a = (anc[:, 2] - anc[:, 0]) * (anc[:, 3] - anc[:, 1])
    best = np.empty(len(gt))
    for i in range(0, len(gt), chunk):
        g = gt[i:i + chunk]
        lt = np.maximum(g[:, None, :2], anc[None, :, :2])
        rb = np.minimum(g[:, None, 2:], anc[None, :, 2:])
        wh = np.clip(rb - lt, 0, None)
        inter = wh[..., 0] * wh[..., 1]
        area_g = (g[:, 2] - g[:, 0]) * (g[:, 3] - g[:, 1])
        best[i:i + chunk] = (inter / (area_g[:, None] + area_a[None] - inter)).max(1)
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("ann", help="COCO annotation JSON")
    ap.add_argument("--size", type=int, default=256, help="image side after resizing (square images)")
    ap.add_argument("--strides", type=int, nargs="+", default=[4, 8, 16, 32, 64])
    ap.add_argument("--ratios", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    ap.add_argument("--scales", type=float, nargs="+", default=[4.0, 2.0], help="anchor scales to compare")
    a = ap.parse_args()
    with open(a.ann) as f:
        d = json.load(f)
    boxes = [x["bbox"] for x in d["annotations"] if not x.get("iscrowd", 0)]
    if not boxes:
        raise SystemExit(f"anchor_coverage: {a.ann}: no non-crowd annotations")
    gt = np.array([[b[0], b[1], b[0] + b[2], b[1] + b[3]] for b in boxes], dtype=np.float64)
    side = np.sqrt((gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1]))
    print(f"{len(gt)} boxes; sqrt(area) percentiles 5/25/50/75/95: "
          + " / ".join(f"{v:.1f}" for v in np.percentile(side, [5, 25, 50, 75, 95])))
    bins = [(0, 16), (16, 32), (32, 64), (64, 1e9)]
    print("| anchor scale | sizes (px) | best IoU < 0.3 | < 0.5 | < 0.7 | median | "
          + " | ".join(f"< 0.3 among sqrt(area) {lo:g}-{hi:g}" if hi < 1e9 else f"< 0.3 among >= {lo:g}" for lo, hi in bins) + " |")
    print("|---" * (6 + len(bins)) + "|")
    for sc in a.scales:
        b = best_iou(gt, anchors(a.size, a.strides, a.ratios, sc))
        per_bin = []
        for lo, hi in bins:
            m = (side >= lo) & (side < hi)
            per_bin.append(f"{np.mean(b[m] < 0.3):.2f} (n={m.sum()})" if m.any() else "—")
        sizes = ", ".join(f"{s * sc:g}" for s in a.strides)
        print(f"| {sc:g} | {sizes} | {np.mean(b < 0.3):.3f} | {np.mean(b < 0.5):.3f} | {np.mean(b < 0.7):.3f} | "
              f"{np.median(b):.2f} | " + " | ".join(per_bin) + " |")


if __name__ == "__main__":
    main()
