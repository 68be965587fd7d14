#!/usr/bin/env python3
"""Times pycocotools on the files benchmarks/bench_cocoeval.cpp writes (docs/eval.md).

    ./build/ci/benchmarks/bench_cocoeval            # writes /tmp/drcnn_bench_cocoeval/{gt,results}.json
    /work/venv/bin/python tools/bench_cocoeval.py /tmp/drcnn_bench_cocoeval [--repeat 3]

Prints the time of each pycocotools step (COCO(gt), loadRes, evaluate, accumulate, summarize),
the evaluate+accumulate+summarize total (what BM_CocoEvalBbox measures) and the whole run
(what BM_CocoEvalFiles measures) and its CPU time, best of --repeat runs, and the 12 stats so the two programs
can be compared number for number. pycocotools comes from PyPI in a virtual environment
outside the repository.
"""
import argparse
import contextlib
import io
import os
import time

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def run(gt_path, dt_path):
    t = {}
    c0 = time.process_time()
    with contextlib.redirect_stdout(io.StringIO()):
        t0 = time.perf_counter(); gt = COCO(gt_path); t["load_gt"] = time.perf_counter() - t0
        t0 = time.perf_counter(); dt = gt.loadRes(dt_path); t["load_results"] = time.perf_counter() - t0
        ev = COCOeval(gt, dt, "bbox")
        t0 = time.perf_counter(); ev.evaluate(); t["evaluate"] = time.perf_counter() - t0
        t0 = time.perf_counter(); ev.accumulate(); t["accumulate"] = time.perf_counter() - t0
        t0 = time.perf_counter(); ev.summarize(); t["summarize"] = time.perf_counter() - t0
    t["eval_total"] = t["evaluate"] + t["accumulate"] + t["summarize"]
    t["whole"] = t["eval_total"] + t["load_gt"] + t["load_results"]
    t["whole_cpu"] = time.process_time() - c0  # CPU time of this process (the machine may be shared)
    return t, ev.stats


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", nargs="?", default="/tmp/drcnn_bench_cocoeval")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--compare", help="a drcnn-cocoeval --json report of the same files: print the max stats difference")
    args = ap.parse_args()
    gt_path, dt_path = os.path.join(args.dir, "gt.json"), os.path.join(args.dir, "results.json")
    best = None
    for _ in range(args.repeat):
        t, stats = run(gt_path, dt_path)
        best = t if best is None else {k: min(best[k], t[k]) for k in t}
    for k, v in best.items():
        print(f"pycocotools {k:13s} {v * 1000:10.1f} ms")
    print("stats", " ".join(f"{s:.6f}" for s in stats))
    print("numpy", np.__version__)
    if args.compare:
        import json
        with open(args.compare) as f:
            ours = json.load(f)["stats_array"]
        print("max |drcnn - pycocotools| over the 12 stats:", max(abs(a - b) for a, b in zip(ours, stats)))


if __name__ == "__main__":
    main()
