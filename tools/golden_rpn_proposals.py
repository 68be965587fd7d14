#!/usr/bin/python3
"""RPN proposals of MMDetection v2 (RPNHead._get_bboxes_single), recomputed in torch float32.

Re-implements, from reading mmdet v2 (mmdet/models/dense_heads/rpn_head.py,
mmdet/core/bbox/coder/delta_xywh_bbox_coder.py: delta2bbox) and mmcv (mmcv/ops/nms.py:
batched_nms), per image:
  per level: scores = cls.permute(1, 2, 0).reshape(-1).sigmoid(); deltas permuted the same way
  to [-1, 4]; when nms_pre < #anchors: the first nms_pre of a descending sort (stable here:
  mmdet's sort is unstable, drcnn breaks ties by the lower index; random float32 inputs have no
  ties in practice); level ids;
  delta2bbox (means 0, stds 1, dw/dh clamped to +-|log(16/1000)|, clip x to [0, w], y to [0, h]);
  mmdet <= 2.17 small-box rule (only when min_bbox_size > 0: keep w >= min and h >= min);
  mmcv batched_nms below split_thr 10000: torchvision.ops.nms on boxes offset by
  level * (max coordinate + 1); the first max_per_img.
torchvision.ops.nms is the reference NMS (its CPU kernel: suppress when IoU > threshold).

Writes tests/data/models/rpn_proposals.safetensors (--out) with the inputs (obj.<l> [N, A, H, W],
del.<l> [N, 4A, H, W], anchors.<l> [H W A, 4], image_sizes [N, 2]) and, for each config c,
c<c>.img<i>.{boxes, scores, levels}; the configs' values are in the metadata.
Run with /usr/bin/python3 (torch 1.13, torchvision 0.14, CPU).
"""
import argparse
import json
import math
import os
import sys

import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_writer  # noqa: E402

STRIDES = [8, 16, 32]
FEATS = [(16, 20), (8, 10), (4, 5)]
RATIOS = [0.5, 1.0, 2.0]
IMAGE_SIZES = [(128, 160), (100, 130)]  # (h, w); padded batch 128 x 160
CONFIGS = [
    dict(nms_pre=300, nms_iou=0.85, max_per_img=200, min_bbox_size=0.0),
    dict(nms_pre=100, nms_iou=0.7, max_per_img=1000, min_bbox_size=4.0),
    dict(nms_pre=1000, nms_iou=0.5, max_per_img=50, min_bbox_size=0.0),
]


def anchors(stride, h, w):
    """mmdet AnchorGenerator, scales [8], center_offset 0, (y, x, a) order (float32)."""
    r = torch.tensor(RATIOS, dtype=torch.float32)
    hr = torch.sqrt(r)
    wr = 1 / hr
    ws = stride * wr * 8.0
    hs = stride * hr * 8.0
    base = torch.stack([-0.5 * ws, -0.5 * hs, 0.5 * ws, 0.5 * hs], dim=-1)
    sx = torch.arange(0, w) * stride
    sy = torch.arange(0, h) * stride
    xx = sx.repeat(h)
    yy = sy.view(-1, 1).repeat(1, w).view(-1)
    shifts = torch.stack([xx, yy, xx, yy], dim=-1).to(torch.float32)
    return (base[None, :, :] + shifts[:, None, :]).view(-1, 4)


def delta2bbox(rois, deltas, max_shape, wh_ratio_clip=16 / 1000):
    dx, dy, dw, dh = deltas.unbind(-1)
    max_ratio = abs(math.log(wh_ratio_clip))
    dw = dw.clamp(min=-max_ratio, max=max_ratio)
    dh = dh.clamp(min=-max_ratio, max=max_ratio)
    px = (rois[:, 0] + rois[:, 2]) * 0.5
    py = (rois[:, 1] + rois[:, 3]) * 0.5
    pw = rois[:, 2] - rois[:, 0]
    ph = rois[:, 3] - rois[:, 1]
    gw = pw * dw.exp()
    gh = ph * dh.exp()
    gx = px + pw * dx
    gy = py + ph * dy
    x1 = (gx - gw * 0.5).clamp(min=0, max=max_shape[1])
    y1 = (gy - gh * 0.5).clamp(min=0, max=max_shape[0])
    x2 = (gx + gw * 0.5).clamp(min=0, max=max_shape[1])
    y2 = (gy + gh * 0.5).clamp(min=0, max=max_shape[0])
    return torch.stack([x1, y1, x2, y2], dim=-1)


