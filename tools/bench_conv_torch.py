#!/usr/bin/python3
"""PyTorch CPU timings of the ResNet-50 convolutions at 320x320, batch 1, float32, no bias
(the shapes of benchmarks/bench_conv.cpp), forward and forward+backward (grad of input and
weight), with torch.set_num_threads(1) and (2). Time per shape = the minimum over --repeats
rounds of the mean of --iters calls (the minimum resists noise from other processes).

With --drcnn-bin PATH (the bench_conv executable), each shape is also timed by drcnn right
after PyTorch (interleaved, so both see the same load on a shared machine; drcnn's time is the
min over repetitions too), and the table shows the speed ratio torch_ms / drcnn_ms (>= 1 means
drcnn is faster) per shape and for the whole network (each shape x its uses in ResNet-50).
--drcnn FILE reads drcnn's times from a saved bench_conv JSON instead.

Usage: /usr/bin/python3 tools/bench_conv_torch.py [--threads 1 2] [--drcnn-bin build/ci/benchmarks/bench_conv]
"""
import argparse
import json
import os
import re
import subprocess
import time

import torch
import torch.nn.functional as F

# name, cin, h, cout, k, stride, uses: same list and order as benchmarks/bench_conv.cpp.
SHAPES = [
    ("stem_7x7_3_64_s2", 3, 320, 64, 7, 2, 1),
    ("res2_1x1_64_64", 64, 80, 64, 1, 1, 1),
    ("res2_1x1_256_64", 256, 80, 64, 1, 1, 2),
    ("res2_3x3_64_64", 64, 80, 64, 3, 1, 3),
    ("res2_1x1_64_256", 64, 80, 256, 1, 1, 4),
    ("res3_1x1_256_128", 256, 80, 128, 1, 1, 1),
    ("res3_3x3_128_128_s2", 128, 80, 128, 3, 2, 1),
    ("res3_1x1_128_512", 128, 40, 512, 1, 1, 4),
    ("res3_ds_1x1_256_512_s2", 256, 80, 512, 1, 2, 1),
    ("res3_1x1_512_128", 512, 40, 128, 1, 1, 3),
    ("res3_3x3_128_128", 128, 40, 128, 3, 1, 3),
    ("res4_1x1_512_256", 512, 40, 256, 1, 1, 1),
    ("res4_3x3_256_256_s2", 256, 40, 256, 3, 2, 1),
    ("res4_1x1_256_1024", 256, 20, 1024, 1, 1, 6),
    ("res4_ds_1x1_512_1024_s2", 512, 40, 1024, 1, 2, 1),
    ("res4_1x1_1024_256", 1024, 20, 256, 1, 1, 5),
    ("res4_3x3_256_256", 256, 20, 256, 3, 1, 5),
    ("res5_1x1_1024_512", 1024, 20, 512, 1, 1, 1),
    ("res5_3x3_512_512_s2", 512, 20, 512, 3, 2, 1),
    ("res5_1x1_512_2048", 512, 10, 2048, 1, 1, 3),
    ("res5_ds_1x1_1024_2048_s2", 1024, 20, 2048, 1, 2, 1),
    ("res5_1x1_2048_512", 2048, 10, 512, 1, 1, 2),
    ("res5_3x3_512_512", 512, 10, 512, 3, 1, 2),
]


