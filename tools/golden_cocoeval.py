#!/usr/bin/env python3
"""Golden files for the C++ COCO evaluator (tests/eval/test_coco_eval.cpp, docs/eval.md).

Writes small COCO ground-truth / results pairs that exercise every rule of COCOeval's bbox
protocol, runs pycocotools (PyPI, installed in a virtual environment OUTSIDE the repository) on
each, and stores what pycocotools reports:

    tests/data/eval/<case>_gt.json       ground truth (COCO annotation format)
    tests/data/eval/<case>_results.json  detections (COCO results format)
    tests/data/eval/goldens.json         per case: stats[12], AP per IoU threshold, per-class AP,
                                         and the exact summary text pycocotools printed

Usage (from the repository root):
    python3 -m venv /work/venv && /work/venv/bin/pip install pycocotools
    /work/venv/bin/python tools/golden_cocoeval.py [--out tests/data/eval]

Everything is deterministic (fixed seeds); re-running reproduces the files byte for byte with the
same pycocotools / numpy versions (recorded in goldens.json).
"""
import argparse
import contextlib
import io
import json
import os
import sys

import numpy as np

try:
    import pycocotools
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
except ImportError:  # pragma: no cover
    sys.exit("pycocotools missing: /work/venv/bin/pip install pycocotools (outside the repository)")


# ----------------------------------------------------------------------------- case builders
class Case:
    def __init__(self, name, categories):
        self.name = name
        self.images = []
        self.categories = [{"id": c, "name": n, "supercategory": "shape"} for c, n in categories]
        self.anns = []
        self.dets = []
        self._next_ann_id = 1

    def image(self, img_id, w=640, h=480):
        self.images.append({"id": img_id, "file_name": f"{img_id:06d}.jpg", "width": w, "height": h})

    def gt(self, img, cat, box, area=None, crowd=0, ann_id=None):
        if ann_id is None:
            ann_id = self._next_ann_id
            self._next_ann_id += 1
        self.anns.append({"id": ann_id, "image_id": img, "category_id": cat, "bbox": list(box),
                          "area": box[2] * box[3] if area is None else area, "iscrowd": crowd})

    def det(self, img, cat, box, score):
        self.dets.append({"image_id": img, "category_id": cat, "bbox": list(box), "score": score})

    def gt_json(self):
        return {"info": {"description": f"drcnn COCOeval golden case {self.name}"}, "images": self.images,
                "annotations": self.anns, "categories": self.categories}


def case_crowd():
    c = Case("crowd", [(1, "person"), (2, "car")])
    for i in (1, 2, 3):
        c.image(i)
    # image 1: one crowd region covering two people; several detections inside it.
    c.gt(1, 1, [100, 100, 200, 150], crowd=1, area=25000.0)
    c.gt(1, 1, [120, 110, 40, 90])
    c.gt(1, 1, [230, 120, 45, 100])
    c.det(1, 1, [121, 112, 40, 88], 0.95)   # matches the first person
    c.det(1, 1, [150, 130, 30, 60], 0.90)   # inside the crowd only: ignored
    c.det(1, 1, [105, 105, 60, 60], 0.85)   # inside the crowd only
    c.det(1, 1, [228, 118, 47, 104], 0.80)  # second person
    c.det(1, 1, [232, 122, 44, 96], 0.70)   # duplicate of the second person: crowd takes it
    c.det(1, 1, [400, 300, 50, 50], 0.60)   # false positive
    # image 2: crowd region first in file order (sorted last by the ignore flag), overlapping a car.
    c.gt(2, 2, [0, 0, 300, 300], crowd=1, area=60000.0)
    c.gt(2, 2, [50, 50, 100, 80])
    c.det(2, 2, [52, 48, 100, 84], 0.5)
    c.det(2, 2, [10, 10, 30, 30], 0.5)      # tie with the previous one, crowd match
    c.det(2, 2, [50, 50, 100, 80], 0.3)     # second match of the car: crowd (IoU crowd = 1)
    # image 3: a crowd region alone with detections partly outside it (crowd IoU < 1).
    c.gt(3, 1, [10, 10, 100, 100], crowd=1, area=8000.0)
    c.det(3, 1, [60, 60, 100, 100], 0.9)
    c.det(3, 1, [20, 20, 50, 50], 0.4)
    return c


