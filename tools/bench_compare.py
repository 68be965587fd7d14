#!/work/venv/bin/python
"""drcnn against PyPI PyTorch on the CPU, side by side in one run (issue 14).

Workloads (float32, batch 1; the same inputs on both sides where the inputs matter):

  box_iou          ops::box_iou vs torchvision.ops.box_iou, 2000 x 100 boxes (the generator
                   of tools/bench_box_losses_torch.py; bench_box_losses BM_BoxIou)
  r50fpn_fwd       ResNet-50 + FPN 256 (FrozenBN, frozen_stages 1) on 1x3x320x320, no-grad
                   forward (bench_backbone vs tools/bench_backbone_torch.py's model)
  r50fpn_fwdbwd    the same, forward + backward of sum(P2..P6)
  r50_train        one Faster R-CNN R50-FPN training step at 320x320 (80 classes, 6 gt boxes):
                   drcnn's dynamic_rcnn_r50_fpn_1x (bench_detector --model r50 --mode train:
                   forward_train + backward + SGD step) vs torchvision's fasterrcnn_resnet50_fpn
                   (trainable_backbone_layers 3 = frozen_stages 1, 1000 RPN proposals, 512 RoIs,
                   forward + backward + SGD step)
  r50_infer        the same models, inference on the same image (predict / eval forward)
  small_train      the demo's small_cpu preset at 256x256 (ResNet-18 GN(32), FPN 128, 6 classes,
                   one anchor scale of 3 ratios at 16..256 px, RPN 1000 -> 500 proposals, 128 RoIs,
                   2-fc head of 512) vs the same-size torchvision FasterRCNN built here

Every case runs as a fresh process per side, alternating drcnn and torch, --rounds times; the
figure is the median over rounds of each process's median (or mean, for bench_detector) time
per iteration. Peak RSS is the process's ru_maxrss (os.wait4). GFLOP is what
torch.utils.flop_counter counts on the PyTorch model for the same workload (convolutions,
linear layers; their backward); drcnn's GFLOP/s divides the same count by its time (box_iou:
13 flops per pair, the min/max/sub/mul/add/div of one IoU). Peak: --peak-gflops per thread
(100 = one Zen 4 core's two 256-bit FMA pipes in fp32). Each row carries the load average
(`uptime`) sampled before its rounds: the machine may be shared.

  tools/bench_compare.py --build build/ci [--threads 1 2] [--rounds 3] [--cases ...]
      [--bf16] [--markdown out.md] [--json out.json]

--bf16 (issue 14's opt-in bfloat16 convolutions) adds, for every case but box_iou, drcnn with
DRCNN_CPU_PRECISION=bf16 (bf16 operands, f32 accumulation and outputs) and torch under
torch.autocast('cpu', dtype=torch.bfloat16) (forward in autocast, backward and SGD outside it,
as PyTorch's AMP recipe) to each round, interleaved with the float32 pair: each such case then
has three rows, drcnn fp32 vs torch fp32, drcnn bf16 vs torch fp32, and drcnn bf16 vs torch
autocast bf16 (the like-for-like peer). GFLOP/s of a bf16 row use the same FLOP count; the peak
is still the fp32 one (--peak-gflops; AVX-512 BF16's vdpbf16ps doubles it).

torch: the interpreter running this script (/work/venv: PyPI torch, oneDNN + MKL).
drcnn: the benchmark binaries in --build/benchmarks (built with DRCNN_BUILD_BENCHMARKS, the ci
preset). DRCNN_CPU_CONV=im2col in the environment times drcnn's previous convolution path.
On a loaded machine OMP_WAIT_POLICY=PASSIVE (inherited by both sides) keeps the 2-thread runs
from burning their time slices in OpenMP's spin-wait.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = ["box_iou", "r50fpn_fwd", "r50fpn_fwdbwd", "r50_train", "r50_infer", "small_train"]
TARGET = {"box_iou": 3.0, "r50fpn_fwd": 1.2, "r50fpn_fwdbwd": 1.2, "r50_train": 1.5, "r50_infer": 1.5,
          "small_train": 2.0}
IOU_FLOPS_PER_PAIR = 13


def load():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


# --------------------------------------------------------------------------- torch workers
def torch_worker(case, threads, iters, warmup, bf16=False):
    import contextlib
    import torch
    torch.set_num_threads(threads)
    # bf16: the forward under CPU autocast (convolutions and linear layers in bf16), the backward
    # and the optimizer outside it, as torch.amp's recipe.
    amp = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    sys.path.insert(0, HERE)
    times, cpu = [], []

    def timed(fn, n_warm, n):
        for _ in range(n_warm):
            fn()
        for _ in range(n):
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)

    flops = None
    if case == "box_iou":
        from bench_box_losses_torch import make_boxes
        from torchvision.ops import box_iou
        a, b = make_boxes(2000, 101), make_boxes(100, 202)
        reps = 50  # one "iteration" = 50 calls (sub-millisecond op)
        timed(lambda: [box_iou(a, b) for _ in range(reps)], 2, iters)
        times[:] = [t / reps for t in times]
        cpu[:] = [t / reps for t in cpu]
        flops = 2000 * 100 * IOU_FLOPS_PER_PAIR
    elif case in ("r50fpn_fwd", "r50fpn_fwdbwd"):
        from bench_backbone_torch import Backbone
        torch.manual_seed(0)
        model = Backbone(50, 256, 1).train()
        x = torch.randn(1, 3, 320, 320)
        params = [p for p in model.parameters() if p.requires_grad]

        def fwd():
            with torch.no_grad(), amp():
                model(x)

        def fwdbwd():
            for p in params:
                p.grad = None
            with amp():
                loss = sum(o.float().sum() for o in model(x))
            loss.backward()

        fn = fwd if case == "r50fpn_fwd" else fwdbwd
        flops = count_flops(fn)
        timed(fn, warmup, iters)
    else:
        fn, flops = detector_step(case, amp)
        timed(fn, warmup, iters)
    return times, cpu, flops


def count_flops(fn):
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as fc:
        fn()
    return fc.get_total_flops()


def make_targets(size):
    import torch
    s = size / 256.0
    b = [10., 12., 60., 50., 80., 30., 200., 140., 30., 150., 90., 240., 120., 100., 250., 210.,
         150., 20., 170., 36., 5., 200., 40., 250.]  # bench_detector.cpp's six boxes
    boxes = torch.tensor(b, dtype=torch.float32).reshape(6, 4) * s
    return [{"boxes": boxes, "labels": torch.arange(1, 7, dtype=torch.int64)}]


def small_cpu_torchvision():
    """torchvision FasterRCNN of DetectorConfig::small_cpu's size (src/models/detector.cpp)."""
    import torch.nn as nn
    from torchvision.models import resnet18
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.ops import MultiScaleRoIAlign
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool
    body = resnet18(weights=None, norm_layer=lambda c: nn.GroupNorm(32, c))
    backbone = BackboneWithFPN(body, {"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"},
                               [64, 128, 256, 512], 128, extra_blocks=LastLevelMaxPool())
    anchors = AnchorGenerator(((16,), (32,), (64,), (128,), (256,)), ((0.5, 1.0, 2.0),) * 5)
    roi_pool = MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2)
    return FasterRCNN(backbone, num_classes=None, min_size=256, max_size=256, rpn_anchor_generator=anchors,
                      rpn_pre_nms_top_n_train=1000, rpn_post_nms_top_n_train=500,
                      rpn_pre_nms_top_n_test=500, rpn_post_nms_top_n_test=300,
                      box_roi_pool=roi_pool, box_head=TwoMLPHead(128 * 7 * 7, 512),
                      box_predictor=FastRCNNPredictor(512, 7), box_batch_size_per_image=128)


