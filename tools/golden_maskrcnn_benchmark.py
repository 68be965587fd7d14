#!/usr/bin/env python3
"""Float64 goldens of maskrcnn-benchmark's box conventions (the seed, hkzhang95/DynamicRCNN),
re-implemented here line by line from its code and independent of drcnn:

    python3 tools/golden_maskrcnn_benchmark.py [--out tests/data/maskrcnn_benchmark]

Transcribed (file in hkzhang95/DynamicRCNN, identical in facebookresearch/maskrcnn-benchmark):
  box_iou            boxlist_ops.boxlist_iou: area = (x2 - x1 + 1) (y2 - y1 + 1),
                     wh = (min(rb) - max(lt) + 1).clamp(0), iou = inter / (area1 + area2 - inter)
  encode / decode    det_opr/box_coder.py BoxCoder(weights): TO_REMOVE = 1 widths, centre
                     x1 + 0.5 w, targets wx (gx - px) / pw ..., decode dx = code / wx, dw clamped
                     above only at log(1000 / 16), x2 = ctr + 0.5 w - 1
  clip               bounding_box.BoxList.clip_to_image(remove_empty=False): x to [0, W - 1],
                     y to [0, H - 1]
  remove_small       boxlist_ops.remove_small_boxes: (x2 - x1 + 1 >= min) & (y2 - y1 + 1 >= min)
  nms                kernels/cuda/nms.cu (devIoU): +1 areas and overlaps, suppress when IoU > thr,
                     visiting in descending score order; the loop is nms_cpu.cpp's, whose only
                     difference (ovr >= thr) is the CPU's: the seed trains and tests on GPUs.
                     Both return the kept positions in ascending input order (nms.cu:
                     order_t.index(keep).sort(); nms_cpu: nonzero(suppressed == 0))
  level mapper       det_opr/poolers.py LevelMapper(2, 5, 224, 4, 1e-6): floor(4 + log2(sqrt(area) /
                     224 + 1e-6)) clamped to [2, 5], minus 2 (area with the +1)
  anchors            det_opr/rpn/anchor_generator.py generate_anchors (Detectron's, np.round),
                     cell anchors in float32 (.float()), shifted by arange(0, W * stride, stride)

One file per op (inputs and outputs, float64 unless noted); the ctest cases in
tests/ops/test_legacy_box_ops.cpp compare drcnn's ops with box_offset 1 against them.
"""
import argparse
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_writer  # noqa: E402

F64 = torch.float64


def boxlist_iou(b1, b2):
    area1 = (b1[:, 2] - b1[:, 0] + 1) * (b1[:, 3] - b1[:, 1] + 1)
    area2 = (b2[:, 2] - b2[:, 0] + 1) * (b2[:, 3] - b2[:, 1] + 1)
    lt = torch.max(b1[:, None, :2], b2[:, :2])
    rb = torch.min(b1[:, None, 2:], b2[:, 2:])
    wh = (rb - lt + 1).clamp(min=0)
    inter = wh[:, :, 0] * wh[:, :, 1]
    return inter / (area1[:, None] + area2 - inter)


def encode(weights, reference_boxes, proposals):
    ex_w = proposals[:, 2] - proposals[:, 0] + 1
    ex_h = proposals[:, 3] - proposals[:, 1] + 1
    ex_x = proposals[:, 0] + 0.5 * ex_w
    ex_y = proposals[:, 1] + 0.5 * ex_h
    gt_w = reference_boxes[:, 2] - reference_boxes[:, 0] + 1
    gt_h = reference_boxes[:, 3] - reference_boxes[:, 1] + 1
    gt_x = reference_boxes[:, 0] + 0.5 * gt_w
    gt_y = reference_boxes[:, 1] + 0.5 * gt_h
    wx, wy, ww, wh = weights
    return torch.stack((wx * (gt_x - ex_x) / ex_w, wy * (gt_y - ex_y) / ex_h,
                        ww * torch.log(gt_w / ex_w), wh * torch.log(gt_h / ex_h)), dim=1)


def decode(weights, rel_codes, boxes, clip=math.log(1000.0 / 16)):
    widths = boxes[:, 2] - boxes[:, 0] + 1
    heights = boxes[:, 3] - boxes[:, 1] + 1
    ctr_x = boxes[:, 0] + 0.5 * widths
    ctr_y = boxes[:, 1] + 0.5 * heights
    wx, wy, ww, wh = weights
    dx = rel_codes[:, 0::4] / wx
    dy = rel_codes[:, 1::4] / wy
    dw = torch.clamp(rel_codes[:, 2::4] / ww, max=clip)
    dh = torch.clamp(rel_codes[:, 3::4] / wh, max=clip)
    px = dx * widths[:, None] + ctr_x[:, None]
    py = dy * heights[:, None] + ctr_y[:, None]
    pw = torch.exp(dw) * widths[:, None]
    ph = torch.exp(dh) * heights[:, None]
    out = torch.zeros_like(rel_codes)
    out[:, 0::4] = px - 0.5 * pw
    out[:, 1::4] = py - 0.5 * ph
    out[:, 2::4] = px + 0.5 * pw - 1
    out[:, 3::4] = py + 0.5 * ph - 1
    return out