def batched_nms(boxes, scores, ids, thr):
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long)
    offsets = ids.to(boxes) * (boxes.max() + 1)
    return torchvision.ops.nms(boxes + offsets[:, None], scores, thr)


def proposals_single(cls, reg, mlvl_anchors, img_shape, cfg):
    scores_l, deltas_l, anchors_l, ids_l = [], [], [], []
    for lvl, (c, r, a) in enumerate(zip(cls, reg, mlvl_anchors)):
        s = c.permute(1, 2, 0).reshape(-1).sigmoid()
        d = r.permute(1, 2, 0).reshape(-1, 4)
        if 0 < cfg["nms_pre"] < s.shape[0]:
            ranked, inds = torch.sort(s, descending=True, stable=True)
            inds = inds[:cfg["nms_pre"]]
            s = ranked[:cfg["nms_pre"]]
            d = d[inds]
            a = a[inds]
        scores_l.append(s)
        deltas_l.append(d)
        anchors_l.append(a)
        ids_l.append(torch.full((s.shape[0],), lvl, dtype=torch.long))
    scores = torch.cat(scores_l)
    boxes = delta2bbox(torch.cat(anchors_l), torch.cat(deltas_l), img_shape)
    ids = torch.cat(ids_l)
    if cfg["min_bbox_size"] > 0:
        w = boxes[:, 2] - boxes[:, 0]
        h = boxes[:, 3] - boxes[:, 1]
        valid = (w >= cfg["min_bbox_size"]) & (h >= cfg["min_bbox_size"])
        boxes, scores, ids = boxes[valid], scores[valid], ids[valid]
    keep = batched_nms(boxes, scores, ids, cfg["nms_iou"])[:cfg["max_per_img"]]
    return boxes[keep], scores[keep], ids[keep]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="write the golden to this .safetensors file")
    args = ap.parse_args()
    g = torch.Generator().manual_seed(20261129)
    n, a = len(IMAGE_SIZES), len(RATIOS)
    out = {}
    cls, reg, anc = [], [], []
    for lvl, ((h, w), stride) in enumerate(zip(FEATS, STRIDES)):
        cls.append(torch.randn(n, a, h, w, generator=g) * 2.0)
        reg.append(torch.randn(n, 4 * a, h, w, generator=g) * 0.5)
        anc.append(anchors(stride, h, w))
        out[f"obj.{lvl}"], out[f"del.{lvl}"], out[f"anchors.{lvl}"] = cls[-1], reg[-1], anc[-1]
    out["image_sizes"] = torch.tensor(IMAGE_SIZES, dtype=torch.int64)
    for ci, cfg in enumerate(CONFIGS):
        for i in range(n):
            b, s, lv = proposals_single([c[i] for c in cls], [r[i] for r in reg], anc, IMAGE_SIZES[i], cfg)
            out[f"c{ci}.img{i}.boxes"], out[f"c{ci}.img{i}.scores"], out[f"c{ci}.img{i}.levels"] = b, s, lv
            print(f"config {ci} image {i}: {b.shape[0]} proposals, top score {s[0].item():.6f}")
    if args.out:
        safetensors_writer.save(args.out, out, {"generator": "tools/golden_rpn_proposals.py", "torch": torch.__version__,
                                                "torchvision": torchvision.__version__,
                                                "configs": json.dumps(CONFIGS)})


if __name__ == "__main__":
    main()
