#!/usr/bin/python3
"""Times torchvision.ops.roi_align on the inputs of benchmarks/bench_roi_align.cpp (CPU).

Run with the system Python that has torch + torchvision:
    /usr/bin/python3 tools/bench_roi_align_torchvision.py [--threads 2 1] [--repeat 5]

Same inputs as the C++ benchmark: 4 FPN levels (strides 4..32) of a batch of 2 images, 256
channels, 7x7 bins, aligned=True, RoIs from the same 64-bit LCG (seed 20240611, five draws per
RoI; see the C++ file's comment), levels by MMDetection's map_roi_levels (finest_scale 56).
Multi-level pooling is done as MMDetection's SingleRoIExtractor does it: one roi_align call per
level on that level's RoIs, written into the [R, C, 7, 7] output. The backward calls
torchvision's own backward kernel (torch.ops.torchvision._roi_align_backward) once per level,
on that level's slice of grad_out, into freshly zeroed gradient maps (what autograd runs,
without the autograd bookkeeping). The time is the median of --repeat runs after one warm-up.
"""
import argparse
import math
import time

import torch
import torchvision
from torchvision.ops import roi_align

BATCH, CHANNELS, POOLED = 2, 256, 7
STRIDES = [4, 8, 16, 32]
MASK64 = (1 << 64) - 1


def make_rois(R, H, W):
    """The LCG of bench_roi_align.cpp, draw for draw."""
    x = 20240611

    def nxt():
        nonlocal x
        x = (x * 6364136223846793005 + 1442695040888963407) & MASK64
        return (x >> 11) * 2.0 ** -53

    rows = []
    clip = lambda v, hi: min(max(v, 0.0), hi)
    for _ in range(R):
        u0, u1, u2, u3, u4 = nxt(), nxt(), nxt(), nxt(), nxt()
        side = 16.0 * math.pow(2.0, 5.0 * u1)
        aspect = math.pow(2.0, 2.0 * u2 - 1.0)
        w, h = side * math.sqrt(aspect), side / math.sqrt(aspect)
        cx, cy = u3 * W, u4 * H
        rows.append([math.floor(u0 * BATCH), clip(cx - w / 2, W), clip(cy - h / 2, H), clip(cx + w / 2, W),
                     clip(cy + h / 2, H)])
    return torch.tensor(rows, dtype=torch.float32)


def map_roi_levels(rois, num_levels, finest_scale=56.0):
    scale = torch.sqrt((rois[:, 3] - rois[:, 1]) * (rois[:, 4] - rois[:, 2]))
    lvl = torch.floor(torch.log2(scale / finest_scale + 1e-6))
    return lvl.clamp(min=0, max=num_levels - 1).long()


def median_time(fn, repeat):
    fn()  # warm-up
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    return ts[len(ts) // 2]


def bench(H, W, R, sampling, repeat):
    g = torch.Generator().manual_seed(7)
    feats = [torch.rand(BATCH, CHANNELS, math.ceil(H / s), math.ceil(W / s), generator=g) for s in STRIDES]
    rois = make_rois(R, H, W)
    levels = map_roi_levels(rois, len(STRIDES))
    inds = [torch.nonzero(levels == l).squeeze(1) for l in range(len(STRIDES))]
    level_rois = [rois[i] for i in inds]
    grad_out = torch.rand(R, CHANNELS, POOLED, POOLED, generator=g)
    level_grads = [grad_out[i].contiguous() for i in inds]

    def forward():
        out = torch.zeros(R, CHANNELS, POOLED, POOLED)
        for l, s in enumerate(STRIDES):
            if inds[l].numel():
                out[inds[l]] = roi_align(feats[l], level_rois[l], (POOLED, POOLED), 1.0 / s, sampling, True)
        return out

    def backward():
        grads = []
        for l, s in enumerate(STRIDES):
            n, c, h, w = feats[l].shape
            if inds[l].numel():
                grads.append(torch.ops.torchvision._roi_align_backward(level_grads[l], level_rois[l], 1.0 / s, POOLED,
                                                                       POOLED, n, c, h, w, sampling, True))
            else:
                grads.append(torch.zeros(n, c, h, w))
        return grads

    return median_time(forward, repeat), median_time(backward, repeat), [int(i.numel()) for i in inds]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"{torch.get_num_threads()} default threads")
    configs = [(800, 1088, 512, 2), (800, 1088, 512, 0), (800, 1088, 1000, 2), (800, 1088, 1000, 0),
               (320, 320, 512, 2), (320, 320, 512, 0)]
    print(f"{'threads':>7} {'image':>9} {'rois':>5} {'chan':>4} {'sampling':>8} {'fwd ms':>9} {'bwd ms':>9}"
          f"  rois per level")
    for t in args.threads:
        torch.set_num_threads(t)
        for H, W, R, sr in configs:
            f, b, per_level = bench(H, W, R, sr, args.repeat)
            print(f"{t:>7} {H:>4}x{W:<4} {R:>5} {CHANNELS:>4} {sr:>8} {f * 1e3:>9.2f} {b * 1e3:>9.2f}  {per_level}")


if __name__ == "__main__":
    main()
