#!/usr/bin/python3
"""Writes the torchvision goldens of drcnn's detection kernels to tests/data/detection/.

Run with Debian's python3-torch / python3-torchvision (torch 1.13, torchvision 0.14, CPU):
    /usr/bin/python3 tools/golden_detection_ops.py [--out tests/data/detection]
Each file holds the inputs and torchvision's outputs, so the C++ tests need no generator of ours
to match torch's. Files (all small, < 100 kB):
  roi_align.safetensors  torchvision.ops.roi_align forward and gradient in float64, aligned
                         true/false x sampling_ratio 0/2 x (spatial_scale 1, 1/2, 1/4 at 7x7; 1 at 2x3);
                         the gradient is for grad_output[k] = sin(0.1 k + 0.3) (flat index k)
  nms.safetensors        torchvision.ops.nms keep lists (unique scores: torch's sort is not stable,
                         so tied scores are tested by hand in C++ instead), thresholds 0.3/0.5/0.7
  batched_nms.safetensors torchvision.ops.batched_nms: 800 boxes (coordinate-offset path, numel <= 4000)
                         and 2000 boxes (per-class loop path, numel > 4000)
  box_iou.safetensors    torchvision.ops.box_iou on non-degenerate boxes
"""
import argparse
import os
import sys

import torch
import torchvision
from torchvision import ops

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_writer  # noqa: E402


def random_boxes(g, n, size, min_wh=1.0, max_wh=None, clusters=0):
    """Boxes (x1, y1, x2, y2) inside [0, size]; with clusters > 0, jittered copies of a few seeds
    so that NMS actually suppresses."""
    max_wh = max_wh or size / 2
    if clusters:
        seeds = random_boxes(g, clusters, size, min_wh, max_wh)
        pick = torch.randint(0, clusters, (n,), generator=g)
        base = seeds[pick]
        wh = (base[:, 2:] - base[:, :2])
        jitter = (torch.rand(n, 4, generator=g, dtype=torch.float64) - 0.5) * 0.4 * wh.repeat(1, 2)
        boxes = base + jitter
        boxes[:, 2:] = torch.maximum(boxes[:, 2:], boxes[:, :2] + min_wh)
        return boxes.clamp(0, size)
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * (size - min_wh)
    wh = min_wh + torch.rand(n, 2, generator=g, dtype=torch.float64) * (max_wh - min_wh)
    return torch.cat([xy, torch.minimum(xy + wh, torch.tensor(float(size)))], dim=1)


def roi_align_golden(g):
    out = {}
    feats = torch.randn(2, 2, 12, 15, generator=g, dtype=torch.float64)
    out["features"] = feats
    # rois in image coordinates (scale 1 -> map 12x15; scale 1/4 -> an image of 48x60): random ones,
    # plus hand-picked border cases: touching the far border, partly outside, outside [-1, H],
    # tiny (below one pixel, where aligned=False clamps the size to 1), and an exact cell box.
    rois = []
    for b in range(2):
        bx = random_boxes(g, 10, 60.0, 0.5, 40.0)
        rois.append(torch.cat([torch.full((10, 1), float(b), dtype=torch.float64), bx], 1))
    special = torch.tensor([
        [0, 0.0, 0.0, 15.0, 12.0],      # the whole map at scale 1
        [1, 10.0, 8.0, 15.0, 12.0],     # touching the far border
        [0, -6.0, -3.0, 5.0, 4.0],      # partly outside (negative)
        [1, 12.0, 9.5, 30.0, 25.0],     # partly beyond H and W
        [0, -20.0, -20.0, -2.0, -2.0],  # entirely outside: samples below -1 contribute 0
        [1, 3.3, 4.1, 3.6, 4.3],        # tiny
        [0, 2.0, 3.0, 3.0, 4.0],        # exactly one cell
    ], dtype=torch.float64)
    rois = torch.cat(rois + [special], 0)
    out["rois"] = rois
    cases = []
    for aligned in (False, True):
        for sampling in (0, 2):
            for scale in (1.0, 0.5, 0.25):
                cases.append((aligned, sampling, scale, (7, 7)))
            cases.append((aligned, sampling, 1.0, (2, 3)))
    params = []
    for i, (aligned, sampling, scale, size) in enumerate(cases):
        params.append([float(aligned), float(sampling), scale, float(size[0]), float(size[1])])
        # grad_output[flat index k] = sin(0.1 k + 0.3): the C++ test builds the same tensor.
        numel = rois.shape[0] * feats.shape[1] * size[0] * size[1]
        gout = torch.sin(0.1 * torch.arange(numel, dtype=torch.float64) + 0.3)
        gout = gout.reshape(rois.shape[0], feats.shape[1], size[0], size[1])
        x = feats.detach().clone().requires_grad_(True)
        y = ops.roi_align(x, rois, output_size=size, spatial_scale=scale,
                          sampling_ratio=sampling, aligned=aligned)
        y.backward(gout)
        out[f"output_{i}"] = y.detach()
        out[f"grad_features_{i}"] = x.grad.detach()
    out["params"] = torch.tensor(params, dtype=torch.float64)  # aligned, sampling, scale, ph, pw
    return out


def nms_golden(g):
    out = {}
    n = 1000
    boxes = random_boxes(g, n, 200.0, 2.0, 60.0, clusters=60)
    scores = torch.randperm(n, generator=g).to(torch.float64) / n + 0.0005  # unique
    out["boxes_f64"] = boxes
    out["scores_f64"] = scores
    thresholds = (0.3, 0.5, 0.7)
    out["thresholds"] = torch.tensor(thresholds, dtype=torch.float64)
    for dtype, tag in ((torch.float64, "f64"), (torch.float32, "f32")):
        for i, thr in enumerate(thresholds):
            out[f"keep_{i}_{tag}"] = ops.nms(boxes.to(dtype), scores.to(dtype), thr)
    return out


def batched_nms_golden(g):
    out = {}
    for n, tag in ((800, "offsets"), (2000, "loop")):
        boxes = random_boxes(g, n, 300.0, 2.0, 80.0, clusters=80).to(torch.float32)
        scores = (torch.randperm(n, generator=g).to(torch.float32) + 1) / n
        idxs = torch.randint(0, 5, (n,), generator=g)
        out[f"boxes_{tag}"] = boxes
        out[f"scores_{tag}"] = scores
        out[f"idxs_{tag}"] = idxs
        out[f"keep_{tag}"] = ops.batched_nms(boxes, scores, idxs, 0.5)
    return out


def box_iou_golden(g):
    a = random_boxes(g, 50, 100.0, 1.0, 50.0)
    b = torch.cat([random_boxes(g, 30, 100.0, 1.0, 50.0), a[:5]], 0)  # a few identical pairs
    return {"a": a, "b": b, "iou_f64": ops.box_iou(a, b),
            "iou_f32": ops.box_iou(a.to(torch.float32), b.to(torch.float32))}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "data", "detection"))
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    meta = {"torch": torch.__version__, "torchvision": torchvision.__version__,
            "script": "tools/golden_detection_ops.py"}
    for name, fn, seed in (("roi_align", roi_align_golden, 1), ("nms", nms_golden, 2),
                           ("batched_nms", batched_nms_golden, 3), ("box_iou", box_iou_golden, 4)):
        g = torch.Generator().manual_seed(seed)
        tensors = fn(g)
        path = os.path.join(args.out, f"{name}.safetensors")
        safetensors_writer.save(path, tensors, meta)
        print(f"{path}: {len(tensors)} tensors, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