def detector_step(case, amp):
    import torch
    from torchvision.models import resnet50
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
    from torchvision.ops import FrozenBatchNorm2d
    torch.manual_seed(1)
    if case.startswith("r50"):
        size = 320
        # fasterrcnn_resnet50_fpn() without weights would switch to BatchNorm2d and train every
        # layer; drcnn's preset has FrozenBN and frozen_stages 1 (= 3 trainable layers).
        body = resnet50(weights=None, norm_layer=FrozenBatchNorm2d)
        model = FasterRCNN(_resnet_fpn_extractor(body, 3), num_classes=81, min_size=size, max_size=size,
                           rpn_pre_nms_top_n_train=2000, rpn_post_nms_top_n_train=1000,
                           rpn_pre_nms_top_n_test=1000, rpn_post_nms_top_n_test=1000)
    else:
        size = 256
        model = small_cpu_torchvision()
    image = torch.rand(3, size, size)
    targets = make_targets(size)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=1e-4)
    if case.endswith("infer"):
        model.eval()

        def fn():
            with torch.no_grad(), amp():
                model([image])
    else:
        model.train()

        def fn():
            with amp():
                losses = model([image], targets)
                loss = sum(v.float() for v in losses.values())
            opt.zero_grad()
            loss.backward()
            opt.step()
    return fn, count_flops(fn)


