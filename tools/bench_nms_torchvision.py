#!/usr/bin/python3
"""Times torchvision.ops.nms / batched_nms (CPU) on the boxes of benchmarks/bench_nms.cpp.

Run with /usr/bin/python3 (PyTorch 1.13 + torchvision 0.14). The box generator is the same
LCG and the same arithmetic, in the same draw order, as make_boxes() in bench_nms.cpp (see
the comment there): the float32 boxes, scores and class ids are bit-identical.

    /usr/bin/python3 tools/bench_nms_torchvision.py [--repeat 5]

Prints one row per case and thread count: the median wall time and the median CPU time (all
threads of the process; on a loaded machine wall time includes waiting for a core, CPU time
does not) in ms, and the keep-list length. With --drcnn BENCH_BINARY it also runs bench_nms
(Google Benchmark: real_time and cpu_time of the same cases) and prints the ratios
torchvision / drcnn of both.
"""
import argparse
import json
import statistics
import subprocess
import time

import torch
import torchvision

MASK64 = (1 << 64) - 1


class Lcg:
    def __init__(self, seed):
        self.state = seed

    def __call__(self):
        self.state = (self.state * 6364136223846793005 + 1442695040888963407) & MASK64
        return (self.state >> 11) * (1.0 / 9007199254740992.0)  # 2^-53, exact


def make_boxes(n, classes):
    W, H = 1088.0, 800.0
    u = Lcg(12345)
    nc = max(1, n // 20)
    cl = []
    for _ in range(nc):
        cx = u() * W
        cy = u() * H
        bw = 16 + 368 * u()
        bh = bw * (0.5 + 1.5 * u())
        cl.append((cx, cy, bw, bh))
    b, s = [], []
    for _ in range(n):
        cx, cy, bw, bh = cl[int(u() * nc)]
        w = bw * (0.6 + 0.8 * u())
        h = bh * (0.6 + 0.8 * u())
        x = cx + 0.4 * bw * (u() - 0.5)
        y = cy + 0.4 * bh * (u() - 0.5)
        b.append([min(max(x - 0.5 * w, 0.0), W), min(max(y - 0.5 * h, 0.0), H),
                  min(max(x + 0.5 * w, 0.0), W), min(max(y + 0.5 * h, 0.0), H)])
        s.append(u())
    v = Lcg(678)
    ids = [int(classes * v()) for _ in range(n)]
    boxes = torch.tensor(b, dtype=torch.float64).to(torch.float32)
    scores = torch.tensor(s, dtype=torch.float64).to(torch.float32)
    return boxes, scores, torch.tensor(ids, dtype=torch.int64)


def time_ms(fn, repeat):
    fn()  # warm-up
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
    return statistics.median(wall), statistics.median(cpu), out


def torchvision_rows(repeat):
    rows = {}
    cases = [("nms", n, 0.7) for n in (1000, 10000, 100000)] + [("batched_nms", 10000, 0.5)]
    for name, n, thr in cases:
        boxes, scores, ids = make_boxes(n, 80 if name == "batched_nms" else 1)
        for threads in (1, 2):
            torch.set_num_threads(threads)
            if name == "nms":
                fn = lambda: torchvision.ops.nms(boxes, scores, thr)
            else:
                # torchvision switches to its per-class loop above 4000 boxes on the CPU.
                fn = lambda: torchvision.ops.batched_nms(boxes, scores, ids, thr)
            reps = max(1, repeat // 5) if n >= 100000 else repeat
            ms, cpu, keep = time_ms(fn, reps)
            rows[(name, n, threads)] = (ms, cpu, int(keep.numel()))
    return rows


def drcnn_rows(binary):
    out = subprocess.run([binary, "--benchmark_format=json"], check=True, capture_output=True, text=True).stdout
    rows = {}
    for b in json.loads(out)["benchmarks"]:
        name, rest = b["name"].split("/", 1)
        args = dict(kv.split(":") for kv in rest.split("/") if ":" in kv)
        name = "nms" if name == "BM_Nms" else "batched_nms"
        rows[(name, int(args["n"]), int(args["threads"]))] = (b["real_time"], b["cpu_time"], int(b["kept"]))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--drcnn", help="path to the bench_nms executable (runs it and prints ratios)")
    a = ap.parse_args()
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, CPU")
    tv = torchvision_rows(a.repeat)
    dr = drcnn_rows(a.drcnn) if a.drcnn else {}
    head = f"{'case':<12}{'n':>7}{'thr':>4} | {'torchvision wall':>16}{'cpu':>9}{'kept':>7}"
    if dr:
        head += f" | {'drcnn wall':>10}{'cpu':>9}{'kept':>7} | {'ratio wall':>10}{'cpu':>7}"
    print(head)
    for (name, n, threads), (ms, cpu, kept) in tv.items():
        line = f"{name:<12}{n:>7}{threads:>4} | {ms:>16.2f}{cpu:>9.2f}{kept:>7}"
        if (name, n, threads) in dr:
            dms, dcpu, dkept = dr[(name, n, threads)]
            line += f" | {dms:>10.2f}{dcpu:>9.2f}{dkept:>7} | {ms / dms:>9.1f}x{cpu / dcpu:>6.1f}x"
        print(line)
    for (name, n, threads), (dms, dcpu, dkept) in dr.items():
        if threads == 0:
            print(f"{name:<12}{n:>7}{'gpu':>4} | {'':>16}{'':>9}{'':>7} | {dms:>10.3f}{dcpu:>9.3f}{dkept:>7}")

if __name__ == "__main__":
    main()
