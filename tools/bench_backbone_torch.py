#!/usr/bin/python3
"""PyTorch CPU timings of the whole backbone of benchmarks/bench_backbone.cpp: torchvision
ResNet (norm_layer=FrozenBatchNorm2d) + torchvision.ops.FeaturePyramidNetwork with
LastLevelMaxPool (P6 = max_pool2d(P5, 1, 2)), float32, batch 1:

  r50_fpn256_320: ResNet-50 + FPN 256 channels on 1x3x320x320 (the detector's backbone)
  r18_fpn128_256: ResNet-18 + FPN 128 channels on 1x3x256x256

with frozen_stages 1 (conv1, bn1 and layer1 requires_grad_(False), as the detector) and -1
(nothing frozen); forward only under torch.no_grad() and forward + backward of
sum(P2) + ... + sum(P6) (gradients into the trainable parameters, dropped before each
iteration); torch.set_num_threads(1) and (2). Time = median of --iters single iterations after
--warmup untimed ones; wall-clock and process CPU time (all threads) are both reported, as
the CPU time is less disturbed by other jobs on a shared machine.

GFLOP/s counts convolutions only, from forward hooks on every nn.Conv2d (independently of the
C++ analytic count, which it is compared with): forward 2 * Cout * Ho * Wo * Cin/groups * kh * kw,
forward + backward x (1 + [weight requires grad] + [input requires grad]).

With --binary PATH (the bench_backbone executable) each case is also timed by drcnn right
after PyTorch (interleaved, so both see the same load on a shared machine), median of --iters
repetitions of one iteration each, and the table shows ratio = torch_ms / drcnn_ms (>= 1: drcnn
faster) and the same ratio of CPU times ("cpu r."). --drcnn FILE reads a saved
`bench_backbone --benchmark_format=json` output instead. The load average is printed beside
every case. img/s and GFLOP/s are over wall-clock time.

BLAS: Debian's torch 1.13 (BLAS_INFO=generic) runs 1x1 stride-1 convolutions at batch 1 through
aten::_slow_conv2d_forward, a GEMM in the system libblas.so.3, which is netlib's reference BLAS
here (~1.5 GFLOP/s) unless another implementation is installed; the other convolutions use
oneDNN. The header prints the BLAS library torch loaded. To time torch with OpenBLAS without
changing the system, unpack libopenblas0-openmp (`apt-get download libopenblas0-openmp;
dpkg-deb -x libopenblas0-openmp_*.deb DIR`) and run with
LD_LIBRARY_PATH=DIR/usr/lib/x86_64-linux-gnu/openblas-openmp (drcnn uses its own Eigen GEMM
and is unaffected).

Usage: /usr/bin/python3 tools/bench_backbone_torch.py [--threads 1 2] [--iters 7]
           [--binary build/ci/benchmarks/bench_backbone] [--channels-last] [--models 0 1]
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import time
from collections import OrderedDict

import torch
import torch.nn as nn
from torchvision.models import resnet18, resnet50
from torchvision.ops import FeaturePyramidNetwork, FrozenBatchNorm2d
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

# name, depth, fpn channels, input size: same list and order as benchmarks/bench_backbone.cpp.
MODELS = [
    ("r50_fpn256_320", 50, 256, 320),
    ("r18_fpn128_256", 18, 128, 256),
]


class Backbone(nn.Module):
    def __init__(self, depth, fpn_channels, frozen_stages):
        super().__init__()
        ctor = {50: resnet50, 18: resnet18}[depth]
        body = ctor(weights=None, norm_layer=FrozenBatchNorm2d)
        del body.fc, body.avgpool
        self.body = body
        exp = 4 if depth >= 50 else 1
        self.fpn = FeaturePyramidNetwork([64 * exp, 128 * exp, 256 * exp, 512 * exp], fpn_channels,
                                         extra_blocks=LastLevelMaxPool())
        # MMDetection's frozen_stages: 0 freezes the stem, k >= 1 also layer1..layerk.
        if frozen_stages >= 0:
            body.conv1.requires_grad_(False)
            body.bn1.requires_grad_(False)
        for s in range(1, frozen_stages + 1):
            getattr(body, f"layer{s}").requires_grad_(False)

    def forward(self, x):
        b = self.body
        x = b.maxpool(b.relu(b.bn1(b.conv1(x))))
        feats = OrderedDict()
        for i in range(1, 5):
            x = getattr(b, f"layer{i}")(x)
            feats[f"c{i + 1}"] = x
        return list(self.fpn(feats).values())


def conv_gflop(model, x):
    """(forward, forward+backward) conv GFLOP from hooks on one grad-enabled forward."""
    fwd = [0.0]
    bwd = [0.0]

    def hook(mod, inputs, out):
        inp = inputs[0]
        cin_per_group = mod.in_channels // mod.groups
        f = 2.0 * out.shape[0] * out.shape[1] * out.shape[2] * out.shape[3] * cin_per_group \
            * mod.kernel_size[0] * mod.kernel_size[1]
        fwd[0] += f
        bwd[0] += f * (1 + int(mod.weight.requires_grad) + int(inp.requires_grad))

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.enable_grad():
        model(x)
    for h in hs:
        h.remove()
    return fwd[0] / 1e9, bwd[0] / 1e9


def time_case(model, x, backward, warmup, iters):
    """(median wall ms, median process CPU ms) of `iters` iterations."""
    params = [p for p in model.parameters() if p.requires_grad]

    def run():
        if backward:
            for p in params:
                p.grad = None
            outs = model(x)
            sum(o.sum() for o in outs).backward()
        else:
            with torch.no_grad():
                model(x)

    for _ in range(warmup):
        run()
    wall, cpu = [], []
    for _ in range(iters):
        t0, c0 = time.perf_counter(), time.process_time()
        run()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall) * 1e3, statistics.median(cpu) * 1e3


def loaded_blas():
    """Path of the BLAS shared library mapped into this process (after torch is imported)."""
    with open("/proc/self/maps") as f:
        paths = {line.split()[-1] for line in f if "blas" in line.split()[-1].lower() and ".so" in line}
    return ", ".join(sorted(p for p in paths if "cublas" not in p)) or "none found"


def bench_name(model, frozen, bwd, threads):
    """Name prefix; Google Benchmark appends /process_time/real_time."""
    return f"BM_Backbone/{model}/{frozen}/{bwd}/{threads}/"


def load_drcnn(path):
    """{(model, frozen, bwd, threads): (median wall ms, median CPU ms, GFLOP)} from Google Benchmark JSON."""
    with open(path) as f:
        data = json.load(f)
    per = {}
    gflop = {}
    for b in data["benchmarks"]:
        m = re.match(r"BM_Backbone/(\d+)/(-?\d+)/(\d)/(\d)/", b["name"])
        if not m or b.get("run_type") == "aggregate":
            continue
        key = tuple(int(g) for g in m.groups())
        per.setdefault(key, []).append((b["real_time"], b["cpu_time"]))
        gflop[key] = b.get("GFLOP")
    return {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v), gflop[k])
            for k, v in per.items()}


def run_drcnn(binary, key, iters):
    """drcnn's median wall and CPU time (ms) and GFLOP for one case, from a bench_backbone subprocess."""
    out = subprocess.run(
        [binary, f"--benchmark_filter=^{bench_name(*key)}", f"--benchmark_repetitions={iters}",
         "--benchmark_min_time=0.001", "--benchmark_format=json"],
        check=True, capture_output=True, text=True).stdout
    runs = [b for b in json.loads(out)["benchmarks"] if b.get("run_type") == "iteration"]
    return (statistics.median(b["real_time"] for b in runs), statistics.median(b["cpu_time"] for b in runs),
            runs[0].get("GFLOP"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--models", type=int, nargs="+", default=list(range(len(MODELS))))
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iters", type=int, default=7)
    ap.add_argument("--channels-last", action="store_true", help="run PyTorch in torch.channels_last")
    ap.add_argument("--drcnn", help="bench_backbone JSON output to compare with")
    ap.add_argument("--binary", help="bench_backbone executable, run interleaved with PyTorch")
    args = ap.parse_args()
    ours = load_drcnn(args.drcnn) if args.drcnn else {}
    compare = bool(ours) or bool(args.binary)
    fmt = "channels_last" if args.channels_last else "contiguous (NCHW)"
    print(f"torch {torch.__version__}, mkldnn {torch.backends.mkldnn.is_available()}, float32, batch 1, "
          f"torch memory format {fmt}; time = median of {args.iters} iterations after {args.warmup} warm-up")
    print(f"torch BLAS: {loaded_blas()}")
    hdr = f"{'case':44s} {'torch ms':>9s} {'cpu ms':>8s} {'img/s':>6s} {'GFLOP/s':>7s}"
    if compare:
        hdr += f" {'drcnn ms':>9s} {'cpu ms':>8s} {'img/s':>6s} {'GFLOP/s':>7s} {'ratio':>6s} {'cpu r.':>6s}"
    hdr += "  load avg"
    for threads in args.threads:
        torch.set_num_threads(threads)
        print(f"\n## {threads} thread(s)\n{hdr}")
        for mi in args.models:
            name, depth, ch, size = MODELS[mi]
            for frozen in (1, -1):
                torch.manual_seed(0)
                model = Backbone(depth, ch, frozen).train()
                x = torch.randn(1, 3, size, size)
                if args.channels_last:
                    model = model.to(memory_format=torch.channels_last)
                    x = x.contiguous(memory_format=torch.channels_last)
                gf = conv_gflop(model, x)
                for bwd in (0, 1):
                    if bwd == 0 and frozen == -1:
                        continue  # the same computation as frozen_stages 1 without gradients
                    key = (mi, frozen, bwd, threads)
                    t, tc = time_case(model, x, bool(bwd), args.warmup, args.iters)
                    g = gf[bwd]
                    label = f"{name} frozen_stages {frozen:2d} {'fwd+bwd' if bwd else 'fwd'}"
                    line = f"{label:44s} {t:9.1f} {tc:8.1f} {1e3 / t:6.2f} {g / t * 1e3:7.1f}"
                    o = ours.get(key)
                    if args.binary:
                        o = run_drcnn(args.binary, key, args.iters)
                    if o is not None:
                        ms, cms, their_g = o
                        if their_g is not None and abs(their_g - g) > 1e-6 * g:
                            print(f"  note: drcnn counts {their_g:.4f} GFLOP, the hooks {g:.4f}")
                        line += f" {ms:9.1f} {cms:8.1f} {1e3 / ms:6.2f} {g / ms * 1e3:7.1f} {t / ms:6.2f} {tc / cms:6.2f}"
                    line += "  " + " ".join(f"{v:.2f}" for v in os.getloadavg())
                    print(line, flush=True)


if __name__ == "__main__":
    main()