# --------------------------------------------------------------------------- drcnn runs
def drcnn_command(build, case, threads, iters, warmup):
    b = os.path.join(build, "benchmarks")
    if case == "box_iou":
        return [os.path.join(b, "bench_box_losses"), f"--benchmark_filter=BM_BoxIou/threads:{threads}/",
                f"--benchmark_repetitions={iters}", "--benchmark_format=json"]
    if case.startswith("r50fpn"):
        bwd = 1 if case == "r50fpn_fwdbwd" else 0
        return [os.path.join(b, "bench_backbone"), f"--benchmark_filter=BM_Backbone/0/1/{bwd}/{threads}/",
                f"--benchmark_repetitions={iters}", "--benchmark_format=json"]
    model = "r50" if case.startswith("r50") else "small"
    mode = "infer" if case.endswith("infer") else "train"
    return [os.path.join(b, "bench_detector"), "--model", model, "--mode", mode, "--iters", str(iters),
            "--warmup", str(warmup), "--threads", str(threads)]


def parse_drcnn(case, out):
    if case == "box_iou" or case.startswith("r50fpn"):
        data = json.loads(out)
        runs = [r for r in data["benchmarks"] if r.get("run_type") == "iteration"]
        unit = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
        return ([r["real_time"] * unit[r["time_unit"]] for r in runs],
                [r["cpu_time"] * unit[r["time_unit"]] for r in runs])
    m = re.findall(r"^RESULT \S+ \S+ \d+ ([0-9.]+) ([0-9.]+) ([0-9.]+)$", out, re.M)
    if not m:
        raise RuntimeError("bench_detector printed no RESULT line:\n" + out)
    return [float(m[-1][1]) / 1e3], [float(m[-1][2]) / 1e3]  # that process's median step


def measure(cmd, threads, extra_env=None):
    """Runs cmd; returns (stdout, peak RSS of that process in MiB, from wait4)."""
    import tempfile
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), **(extra_env or {}))
    with tempfile.TemporaryFile("w+") as err:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=env, text=True)
        out = p.stdout.read()
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{err.read()[-3000:]}")
    return out, ru.ru_maxrss / 1024.0


def write_table(rows, raw, a, final):
    head = ("| case | threads | precision drcnn / torch | torch ms | drcnn ms | ratio (range) | CPU-time ratio | target "
            "| GFLOP | torch GFLOP/s (% peak) | drcnn GFLOP/s (% peak) | peak RSS torch / drcnn MiB | load |")
    lines = [head, "|" + "---|" * 13]
    for r in rows:
        lines.append(f"| {r['case']} | {r['threads']} | {r['precision']} | {r['torch_ms']:.2f} | {r['drcnn_ms']:.2f} | "
                     f"**{r['ratio']:.2f}x** ({r['ratio_range'][0]:.2f}-{r['ratio_range'][1]:.2f}) | "
                     f"{r['cpu_ratio']:.2f}x | "
                     f">= {r['target']}x | {r['gflop']:.3g} | {r['torch_gflops']:.1f} ({r['torch_peak_pct']:.0f}%) | "
                     f"{r['drcnn_gflops']:.1f} ({r['drcnn_peak_pct']:.0f}%) | "
                     f"{r['torch_rss_mib']:.0f} / {r['drcnn_rss_mib']:.0f} | {r['load']} |")
    table = "\n".join(lines)
    if final:
        print(table)
    # Written after every case, so an interrupted run keeps what it measured.
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(table + "\n")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"rows": rows, "raw": raw}, f, indent=1)


# The processes of one round, in this order (interleaved), and the rows formed from them.
SIDES_FP32 = [("drcnn", "fp32"), ("torch", "fp32")]
SIDES_BF16 = [("drcnn", "bf16"), ("torch", "bf16")]
PAIRS = [("fp32", "fp32", "fp32 / fp32"), ("bf16", "fp32", "bf16 / fp32"), ("bf16", "bf16", "bf16 / autocast bf16")]


