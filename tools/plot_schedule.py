#!/usr/bin/env python3
"""Line plots (plain SVG, no plotting library) of fields of drcnn_train's metrics.jsonl over the
iterations, one line per run: the Dynamic R-CNN IoU threshold and beta for docs/results.md.

    python3 tools/plot_schedule.py --field iou_threshold --title "R-CNN IoU threshold" \
        --out docs/img/iou_threshold.svg dynamic-seed0=runs/dyn0/metrics.jsonl baseline-seed0=runs/base0/metrics.jsonl

Each positional argument is LABEL=PATH (PATH: a metrics.jsonl; one JSON object per line with
"iteration" and the field). Lines missing the field are skipped; a file without any is an error.
Only the standard library is used, so any python3 runs it.
"""
import argparse
import json
import math
import sys

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


def read_series(path, field):
    xs, ys = [], []
    try:
        f = open(path)
    except OSError as e:
        sys.exit(f"plot_schedule: cannot read {path}: {e.strerror}")
    with f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"plot_schedule: {path}:{n}: not JSON ({e})")
            if field in rec and "iteration" in rec:
                xs.append(float(rec["iteration"]))
                ys.append(float(rec[field]))
    if not xs:
        sys.exit(f"plot_schedule: {path}: no line has both 'iteration' and '{field}'")
    return xs, ys


def nice_ticks(lo, hi, n=5):
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=10 * mag)
    # From the last tick at or below lo to the first at or above hi, so the data stay inside.
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [round(k * step, 10) for k in range(first, last + 1)]


def svg(series, title, ylabel, width=760, height=360):
    left, right, top, bottom = 60, 250, 30, 45
    pw, ph = width - left - right, height - top - bottom
    xmax = max(max(xs) for _, xs, _ in series)
    ylo = min(min(ys) for _, _, ys in series)
    yhi = max(max(ys) for _, _, ys in series)
    pad = 0.05 * (yhi - ylo) if yhi > ylo else 0.05
    yt = nice_ticks(ylo - pad, yhi + pad)
    xt = nice_ticks(0, xmax)
    y0, y1 = yt[0], yt[-1]
    x1 = xt[-1]

    def px(x):
        return left + pw * x / x1

    def py(y):
        return top + ph * (1 - (y - y0) / (y1 - y0))

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left + pw / 2}" y="18" text-anchor="middle" font-size="13">{title}</text>']
    for t in yt:
        out.append(f'<line x1="{left}" y1="{py(t):.1f}" x2="{left + pw}" y2="{py(t):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 5}" y="{py(t) + 4:.1f}" text-anchor="end">{t:g}</text>')
    for t in xt:
        out.append(f'<line x1="{px(t):.1f}" y1="{top}" x2="{px(t):.1f}" y2="{top + ph}" stroke="#eee"/>')
        out.append(f'<text x="{px(t):.1f}" y="{top + ph + 15}" text-anchor="middle">{t:g}</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 8}" text-anchor="middle">iteration</text>')
    out.append(f'<text x="14" y="{top + ph / 2}" text-anchor="middle" '
               f'transform="rotate(-90 14 {top + ph / 2})">{ylabel}</text>')
    for k, (label, xs, ys) in enumerate(series):
        c = COLOURS[k % len(COLOURS)]
        pts = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs, ys))
        out.append(f'<polyline points="{pts}" fill="none" stroke="{c}" stroke-width="1.5"/>')
        ly = top + 10 + 16 * k
        out.append(f'<line x1="{left + pw + 10}" y1="{ly}" x2="{left + pw + 30}" y2="{ly}" stroke="{c}" stroke-width="2"/>')
        out.append(f'<text x="{left + pw + 35}" y="{ly + 4}">{label}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--field", required=True, help="metrics.jsonl key to plot (iou_threshold, beta, lr, total_loss, ...)")
    ap.add_argument("--title", default=None)
    ap.add_argument("--ylabel", default=None)
    ap.add_argument("--out", required=True, help="SVG file to write")
    ap.add_argument("runs", nargs="+", help="LABEL=PATH/metrics.jsonl")
    a = ap.parse_args()
    series = []
    for r in a.runs:
        if "=" not in r:
            sys.exit(f"plot_schedule: '{r}': expected LABEL=PATH")
        label, path = r.rsplit("=", 1)  # the last '=': labels may hold one (K_beta=5)
        xs, ys = read_series(path, a.field)
        series.append((label, xs, ys))
    with open(a.out, "w") as f:
        f.write(svg(series, a.title or a.field, a.ylabel or a.field))


if __name__ == "__main__":
    main()
