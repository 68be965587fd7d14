#!/usr/bin/env python3
"""Times torchvision.ops.deform_conv2d on the shapes of benchmarks/bench_deform_conv.cpp (CPU).

    /work/venv/bin/python tools/bench_deform_conv_torch.py [--threads 1 2] [--repeat 5]

A ResNet stage-3 bottleneck's 3x3 conv as DCNv2: one image, 256 -> 256 channels, stride 1,
padding 1, one offset group, float32, on 50x68 and 25x34 maps; offsets uniform in [-2, 2], masks
uniform in [0, 1] (as the C++ benchmark; the values are torch's own). Forward: deform_conv2d;
backward: the gradients of input, offset, mask, weight and bias for a given grad_out
(torch.autograd.grad on a graph built outside the timed region, retain_graph=True). Also the plain
F.conv2d forward for the ratio. Median of --repeat runs after one warm-up: wall and process CPU
milliseconds.
"""
import argparse
import time

import torch
import torch.nn.functional as F
import torchvision
from torchvision.ops import deform_conv2d

C = 256


def median_ms(fn, repeat):
    """(median wall ms, median process CPU ms): on a loaded machine the CPU time of a 1-thread
    run is the comparable figure (Google Benchmark's CPU column)."""
    fn()
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    wall.sort()
    cpu.sort()
    return f"{1000 * wall[len(wall) // 2]:.1f} ms wall / {1000 * cpu[len(cpu) // 2]:.1f} ms CPU"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}")
    g = torch.Generator().manual_seed(17)
    for threads in args.threads:
        torch.set_num_threads(threads)
        for h, w in [(50, 68), (25, 34)]:
            x = torch.rand(1, C, h, w, generator=g).requires_grad_(True)
            off = (torch.rand(1, 18, h, w, generator=g) * 4 - 2).requires_grad_(True)
            m = torch.rand(1, 9, h, w, generator=g).requires_grad_(True)
            wt = (torch.rand(C, C, 3, 3, generator=g) * 0.05).requires_grad_(True)
            b = torch.rand(C, generator=g).requires_grad_(True)
            go = torch.rand(1, C, h, w, generator=g)
            with torch.no_grad():
                fwd = median_ms(lambda: deform_conv2d(x, off, wt, b, padding=(1, 1), mask=m), args.repeat)
                conv = median_ms(lambda: F.conv2d(x, wt, b, padding=1), args.repeat)
            y = deform_conv2d(x, off, wt, b, padding=(1, 1), mask=m)
            bwd = median_ms(lambda: torch.autograd.grad(y, [x, off, m, wt, b], go, retain_graph=True), args.repeat)
            print(f"threads {threads} map {h}x{w}: deform forward {fwd}; deform backward {bwd}; conv2d forward {conv}")


if __name__ == "__main__":
    main()
