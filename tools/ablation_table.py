#!/usr/bin/env python3
"""Summarises scripts/ablation.sh: the Faster R-CNN baseline (fixed IoU 0.5, beta 1.0) against
Dynamic R-CNN, same preset, recipe and seeds. Prints a Markdown table (mean and sample standard
deviation over the seeds of AP, AP50, AP60, AP70, AP80, AP90, with the paper's COCO numbers beside
them) and, where drcnn_test evaluated intermediate checkpoints (RUN/test_NNNNNNN/metrics.json),
AP against the iteration for each arm; with --svg-dir it also writes the IoU threshold and beta
plots (tools/plot_schedule.py) from every run's metrics.jsonl.

    python3 tools/ablation_table.py build/ci/ablation [--svg-dir docs/img]

The folder holds one run folder per arm and seed: baseline_seed<S>/ and dynamic_seed<S>/, each
with drcnn_train's metrics.json (the final evaluation) and metrics.jsonl. Standard library only.
"""
import argparse
import glob
import json
import os
import re
import statistics
import subprocess
import sys

KEYS = ["AP", "AP50", "AP60", "AP70", "AP80", "AP90"]
# Dynamic R-CNN paper (Zhang et al., ECCV 2020), ResNet-50-FPN 1x on COCO: the abstract's
# 38.9 AP against 37.0 for the baseline and +5.5 AP90 (docs/results.md; dynamic-rcnn-spec.md:
# the per-threshold table could not be retrieved, so only these are filled in).
PAPER = {"AP": ("37.0", "38.9"), "AP90": ("", "+5.5 over the baseline")}
ARMS = [("baseline", "Faster R-CNN (IoU 0.5, beta 1.0)"), ("dynamic", "Dynamic R-CNN")]


def ap_values(path):
    with open(path) as f:
        m = json.load(f)
    out = {"AP": m["stats"]["AP"]}
    out.update(m["ap_per_iou"])
    return out


def runs(root, arm):
    found = []
    for d in sorted(glob.glob(os.path.join(root, f"{arm}_seed*"))):
        seed = re.search(r"_seed(\d+)$", d)
        if seed and os.path.isfile(os.path.join(d, "metrics.json")):
            found.append((int(seed.group(1)), d))
    return found


def final_iteration(run):
    """solver.max_iters from RUN/config.yaml (drcnn_train's resolved config), or None."""
    try:
        with open(os.path.join(run, "config.yaml")) as f:
            m = re.search(r"^\s*max_iters:\s*(\d+)", f.read(), re.M)
    except OSError:
        return None
    return int(m.group(1)) if m else None


def mean_sd(xs):
    if not xs:
        return "—"
    m = statistics.fmean(xs) * 100
    if len(xs) == 1:
        return f"{m:.1f}"
    return f"{m:.1f} ± {statistics.stdev(xs) * 100:.1f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("root", help="the ablation folder (scripts/ablation.sh's output)")
    ap.add_argument("--svg-dir", help="also write iou_threshold.svg and beta.svg here")
    a = ap.parse_args()
    arms = {arm: runs(a.root, arm) for arm, _ in ARMS}
    if not any(arms.values()):
        sys.exit(f"ablation_table: {a.root}: no baseline_seed*/ or dynamic_seed*/ run with a metrics.json")
    vals = {arm: [ap_values(os.path.join(d, "metrics.json")) for _, d in rs] for arm, rs in arms.items()}

    print("COCO AP (x100) on the shapes val split, mean ± sample standard deviation over the seeds:\n")
    head = "| | seeds | " + " | ".join(KEYS) + " |"
    print(head)
    print("|" + "---|" * (len(KEYS) + 2))
    for arm, name in ARMS:
        seeds = ", ".join(str(s) for s, _ in arms[arm]) or "none"
        print(f"| {name} | {seeds} | " + " | ".join(mean_sd([v[k] for v in vals[arm]]) for k in KEYS) + " |")
    if vals["baseline"] and vals["dynamic"]:
        paired = [(b, d) for (sb, _), b in zip(arms["baseline"], vals["baseline"])
                  for (sd, _), d in zip(arms["dynamic"], vals["dynamic"]) if sb == sd]
        if paired:
            cells = [mean_sd([d[k] - b[k] for b, d in paired]) for k in KEYS]
            print(f"| Dynamic − baseline (same seed) | pairs: {len(paired)} | " + " | ".join(cells) + " |")
    print("| paper, COCO (R-50-FPN 1x): baseline / Dynamic | — | "
          + " | ".join(" / ".join(x for x in PAPER[k] if x) if k in PAPER else "—" for k in KEYS) + " |")

    curves = {}
    for arm, rs in arms.items():
        for seed, d in rs:
            for t in glob.glob(os.path.join(d, "test_*", "metrics.json")):
                it = int(re.search(r"test_(\d+)", t).group(1))
                curves.setdefault((arm, it), []).append(ap_values(t)["AP"])
            final = final_iteration(d)  # the run's own evaluation, unless drcnn_test repeated it
            if final is not None and not os.path.isdir(os.path.join(d, f"test_{final:07d}")):
                curves.setdefault((arm, final), []).append(ap_values(os.path.join(d, "metrics.json"))["AP"])
    if curves:
        iters = sorted({it for _, it in curves})
        print("\nAP (x100) of the intermediate checkpoints (drcnn_test), mean ± sd over the seeds:\n")
        print("| iteration | " + " | ".join(name for _, name in ARMS) + " |")
        print("|---|---|---|")
        for it in iters:
            print(f"| {it} | " + " | ".join(mean_sd(curves.get((arm, it), [])) for arm, _ in ARMS) + " |")

    if a.svg_dir:
        os.makedirs(a.svg_dir, exist_ok=True)
        plot = os.path.join(os.path.dirname(os.path.abspath(__file__)), "plot_schedule.py")
        series = [f"{arm}-seed{s}={os.path.join(d, 'metrics.jsonl')}" for arm, _ in ARMS for s, d in arms[arm]]
        for field, title in (("iou_threshold", "R-CNN IoU threshold (positive/negative)"),
                             ("beta", "beta of the R-CNN SmoothL1 loss")):
            subprocess.run([sys.executable, plot, "--field", field, "--title", title,
                            "--out", os.path.join(a.svg_dir, f"ablation_{field}.svg")] + series, check=True)


if __name__ == "__main__":
    main()