def case_empty_categories():
    c = Case("empty_categories", [(1, "a"), (3, "b"), (7, "c"), (9, "d")])
    for i in (10, 20):
        c.image(i)
    c.gt(10, 1, [10, 10, 50, 50])
    c.gt(20, 1, [100, 100, 80, 60])
    c.det(10, 1, [12, 11, 50, 50], 0.9)
    c.det(20, 1, [300, 300, 80, 60], 0.8)
    c.det(10, 3, [10, 10, 50, 50], 0.7)      # category 3 has detections but no GT: -1
    c.gt(10, 7, [200, 200, 40, 40])          # category 7 has GT but no detections: 0
    # category 9: nothing at all
    return c


def case_images_without_gt():
    c = Case("images_without_gt", [(1, "a"), (2, "b")])
    for i in (1, 2, 3, 4, 5):
        c.image(i)
    c.gt(1, 1, [10, 10, 100, 100])
    c.gt(2, 2, [50, 60, 30, 40])
    c.det(1, 1, [10, 10, 100, 100], 0.6)
    c.det(2, 2, [50, 60, 30, 41], 0.4)
    c.det(3, 1, [10, 10, 100, 100], 0.9)     # image 3 has no GT: false positives ranked first
    c.det(3, 2, [0, 0, 20, 20], 0.99)
    c.det(4, 1, [5, 5, 10, 10], 0.1)
    # image 5: no GT and no detections
    return c