def clip_to_image(boxes, width, height):
    b = boxes.clone()
    b[:, 0].clamp_(min=0, max=width - 1)
    b[:, 1].clamp_(min=0, max=height - 1)
    b[:, 2].clamp_(min=0, max=width - 1)
    b[:, 3].clamp_(min=0, max=height - 1)
    return b


def remove_small_boxes(boxes, min_size):
    ws = boxes[:, 2] - boxes[:, 0] + 1  # convert("xywh")
    hs = boxes[:, 3] - boxes[:, 1] + 1
    return ((ws >= min_size) & (hs >= min_size)).nonzero().squeeze(1)


def nms_legacy(dets, scores, threshold):
    x1, y1, x2, y2 = dets.unbind(1)
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = scores.sort(0, descending=True)[1]
    n = dets.shape[0]
    suppressed = [False] * n
    keep = []
    for _i in range(n):
        i = int(order[_i])
        if suppressed[i]:
            continue
        keep.append(i)
        for _j in range(_i + 1, n):
            j = int(order[_j])
            if suppressed[j]:
                continue
            xx1, yy1 = max(x1[i], x1[j]), max(y1[i], y1[j])
            xx2, yy2 = min(x2[i], x2[j]), min(y2[i], y2[j])
            w = max(torch.zeros((), dtype=dets.dtype), xx2 - xx1 + 1)
            h = max(torch.zeros((), dtype=dets.dtype), yy2 - yy1 + 1)
            inter = w * h
            ovr = inter / (areas[i] + areas[j] - inter)
            if ovr > threshold:  # nms.cu; nms_cpu.cpp: >=
                suppressed[j] = True
    return torch.tensor(sorted(keep), dtype=torch.int64)


def level_mapper(rois, k_min=2, k_max=5, s0=224, lvl0=4, eps=1e-6):
    area = (rois[:, 3] - rois[:, 1] + 1) * (rois[:, 4] - rois[:, 2] + 1)
    s = torch.sqrt(area)
    lv = torch.floor(lvl0 + torch.log2(s / s0 + eps))
    lv = torch.clamp(lv, min=k_min, max=k_max)
    return lv.to(torch.int64) - k_min


def _whctrs(a):
    w = a[2] - a[0] + 1
    h = a[3] - a[1] + 1
    return w, h, a[0] + 0.5 * (w - 1), a[1] + 0.5 * (h - 1)


def _mkanchors(ws, hs, x, y):
    ws, hs = ws[:, None], hs[:, None]
    return np.hstack((x - 0.5 * (ws - 1), y - 0.5 * (hs - 1), x + 0.5 * (ws - 1), y + 0.5 * (hs - 1)))


def generate_anchors(stride, sizes, ratios):
    scales = np.array(sizes, dtype=np.float64) / stride
    anchor = np.array([1, 1, stride, stride], dtype=np.float64) - 1
    w, h, x, y = _whctrs(anchor)
    size_ratios = w * h / np.array(ratios, dtype=np.float64)
    ws = np.round(np.sqrt(size_ratios))
    hs = np.round(ws * np.array(ratios, dtype=np.float64))
    ratio_anchors = _mkanchors(ws, hs, x, y)
    out = []
    for i in range(ratio_anchors.shape[0]):
        w, h, x, y = _whctrs(ratio_anchors[i])
        out.append(_mkanchors(w * scales, h * scales, x, y))
    return torch.from_numpy(np.vstack(out))


def grid_anchors(stride, base, grid_h, grid_w):
    base = base.float()  # cell_anchors are float32 buffers
    sx = torch.arange(0, grid_w * stride, step=stride, dtype=torch.float32)
    sy = torch.arange(0, grid_h * stride, step=stride, dtype=torch.float32)
    yy, xx = torch.meshgrid(sy, sx, indexing="ij")
    xx, yy = xx.reshape(-1), yy.reshape(-1)
    shifts = torch.stack((xx, yy, xx, yy), dim=1)
    return (shifts.view(-1, 1, 4) + base.view(1, -1, 4)).reshape(-1, 4)