def run_side(a, case, threads, side, prec):
    """One process of one side; returns (wall s, CPU s, peak RSS MiB, flops or None)."""
    if side == "drcnn":
        env = {"DRCNN_CPU_PRECISION": prec} if prec == "bf16" else None
        out, rss = measure(drcnn_command(a.build, case, threads, a.iters, a.warmup), threads, env)
        wall, cpu = parse_drcnn(case, out)
        return statistics.median(wall), statistics.median(cpu), rss, None
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", case, str(threads), str(a.iters), str(a.warmup)]
    if prec == "bf16":
        cmd.append("--worker-bf16")
    out, rss = measure(cmd, threads)
    res = json.loads(out.strip().splitlines()[-1])
    return statistics.median(res["times"]), statistics.median(res["cpu"]), rss, res["flops"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build/ci", help="drcnn build directory (with benchmarks/)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=3, help="alternating process pairs per case")
    ap.add_argument("--iters", type=int, default=5, help="timed iterations per process")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--cases", nargs="+", default=CASES, choices=CASES)
    ap.add_argument("--bf16", action="store_true",
                    help="also drcnn bf16 convolutions vs torch fp32 and vs torch autocast bf16 (not box_iou)")
    ap.add_argument("--peak-gflops", type=float, default=100.0, help="fp32 peak per thread (one core)")
    ap.add_argument("--markdown", help="also write the table here")
    ap.add_argument("--json", help="also write every measurement here")
    ap.add_argument("--worker", nargs=4, metavar=("CASE", "THREADS", "ITERS", "WARMUP"), help=argparse.SUPPRESS)
    ap.add_argument("--worker-bf16", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.worker:
        case, threads, iters, warmup = a.worker[0], int(a.worker[1]), int(a.worker[2]), int(a.worker[3])
        times, cpu, flops = torch_worker(case, threads, iters, warmup, a.worker_bf16)
        print(json.dumps({"times": times, "cpu": cpu, "flops": flops}))
        return

    # torch is imported by the workers only: ru_maxrss survives fork + exec, so a parent holding
    # torch would lend its RSS to every drcnn child.
    tv = subprocess.run([sys.executable, "-c", "import torch, torchvision; print(torch.__version__, "
                         "torchvision.__version__, torch.backends.mkldnn.is_available())"],
                        capture_output=True, text=True).stdout.split()
    print(f"torch {tv[0]}, torchvision {tv[1]}, oneDNN {tv[2]} ({sys.executable}), drcnn {os.path.abspath(a.build)}, "
          f"DRCNN_CPU_CONV={os.environ.get('DRCNN_CPU_CONV', '(default)')}, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(default)')}")
    print(f"{os.cpu_count()} CPUs, {open('/proc/cpuinfo').read().count('avx512_bf16') and 'AVX-512 BF16' or ''}; "
          f"peak {a.peak_gflops:.0f} GFLOP/s per thread; started {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    rows, raw = [], []
    for threads in a.threads:
        for case in a.cases:
            sides = SIDES_FP32 + (SIDES_BF16 if a.bf16 and case != "box_iou" else [])
            m = {k: {"wall": [], "cpu": [], "rss": []} for k in sides}
            loads, flops = [], None
            for r in range(a.rounds):
                for side, prec in sides:
                    loads.append(load())
                    wall, cpu, rss, f = run_side(a, case, threads, side, prec)
                    m[(side, prec)]["wall"].append(wall)
                    m[(side, prec)]["cpu"].append(cpu)
                    m[(side, prec)]["rss"].append(rss)
                    flops = f if f is not None else flops
                    raw.append({"case": case, "threads": threads, "round": r, "side": side, "precision": prec,
                                "wall_s": wall, "cpu_s": cpu, "rss_mib": rss, "load": loads[-1]})
                print(f"  {case} t{threads} round {r}: " + ", ".join(
                    f"{side} {prec} {m[(side, prec)]['wall'][-1] * 1e3:.2f} ms (CPU {m[(side, prec)]['cpu'][-1] * 1e3:.2f}, "
                    f"RSS {m[(side, prec)]['rss'][-1]:.0f} MiB)" for side, prec in sides) +
                    f" (load {loads[-len(sides)]}..{loads[-1]})", flush=True)
            for dp, tp, label in PAIRS:
                if ("drcnn", dp) not in m or ("torch", tp) not in m:
                    continue
                dm, tm = m[("drcnn", dp)], m[("torch", tp)]
                d, t = statistics.median(dm["wall"]), statistics.median(tm["wall"])
                d_cpu, t_cpu = statistics.median(dm["cpu"]), statistics.median(tm["cpu"])
                peak = a.peak_gflops * threads
                rows.append({"case": case, "threads": threads, "precision": label, "torch_ms": t * 1e3,
                             "drcnn_ms": d * 1e3, "ratio": t / d,
                             "torch_cpu_ms": t_cpu * 1e3, "drcnn_cpu_ms": d_cpu * 1e3, "cpu_ratio": t_cpu / d_cpu,
                             "gflop": flops / 1e9, "torch_gflops": flops / t / 1e9, "drcnn_gflops": flops / d / 1e9,
                             "torch_peak_pct": 100 * flops / t / 1e9 / peak,
                             "drcnn_peak_pct": 100 * flops / d / 1e9 / peak,
                             "torch_rss_mib": max(tm["rss"]), "drcnn_rss_mib": max(dm["rss"]),
                             "target": TARGET[case],
                             "ratio_range": (min(x / y for x, y in zip(tm["wall"], dm["wall"])),
                                             max(x / y for x, y in zip(tm["wall"], dm["wall"]))),
                             "load": f"{min(map(float, loads)):.1f}-{max(map(float, loads)):.1f}"})
            write_table(rows, raw, a, False)
    write_table(rows, raw, a, True)


if __name__ == "__main__":
    main()