def case_many_dets(rng):
    c = Case("many_dets", [(1, "a"), (2, "b")])
    for i in (1, 2):
        c.image(i, 800, 800)
    for i in (1, 2):
        for _ in range(12):
            x, y = rng.uniform(0, 700, 2).round(1)
            w, h = rng.uniform(8, 120, 2).round(1)
            c.gt(i, 1, [float(x), float(y), float(w), float(h)])
        for _ in range(5):
            x, y = rng.uniform(0, 700, 2).round(1)
            c.gt(i, 2, [float(x), float(y), 40.0, 40.0])
    gts = [a for a in c.anns]
    # 150 detections of class 1 in image 1 (more than maxDets=100 for ONE (image, category)), the
    # true positives scattered through the score order; 90 + 30 in image 2 over two classes.
    for i, n1, n2 in ((1, 150, 20), (2, 90, 30)):
        own = [a for a in gts if a["image_id"] == i]
        for cat, n in ((1, n1), (2, n2)):
            mine = [a for a in own if a["category_id"] == cat]
            for j in range(n):
                if j % 7 == 3:
                    b = mine[(j // 7) % len(mine)]["bbox"]
                    box = [round(b[0] + float(rng.normal(0, 2)), 2), round(b[1] + float(rng.normal(0, 2)), 2), b[2], b[3]]
                else:
                    x, y = rng.uniform(0, 700, 2).round(1)
                    box = [float(x), float(y), round(float(rng.uniform(5, 90)), 1), round(float(rng.uniform(5, 90)), 1)]
                c.det(i, cat, box, round(float(rng.uniform(0, 1)), 4))
    return c


def case_tied_scores(rng):
    c = Case("tied_scores", [(5, "a"), (6, "b")])
    for i in range(1, 9):
        c.image(i)
    for i in range(1, 9):
        for cat in (5, 6):
            for _ in range(3):
                x, y = rng.integers(0, 500, 2)
                w, h = rng.integers(10, 130, 2)
                c.gt(i, cat, [int(x), int(y), int(w), int(h)])
    for a in list(c.anns):
        for rep in range(2):  # a TP and a duplicate, both with tied coarse scores
            b = a["bbox"]
            c.det(a["image_id"], a["category_id"], [b[0] + rep * 3, b[1], b[2], b[3]], float(rng.choice([0.5, 0.75, 1.0])))
        x, y = rng.integers(0, 500, 2)
        c.det(a["image_id"], a["category_id"], [int(x), int(y), 30, 30], float(rng.choice([0.5, 0.75, 1.0])))
    # two GT with the same IoU to a detection: ties between GT go to the later one in order
    c.image(100)
    c.gt(100, 5, [0, 0, 10, 10])
    c.gt(100, 5, [10, 0, 10, 10])
    c.det(100, 5, [5, 0, 10, 10], 0.5)
    c.det(100, 5, [5, 0, 10, 10], 0.5)
    return c


def case_area_edges():
    c = Case("area_edges", [(1, "a")])
    for i in (1, 2, 3):
        c.image(i, 1000, 1000)
    # exact range boundaries (inclusive both ends: 32^2 is small AND medium; 96^2 medium AND large)
    c.gt(1, 1, [0, 0, 32, 32])                     # area 1024
    c.gt(1, 1, [100, 100, 96, 96])                 # area 9216
    c.gt(1, 1, [300, 300, 32, 32], area=1023.5)    # just small
    c.gt(1, 1, [400, 400, 96, 96], area=9216.25)   # just large
    c.det(1, 1, [0, 0, 32, 32], 0.9)
    c.det(1, 1, [100, 100, 96, 96], 0.8)
    c.det(1, 1, [300, 300, 32, 32], 0.7)
    c.det(1, 1, [400, 400, 96, 96], 0.6)
    c.det(1, 1, [600, 600, 32, 32], 0.95)          # FP with area exactly 1024 (small and medium)
    c.det(1, 1, [700, 700, 96, 96], 0.5)           # FP with area exactly 9216
    # area field different from the box area: a big box with a small "segmentation" area
    c.gt(2, 1, [0, 0, 200, 200], area=500.0)       # small by area field, large by box
    c.gt(2, 1, [300, 300, 20, 20], area=20000.0)   # large by area field, small by box
    c.det(2, 1, [0, 0, 200, 200], 0.9)             # matched -> TP in "small" (det area ignored)
    c.det(2, 1, [300, 300, 20, 20], 0.8)
    c.det(2, 1, [500, 500, 200, 200], 0.7)         # FP; outside small -> ignored there
    # a detection matching a GT outside the range: ignored; an unmatched one in range: FP
    c.gt(3, 1, [0, 0, 10, 10])
    c.det(3, 1, [0, 0, 10, 10], 0.3)
    c.det(3, 1, [50, 50, 150, 150], 0.2)
    return c


def case_ann_id_zero(first_id=0, name="ann_id_zero"):
    """first_id=0: pycocotools' id-0 pitfall; the same case with first_id=100 is the control."""
    c = Case(name, [(1, "a"), (2, "b")])
    for i in (1, 2):
        c.image(i)
    c.gt(1, 1, [10, 10, 100, 100], ann_id=first_id)  # id 0: dtm stores 0 for its match -> FP
    c.gt(1, 1, [200, 200, 50, 50], ann_id=1)
    c.gt(2, 1, [10, 10, 60, 60], ann_id=2)
    c.gt(2, 2, [300, 10, 60, 60], ann_id=3)
    c.det(1, 1, [10, 10, 100, 100], 0.9)       # perfect match to GT id 0
    c.det(1, 1, [11, 11, 100, 100], 0.8)       # GT 0 already taken: FP either way
    c.det(1, 1, [200, 200, 50, 50], 0.7)
    c.det(2, 1, [10, 10, 60, 60], 0.6)
    c.det(2, 2, [300, 10, 60, 60], 0.5)
    return c


def case_zero_size():
    c = Case("zero_size", [(1, "a")])
    for i in (1, 2):
        c.image(i)
    c.gt(1, 1, [10, 10, 50, 50])
    c.gt(2, 1, [100, 100, 40, 40])
    c.gt(2, 1, [0, 0, 0, 0], area=0.0)         # degenerate GT (area 0 is in every range lower end)
    c.det(1, 1, [10, 10, 0, 50], 0.99)         # zero width
    c.det(1, 1, [10, 10, 50, 0], 0.98)         # zero height
    c.det(1, 1, [30, 30, 0, 0], 0.97)          # a point
    c.det(1, 1, [10, 10, 50, 50], 0.5)
    c.det(2, 1, [100, 100, 40, 40], 0.4)
    c.det(2, 1, [0, 0, 0, 0], 0.3)             # on the degenerate GT: IoU 0, unmatched
    return c


def case_random(rng, name="random_500", n_images=500, cat_ids=(1, 2, 3, 5, 8, 13, 21, 34, 55, 89)):
    c = Case(name, [(k, f"class{k}") for k in cat_ids])
    for i in range(1, n_images + 1):
        c.image(i * 3 + 7, 640, 480)  # non-contiguous image ids
    for img in c.images:
        for _ in range(int(rng.poisson(3))):
            cat = int(rng.choice(cat_ids))
            w = round(float(np.exp(rng.uniform(np.log(6), np.log(400)))), 1)
            h = round(float(np.clip(w * np.exp(rng.normal(0, 0.4)), 4, 470)), 1)
            x = round(float(rng.uniform(0, 640 - min(w, 630))), 1)
            y = round(float(rng.uniform(0, 480 - min(h, 470))), 1)
            crowd = int(rng.uniform() < 0.04)
            area = round(w * h * float(rng.uniform(0.55, 1.0)), 2)  # like a segmentation area
            c.gt(img["id"], cat, [x, y, w, h], area=area, crowd=crowd)
    for a in c.anns:
        if rng.uniform() < 0.85:
            x, y, w, h = a["bbox"]
            s = max(w, h) * float(rng.uniform(0.01, 0.25))
            box = [round(x + float(rng.normal(0, s)), 1), round(y + float(rng.normal(0, s)), 1),
                   round(max(1.0, w + float(rng.normal(0, s))), 1), round(max(1.0, h + float(rng.normal(0, s))), 1)]
            c.det(a["image_id"], a["category_id"], box, round(float(rng.beta(4, 2)), 3))
    for img in c.images:
        for _ in range(int(rng.poisson(2.5))):
            cat = int(rng.choice(cat_ids))
            w, h = (float(v) for v in rng.uniform(4, 200, 2).round(1))
            x, y = float(rng.uniform(0, 600)), float(rng.uniform(0, 440))
            c.det(img["id"], cat, [round(x, 1), round(y, 1), w, h], round(float(rng.beta(2, 4)), 3))
    return c


# ----------------------------------------------------------------------------- pycocotools run
def evaluate(gt_path, res_path):
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(gt_path)
        dt = gt.loadRes(res_path)
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        ev.summarize()
    prec = ev.eval["precision"]  # [T, R, K, A, M]

    def masked_mean(s):
        return float(np.mean(s[s > -1])) if len(s[s > -1]) else -1.0

    ap_per_iou = [masked_mean(prec[t, :, :, 0, -1]) for t in range(prec.shape[0])]
    ap_per_class = [masked_mean(prec[:, :, k, 0, -1]) for k in range(prec.shape[2])]
    return {"stats": [float(v) for v in ev.stats], "ap_per_iou": ap_per_iou, "ap_per_class": ap_per_class,
            "category_ids": [int(k) for k in ev.params.catIds], "summary": buf.getvalue()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "data", "eval"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(20241129)
    cases = [case_crowd(), case_empty_categories(), case_images_without_gt(), case_many_dets(rng),
             case_tied_scores(rng), case_area_edges(), case_ann_id_zero(),
             case_ann_id_zero(100, "ann_id_zero_control"), case_zero_size(), case_random(rng)]
    goldens = {"generator": "tools/golden_cocoeval.py", "pycocotools": getattr(pycocotools, "__version__", "2.0"),
               "numpy": np.__version__,
               "iou_thresholds": [float(v) for v in np.linspace(.5, 0.95, 10, endpoint=True)],
               "cases": {}}
    try:
        from importlib.metadata import version
        goldens["pycocotools"] = version("pycocotools")
    except Exception:  # pragma: no cover
        pass
    total = 0
    for c in cases:
        gt_path = os.path.join(args.out, f"{c.name}_gt.json")
        res_path = os.path.join(args.out, f"{c.name}_results.json")
        with open(gt_path, "w") as f:
            json.dump(c.gt_json(), f, separators=(",", ":"))
            f.write("\n")
        with open(res_path, "w") as f:
            json.dump(c.dets, f, separators=(",", ":"))
            f.write("\n")
        goldens["cases"][c.name] = evaluate(gt_path, res_path)
        size = os.path.getsize(gt_path) + os.path.getsize(res_path)
        total += size
        print(f"{c.name:20s} {len(c.images):4d} images {len(c.anns):5d} GT {len(c.dets):5d} dets "
              f"{size / 1024:7.1f} KB  AP={goldens['cases'][c.name]['stats'][0]:.6f}")
    with open(os.path.join(args.out, "goldens.json"), "w") as f:
        json.dump(goldens, f, indent=1)
        f.write("\n")
    print(f"total {total / 1024:.1f} KB of fixtures in {os.path.normpath(args.out)}")


if __name__ == "__main__":
    main()
