#!/usr/bin/python3
"""Times torch / torchvision (CPU) on the inputs of benchmarks/bench_box_losses.cpp.

Run with /usr/bin/python3 (PyTorch 1.13 + torchvision 0.14):

    /usr/bin/python3 tools/bench_box_losses_torch.py [--repeat 5] [--threads 1 2] \
        [--drcnn build/<dir>/benchmarks/bench_box_losses]

The inputs are bit-identical to the C++ benchmark's (same 64-bit LCG, same draw order, same
float64 arithmetic rounded to float32; see the comment at the top of bench_box_losses.cpp).
What torch runs for each drcnn case:

    BM_BoxIou        torchvision.ops.box_iou(a [2000, 4], b [100, 4])
    BM_BoxEncode     torchvision's BoxCoder(weights=(10, 10, 5, 5)).encode_single(gt, proposals)
                     (w = 1 / drcnn's stds (0.1, 0.1, 0.2, 0.2): drcnn divides by std where torchvision
                     multiplies by w, and the reverse in decode, so they agree to rounding, not bit
                     for bit)
    BM_BoxDecode     BoxCoder(weights=(10, 10, 5, 5), bbox_xform_clip=log(1000 / 16)).decode_single
                     on [1000, 324] class-specific deltas, then ops.clip_boxes_to_image (800, 1088):
                     torchvision's own Faster R-CNN RoI-head post-processing
    BM_SmoothL1      F.smooth_l1_loss(pred, target, beta=beta) (mean); bwd 1: pred requires grad,
                     pred.grad = None, loss.backward()
    BM_CrossEntropy  F.cross_entropy(logits, labels) (mean); bwd as above

Time per call: every sample runs the call k times (k chosen so a sample lasts >= 20 ms; k is at
least 1) and divides; the reported value is the median over --repeat samples, after a warm-up;
wall clock and process CPU time (all threads). drcnn's side is its Google Benchmark run of the
same case right after torch's (--benchmark_filter, --benchmark_repetitions=--repeat,
--benchmark_min_time=0.2; median aggregate, real_time and cpu_time, the latter the process CPU
time of all threads as on the torch side).

With --drcnn, also prints a sanity check: drcnn's checksum counters (float64 sum and sum of
squares of the IoU matrix / deltas / boxes / input gradient, and the loss value) against the
same quantities from torch, and against a float64 evaluation of the same formulas from the
float32 inputs (torch in float64) for the losses and the IoU.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import time

import torch
import torch.nn.functional as F
import torchvision
from torchvision.models.detection._utils import BoxCoder
from torchvision.ops import box_iou, clip_boxes_to_image

from bench_nms_torchvision import Lcg  # the 64-bit LCG shared by the bench scripts (and the C++ side)

IMG_W, IMG_H = 1088.0, 800.0
WEIGHTS = (10.0, 10.0, 5.0, 5.0)  # 1 / drcnn's stds (0.1, 0.1, 0.2, 0.2)


def f32(values, shape):
    return torch.tensor(values, dtype=torch.float64).to(torch.float32).reshape(shape)


def make_boxes(n, seed):
    u = Lcg(seed)
    clip = lambda a, hi: min(max(a, 0.0), hi)
    v = []
    for _ in range(n):
        u1, u2, u3, u4 = u(), u(), u(), u()
        u()
        side = 16.0 * math.pow(2.0, 5.0 * u1)
        aspect = math.pow(2.0, 2.0 * u2 - 1.0)
        w, h = side * math.sqrt(aspect), side / math.sqrt(aspect)
        cx, cy = u3 * IMG_W, u4 * IMG_H
        v += [clip(cx - w / 2, IMG_W), clip(cy - h / 2, IMG_H), clip(cx + w / 2, IMG_W), clip(cy + h / 2, IMG_H)]
    return f32(v, (n, 4))


def make_uniform(rows, cols, seed, lo, hi):
    u = Lcg(seed)
    return f32([lo + (hi - lo) * u() for _ in range(rows * cols)], (rows, cols))


def make_labels(n, classes, seed):
    u = Lcg(seed)
    return torch.tensor([int(classes * u()) for _ in range(n)], dtype=torch.int64)


def time_call(fn, repeat, min_sample=0.02):
    """Median per-call (wall, cpu) in microseconds."""
    fn()  # warm-up
    k = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(k):
            fn()
        dt = time.perf_counter() - t0
        if dt >= min_sample or k >= 1 << 20:
            break
        k = max(k * 2, int(k * min_sample / max(dt, 1e-9) * 1.2))
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(k):
            fn()
        wall.append((time.perf_counter() - t0) * 1e6 / k)
        cpu.append((time.process_time() - c0) * 1e6 / k)
    return statistics.median(wall), statistics.median(cpu)


def chk(t):
    t = t.detach().to(torch.float64)
    return {"chk_sum": float(t.sum()), "chk_sq": float((t * t).sum())}


def iou_f64(a, b):
    """IoU from the definition in float64 (mmdet's eps 1e-6 never triggers on these boxes)."""
    a, b = a.double(), b.double()
    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])
    return inter / (area(a)[:, None] + area(b)[None, :] - inter).clamp(min=1e-6)