def random_boxes(g, n, size, min_wh=0.0, max_wh=None):
    max_wh = max_wh or size / 2
    xy = torch.rand(n, 2, generator=g, dtype=F64) * (size - max_wh)
    wh = min_wh + torch.rand(n, 2, generator=g, dtype=F64) * (max_wh - min_wh)
    return torch.cat([xy, xy + wh], dim=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "data",
                                                   "maskrcnn_benchmark"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    g = torch.Generator().manual_seed(18)

    # Boxes where the +1 matters: sizes 0..40 px, some integer (the seed's ground truth is
    # integer-ish), some exactly one pixel (x2 == x1: width 1 under +1, 0 without).
    a_boxes = random_boxes(g, 40, 200, 0.0, 40.0)
    a_boxes[:8] = a_boxes[:8].round()
    a_boxes[8, 2] = a_boxes[8, 0]
    b_boxes = torch.cat([a_boxes[:10] + torch.rand(10, 4, generator=g, dtype=F64) * 3,
                         random_boxes(g, 20, 200, 0.0, 40.0)])
    iou = boxlist_iou(a_boxes, b_boxes)

    weights = (10.0, 10.0, 5.0, 5.0)
    proposals = random_boxes(g, 30, 300, 2.0, 120.0)
    gts = proposals + (torch.rand(30, 4, generator=g, dtype=F64) - 0.5) * 20
    gts[:, 2:] = torch.maximum(gts[:, 2:], gts[:, :2] + 1)
    codes = encode(weights, gts, proposals)
    deltas = torch.randn(30, 8, generator=g, dtype=F64) * 0.5
    deltas[0, 2], deltas[1, 3], deltas[2, 6] = 60.0, -60.0, 30.0  # above / below the clamp (only above clamps)
    decoded = decode(weights, deltas, proposals)
    clipped = clip_to_image(decoded.reshape(-1, 4), 250.0, 190.0)
    rpn_deltas = torch.randn(30, 4, generator=g, dtype=F64) * 0.3
    rpn_decoded = decode((1.0, 1.0, 1.0, 1.0), rpn_deltas, proposals)

    small = random_boxes(g, 50, 100, 0.0, 6.0)
    small[:10] = small[:10].round()
    keep_small = remove_small_boxes(small, 3.0)

    # NMS: clusters of near-duplicates, and a pair whose +1 IoU is exactly the threshold 0.5:
    # [400, 400, 409, 409] vs [400, 400, 409, 404], 50 / (100 + 50 - 50) (kept by nms.cu's >,
    # suppressed by nms_cpu.cpp's >=; 36 / 81 without the +1).
    seeds = random_boxes(g, 12, 300, 8.0, 80.0)
    pick = torch.randint(0, 12, (150,), generator=g)
    nboxes = seeds[pick] + (torch.rand(150, 4, generator=g, dtype=F64) - 0.5) * 12
    nboxes[:, 2:] = torch.maximum(nboxes[:, 2:], nboxes[:, :2])
    tie = torch.tensor([[400.0, 400.0, 409.0, 409.0], [400.0, 400.0, 409.0, 404.0]], dtype=F64)
    nboxes = torch.cat([nboxes, tie])
    nscores = torch.randperm(152, generator=g).to(F64) / 152.0  # unique scores
    nscores[150], nscores[151] = 0.999, 0.998
    keeps = {t: nms_legacy(nboxes, nscores, t) for t in (0.3, 0.5, 0.7)}
    assert 151 in keeps[0.5].tolist() and 150 in keeps[0.5].tolist()

    rois = torch.cat([torch.zeros(60, 1, dtype=F64), random_boxes(g, 60, 1300, 0.0, 900.0)], dim=1)
    rois[:4, 1:] = torch.tensor([[0, 0, 111, 111], [0, 0, 223, 223], [0, 0, 447, 447], [0, 0, 0, 0]], dtype=F64)
    levels = level_mapper(rois)

    anchors = {}
    for stride, size in zip((4, 8, 16, 32, 64), (32, 64, 128, 256, 512)):
        base = generate_anchors(stride, (size,), (0.5, 1.0, 2.0))
        anchors[f"base_{stride}"] = base
        anchors[f"grid_{stride}"] = grid_anchors(stride, base, 3, 5)

    safetensors_writer.save(os.path.join(a.out, "boxes.safetensors"), {
        "iou_a": a_boxes, "iou_b": b_boxes, "iou": iou,
        "proposals": proposals, "gts": gts, "encode": codes,
        "deltas": deltas, "decode": decoded, "clip": clipped,
        "rpn_deltas": rpn_deltas, "rpn_decode": rpn_decoded,
        "small": small, "keep_small": keep_small,
        "rois": rois, "levels": levels,
    }, {"weights": "10,10,5,5", "clip_hw": "190,250", "min_size": "3"})
    safetensors_writer.save(os.path.join(a.out, "nms.safetensors"), {
        "boxes": nboxes, "scores": nscores,
        **{f"keep_{t}": k for t, k in keeps.items()}})
    safetensors_writer.save(os.path.join(a.out, "anchors.safetensors"), anchors)
    for n in ("boxes", "nms", "anchors"):
        p = os.path.join(a.out, n + ".safetensors")
        print(f"wrote {p} ({os.path.getsize(p)} bytes)")
    print("anchors base_4:", anchors["base_4"].tolist())
    print("nms keep sizes:", {t: len(k) for t, k in keeps.items()}, "levels:", levels[:4].tolist())


if __name__ == "__main__":
    main()
