#!/usr/bin/env python3
"""Float64 golden of the seed's Dynamic R-CNN statistic populations (hkzhang95/DynamicRCNN), from
a line-by-line transcription of its code, independent of drcnn:

    python3 tools/golden_seed_dynamic_stats.py [--out tests/data/maskrcnn_benchmark/dynamic_stats.safetensors]

  proposal_target_opr.py  Matcher(thr, thr, allow_low_quality_matches=False) on
                          boxlist_iou(targets, proposals); matched_ious =
                          iou.t()[range(N), matched_idxs.clamp(min=0)] (a background proposal,
                          matched -1, reports its IoU with ground truth 0); regression targets
                          box_coder.encode(gt[matched.clamp(min=0)], proposals) for EVERY proposal
                          (BoxCoder weights (10, 10, 5, 5)); the proposals hold the ground truth
                          appended by proposal_opr (proposal_with_gt).
  network.py              rcnn_iou_new = topk(cat(ious), KI * IMS_PER_GPU)[0][-1];
                          rcnn_error_new = kthvalue(cat(|targets|[:, :2].mean(1)),
                          min(KE * IMS_PER_GPU, count)) over the raw (unsampled) proposals.

TO_REMOVE is the seed's 1 (+1 widths); the file also holds the same computation with 0, the
continuous boxes of drcnn's `original` preset. tests/models/test_seed_dynamic_stats.cpp compares
drcnn's populations and ranked statistics with both.
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_writer  # noqa: E402
from golden_maskrcnn_benchmark import random_boxes  # noqa: E402

F64 = torch.float64
KI, KE = 75, 10


def iou(b1, b2, off):
    area1 = (b1[:, 2] - b1[:, 0] + off) * (b1[:, 3] - b1[:, 1] + off)
    area2 = (b2[:, 2] - b2[:, 0] + off) * (b2[:, 3] - b2[:, 1] + off)
    lt = torch.max(b1[:, None, :2], b2[:, :2])
    rb = torch.min(b1[:, None, 2:], b2[:, 2:])
    wh = (rb - lt + off).clamp(min=0)
    inter = wh[:, :, 0] * wh[:, :, 1]
    return inter / (area1[:, None] + area2 - inter)


def encode(gt, proposals, off, weights=(10.0, 10.0, 5.0, 5.0)):
    ex_w = proposals[:, 2] - proposals[:, 0] + off
    ex_h = proposals[:, 3] - proposals[:, 1] + off
    ex_x = proposals[:, 0] + 0.5 * ex_w
    ex_y = proposals[:, 1] + 0.5 * ex_h
    gt_w = gt[:, 2] - gt[:, 0] + off
    gt_h = gt[:, 3] - gt[:, 1] + off
    gt_x = gt[:, 0] + 0.5 * gt_w
    gt_y = gt[:, 1] + 0.5 * gt_h
    wx, wy, ww, wh = weights
    return torch.stack((wx * (gt_x - ex_x) / ex_w, wy * (gt_y - ex_y) / ex_h,
                        ww * torch.log(gt_w / ex_w), wh * torch.log(gt_h / ex_h)), dim=1)


def populations(proposals, gts, thr, off):
    """Per image: (matched_ious, label errors) of every proposal, gt appended."""
    boxes = torch.cat([proposals, gts])  # proposal_opr: cat_boxlist((proposal, gt_box))
    q = iou(gts, boxes, off)
    matched_vals, matches = q.max(dim=0)
    matches[matched_vals < thr] = -1  # BELOW_LOW_THRESHOLD (low = high: nothing between)
    idx = matches.clamp(min=0)
    ious = q.t()[torch.arange(boxes.shape[0]), idx]
    targets = encode(gts[idx], boxes, off)
    return ious, targets.abs()[:, :2].mean(dim=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "data",
                                                   "maskrcnn_benchmark", "dynamic_stats.safetensors"))
    a = ap.parse_args()
    g = torch.Generator().manual_seed(4)
    out = {}
    images = []
    for i, (n, ng) in enumerate(((300, 3), (180, 2))):
        gts = random_boxes(g, ng, 400, 30.0, 150.0).round()
        # Proposals: jittered copies of the ground truth (positives of all qualities) and random boxes.
        near = gts[torch.randint(0, ng, (n // 2,), generator=g)]
        near = near + (torch.rand(n // 2, 4, generator=g, dtype=F64) - 0.5) * 60
        near[:, 2:] = torch.maximum(near[:, 2:], near[:, :2] + 2)
        props = torch.cat([near, random_boxes(g, n - n // 2, 400, 5.0, 200.0)])
        out[f"proposals_{i}"], out[f"gts_{i}"] = props, gts
        images.append((props, gts))
    for off in (0, 1):
        for thr in (0.4, 0.6):
            tag = f"off{off}_thr{thr}"
            pops = [populations(p, gt, thr, off) for p, gt in images]
            for i, (ious, errs) in enumerate(pops):
                out[f"ious_{i}_{tag}"], out[f"errors_{i}_{tag}"] = ious, errs
            all_ious = torch.cat([p[0] for p in pops])
            all_errs = torch.cat([p[1] for p in pops])
            out[f"iou_stat_{tag}"] = torch.topk(all_ious, KI * len(images))[0][-1:]
            out[f"beta_stat_{tag}"] = torch.kthvalue(all_errs, min(KE * len(images), all_errs.numel()))[0].reshape(1)
            print(tag, "iou", float(out[f"iou_stat_{tag}"]), "beta", float(out[f"beta_stat_{tag}"]),
                  "positives", int(sum((p[0] >= thr).sum() for p in pops)))
    safetensors_writer.save(a.out, out, {"KI": str(KI), "KE": str(KE), "images": str(len(images))})
    print(f"wrote {a.out} ({os.path.getsize(a.out)} bytes)")


if __name__ == "__main__":
    main()