def build_cases(threads_list):
    """{drcnn benchmark name: (fn to time, {quantity: torch value}, {quantity: float64 value})}."""
    cases = {}
    a, b = make_boxes(2000, 101), make_boxes(100, 202)
    proposals, gt = make_boxes(512, 303), make_boxes(512, 404)
    rois, deltas = make_boxes(1000, 505), make_uniform(1000, 4 * 81, 606, -2.0, 2.0)
    coder = BoxCoder(WEIGHTS, bbox_xform_clip=math.log(1000.0 / 16))
    decode = lambda: clip_boxes_to_image(coder.decode_single(deltas, rois), (int(IMG_H), int(IMG_W)))
    for t in threads_list:
        cases[f"BM_BoxIou/threads:{t}"] = (t, lambda: box_iou(a, b), chk(box_iou(a, b)), chk(iou_f64(a, b)))
        cases[f"BM_BoxEncode/n:512/threads:{t}"] = (t, lambda: coder.encode_single(gt, proposals),
                                                    chk(coder.encode_single(gt, proposals)), None)
        cases[f"BM_BoxDecode/n:1000/classes:81/threads:{t}"] = (t, decode, chk(decode()), None)

    def loss_case(name, t, loss_fn, x, bwd):
        def ref64():
            xd = x.double().requires_grad_(bool(bwd))
            l = loss_fn(xd, True)
            out = {"loss": float(l)}
            if bwd:
                l.backward()
                out.update(chk(xd.grad))
            return out

        if not bwd:
            fn = lambda: loss_fn(x, False)
            vals = {"loss": float(fn())}
        else:
            xg = x.clone().requires_grad_(True)

            def fn():
                xg.grad = None
                loss_fn(xg, False).backward()

            xg.grad = None
            l = loss_fn(xg, False)
            l.backward()
            vals = {"loss": float(l), **chk(xg.grad)}
        cases[name] = (t, fn, vals, ref64())

    for t in threads_list:
        for cols in (4, 81):
            pred, target = make_uniform(1024, cols, 707, -1.0, 1.0), make_uniform(1024, cols, 808, -1.0, 1.0)
            for beta_x1000 in (1000, 100):
                beta = beta_x1000 / 1000.0
                for bwd in (0, 1):
                    fn = lambda x, f64, target=target, beta=beta: F.smooth_l1_loss(
                        x, target.double() if f64 else target, beta=beta)
                    loss_case(f"BM_SmoothL1/rows:1024/cols:{cols}/beta_x1000:{beta_x1000}/bwd:{bwd}/threads:{t}", t,
                              fn, pred, bwd)
        logits, labels = make_uniform(1024, 81, 909, -4.0, 4.0), make_labels(1024, 81, 1010)
        for bwd in (0, 1):
            loss_case(f"BM_CrossEntropy/rows:1024/classes:81/bwd:{bwd}/threads:{t}", t,
                      lambda x, f64, labels=labels: F.cross_entropy(x, labels), logits, bwd)
    return cases


def drcnn_row(binary, repeat, name):
    """drcnn's median (wall us, cpu us, json record) for one case, from a bench_box_losses run."""
    out = subprocess.run([binary, f"--benchmark_filter=^{name}/(process_time/)?real_time$", f"--benchmark_repetitions={repeat}",
                          "--benchmark_min_time=0.2", "--benchmark_report_aggregates_only=true",
                          "--benchmark_format=json"], check=True, capture_output=True, text=True).stdout
    scale = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}
    for b in json.loads(out)["benchmarks"]:
        if b.get("aggregate_name", "median") == "median":
            s = scale[b["time_unit"]]
            return b["real_time"] * s, b["cpu_time"] * s, b
    raise RuntimeError(f"{binary} did not report {name}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--drcnn", help="path to the bench_box_losses executable (runs it and prints ratios)")
    a = ap.parse_args()
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, CPU; times in us per call, "
          f"median of {a.repeat}")
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    cases = build_cases(a.threads)
    tv, dr = {}, {}
    for name, (t, fn, _, _) in cases.items():  # torch and drcnn case by case (similar load)
        torch.set_num_threads(t)
        tv[name] = time_call(fn, a.repeat)
        if a.drcnn:
            dr[name] = drcnn_row(a.drcnn, a.repeat, name)
    print(f"load average at end: {os.getloadavg()[0]:.2f} (1-minute; 2 = both cores busy)")

    head = f"{'case':<60} | {'torch wall':>10}{'cpu':>9}"
    if dr:
        head += f" | {'drcnn wall':>10}{'cpu':>9} | {'torch/drcnn wall':>16}{'cpu':>7}"
    print(head)
    for name, (ms, cpu) in tv.items():
        line = f"{name:<60} | {ms:>10.1f}{cpu:>9.1f}"
        if name in dr:
            dms, dcpu, _ = dr[name]
            line += f" | {dms:>10.1f}{dcpu:>9.1f} | {ms / dms:>15.2f}x{cpu / dcpu:>6.2f}x"
        print(line)

    if dr:
        print("\nsanity check: drcnn counters vs torch (and vs float64 evaluations where available)")
        print(f"{'case':<60} {'quantity':<8} {'drcnn':>16} {'torch':>16} {'|d - t|':>9} {'rel':>9}"
              f" {'|d - f64|':>9} {'|t - f64|':>9}")
        for name, (_, _, vals, ref) in cases.items():
            if name not in dr:
                continue
            b = dr[name][2]
            for q, tval in vals.items():
                if q not in b:
                    continue
                d = b[q]
                rel = abs(d - tval) / max(abs(tval), 1e-300)
                line = f"{name:<60} {q:<8} {d:>16.9g} {tval:>16.9g} {abs(d - tval):>9.2e} {rel:>9.2e}"
                if ref and q in ref:
                    line += f" {abs(d - ref[q]):>9.2e} {abs(tval - ref[q]):>9.2e}"
                print(line)


if __name__ == "__main__":
    main()