def flops(cin, h, cout, k, stride):
    ho = (h + 2 * (k // 2) - k) // stride + 1
    return 2.0 * cout * ho * ho * cin * k * k


def time_shape(cin, h, cout, k, stride, backward, iters, repeats):
    torch.manual_seed(0)
    x = torch.randn(1, cin, h, h, requires_grad=backward)
    w = torch.randn(cout, cin, k, k, requires_grad=backward)
    pad = k // 2

    def run():
        y = F.conv2d(x, w, None, stride, pad)
        if backward:
            y.backward(go)
        return y

    go = None
    if backward:
        with torch.no_grad():
            go = torch.randn_like(F.conv2d(x, w, None, stride, pad))
    for _ in range(2):  # warm-up (oneDNN primitive creation)
        run()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(iters):
            run()
        best = min(best, (time.perf_counter() - t0) / iters)
        if backward:
            x.grad = None
            w.grad = None
    return best * 1e3


def load_drcnn(path):
    """{(index, backward, threads): ms} from Google Benchmark JSON (min over repetitions)."""
    with open(path) as f:
        data = json.load(f)
    out = {}
    for b in data["benchmarks"]:
        m = re.match(r"BM_Conv2d/(\d+)/(\d)/(\d)/real_time", b["name"])
        if not m or b.get("run_type") == "aggregate" and b.get("aggregate_name") != "min":
            continue
        key = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
        ms = b["real_time"] if b.get("time_unit", "ms") == "ms" else b["real_time"] / 1e6
        out[key] = min(out.get(key, float("inf")), ms)
    return out


def run_drcnn(binary, index, bwd, threads, repeats):
    """drcnn's min time (ms) for one shape, from a bench_conv subprocess."""
    env = dict(os.environ, OMP_WAIT_POLICY="passive")
    out = subprocess.run(
        [binary, f"--benchmark_filter=BM_Conv2d/{index}/{bwd}/{threads}/", f"--benchmark_repetitions={repeats}",
         "--benchmark_min_time=0.05", "--benchmark_format=json"],
        check=True, capture_output=True, text=True, env=env).stdout
    times = [b["real_time"] for b in json.loads(out)["benchmarks"] if b.get("run_type") == "iteration"]
    return min(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--drcnn", help="bench_conv JSON output to compare with")
    ap.add_argument("--drcnn-bin", help="bench_conv executable, run interleaved with PyTorch")
    args = ap.parse_args()
    ours = load_drcnn(args.drcnn) if args.drcnn else {}
    compare = bool(ours) or bool(args.drcnn_bin)
    print(f"torch {torch.__version__}, mkldnn {torch.backends.mkldnn.is_available()}, float32, batch 1, 320x320")
    for threads in args.threads:
        torch.set_num_threads(threads)
        for bwd in (0, 1):
            mode = "fwd+bwd" if bwd else "fwd"
            print(f"\n## {mode}, {threads} thread(s)")
            hdr = f"{'shape':26s} {'uses':>4s} {'torch ms':>9s} {'GFLOP/s':>8s}"
            if compare:
                hdr += f" {'drcnn ms':>9s} {'GFLOP/s':>8s} {'ratio':>6s}"
            print(hdr)
            tot_t = tot_o = 0.0
            # Shapes other than 1x1 stride 1: torch 1.13 sends 1x1 stride-1 convs at batch 1 and
            # 1 thread to its native (THNN) path instead of oneDNN, so they get their own total.
            sub_t = sub_o = 0.0
            for i, (name, cin, h, cout, k, s, uses) in enumerate(SHAPES):
                t = time_shape(cin, h, cout, k, s, bool(bwd), args.iters, args.repeats)
                fl = flops(cin, h, cout, k, s) * (3 if bwd else 1)
                line = f"{name:26s} {uses:4d} {t:9.2f} {fl / t / 1e6:8.1f}"
                tot_t += uses * t
                spatial = k > 1 or s > 1
                if spatial:
                    sub_t += uses * t
                o = ours.get((i, bwd, threads))
                if args.drcnn_bin:
                    o = run_drcnn(args.drcnn_bin, i, bwd, threads, args.repeats)
                if o is not None:
                    tot_o += uses * o
                    if spatial:
                        sub_o += uses * o
                    line += f" {o:9.2f} {fl / o / 1e6:8.1f} {t / o:6.2f}"
                print(line, flush=True)
            for label, a, b in (("total, not 1x1 s1 (x uses)", sub_t, sub_o), ("network total (x uses)", tot_t, tot_o)):
                line = f"{label:26s} {'':4s} {a:9.1f} {'':8s}"
                if compare:
                    line += f" {b:9.1f} {'':8s} {a / b:6.2f}"
                print(line)


if __name__ == "__main__":
    main()
