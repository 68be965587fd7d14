#!/usr/bin/env python3
"""The learning-rate peer of drcnn_train: torchvision's Faster R-CNN built to the size of a drcnn
preset and trained with the same recipe on the same COCO data, evaluated with pycocotools at a
few iteration budgets (docs/training.md, "Peer: torchvision").

    /work/venv/bin/python tools/train_torchvision_peer.py --config configs/shapes_demo.yaml \
        --train-ann D/annotations/instances_train.json --train-images D/train \
        --val-ann D/annotations/instances_val.json --val-images D/val \
        --iters 1600 --eval-at 400,800,1600 --threads 2 --out runs/peer

What is taken from the drcnn run config (`--config`, the file drcnn_train reads; `--set` is not
read, pass the same file to both): the backbone (ResNet-18 of `base_width`, GroupNorm with
`gn_groups`), the FPN width and max-pool P6, the anchors (one size per level = stride x scale,
the ratios), the RPN proposal counts and NMS IoU (train and test), the RPN and R-CNN samplers
(num, positive fraction), the R-CNN box stds (torchvision's (10, 10, 5, 5) weights are stds 0.1,
0.1, 0.2, 0.2: only those are accepted), the head width, the test score threshold / NMS /
detections per image, and the solver (lr, momentum, weight decay, warm-up iterations and ratio,
steps, batch, gradient clipping at the total L2 norm, flip probability, scale). The R-CNN IoU
threshold is torchvision's fixed 0.5 (Faster R-CNN: compare with drcnn_train --static).

What differs and cannot be matched without rewriting torchvision (docs/training.md lists it): the
RPN box loss (torchvision smooth L1 with beta 1/9, summed and divided by the sampled anchors;
drcnn/mmdet L1), RoIAlign's sampling ratio (torchvision 2, drcnn adaptive), torchvision's RPN
pre-NMS top-k taken per level then one NMS over all levels with a per-level offset (the same
as mmdet's batched NMS by level), the random numbers (sampling, data order, initialisation:
torchvision's kaiming init of the convolutions) and torchvision's resize (the images are
already at the scale, so it only normalises and pads to 32).

Writes OUT/metrics.jsonl (one line per log interval: iteration, losses, lr, seconds) and
OUT/eval.jsonl (one line per --eval-at budget: iteration, training seconds so far, the COCO
summary AP, AP50, AP75, APs, APm, APl and AP50..AP95 by 0.05).
"""
import argparse
import json
import math
import os
import random
import time

import cv2
import numpy as np
import torch
import yaml
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.resnet import BasicBlock
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool


def merged(base, over):
    out = dict(base)
    for k, v in over.items():
        out[k] = merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


# drcnn's small_cpu defaults (DetectorConfig::small_cpu and io::RunConfig), overridden by the file.
DEFAULTS = {
    "model": {
        "backbone": {"depth": 18, "base_width": 64, "norm": {"kind": "gn", "gn_groups": 32}},
        "neck": {"out_channels": 128, "num_outs": 5},
        "anchors": {"strides": [4, 8, 16, 32, 64], "ratios": [0.5, 1.0, 2.0], "scales": [4.0]},
        "rpn_loss": {"sampler": {"num": 256, "pos_fraction": 0.5},
                     "assigner": {"pos_iou_thr": 0.7, "neg_iou_hi": 0.3}},
        "rpn_train": {"nms_pre": 1000, "nms_iou": 0.85, "max_per_img": 500},
        "rpn_test": {"nms_pre": 500, "nms_iou": 0.85, "max_per_img": 300},
        "roi_head": {"bbox_head": {"roi_feat_size": 7, "fc_out_channels": 512},
                     "sampler": {"num": 128, "pos_fraction": 0.25},
                     "target_stds": [0.1, 0.1, 0.2, 0.2],
                     "score_thr": 0.05, "nms_iou": 0.5, "max_per_img": 100},
    },
    "solver": {"lr": 0.005, "momentum": 0.9, "weight_decay": 0.0001, "warmup_iters": 100,
               "warmup_ratio": 0.001, "steps": [], "max_iters": 500, "images_per_batch": 2,
               "grad_clip": 10.0},
    "data": {"scale_long": 256, "scale_short": 256, "flip": 0.5},
    "seed": 0,
}


def load_config(path):
    cfg = DEFAULTS
    if path:
        with open(path) as f:
            raw = yaml.safe_load(f) or {}
        if raw.get("_base_"):
            raise SystemExit(f"{path}: _base_ is not supported by this script; give a flat config")
        if raw.get("preset", "small_cpu") != "small_cpu":
            raise SystemExit(f"{path}: preset {raw['preset']!r}: only small_cpu-based configs are supported")
        cfg = merged(cfg, {k: v for k, v in raw.items() if k in ("model", "solver", "data", "seed")})
    m = cfg["model"]
    if m["backbone"]["depth"] != 18 or m["backbone"]["norm"]["kind"] != "gn":
        raise SystemExit("model.backbone: only depth 18 with GroupNorm is built here")
    if [float(s) for s in m["roi_head"]["target_stds"]] != [0.1, 0.1, 0.2, 0.2]:
        raise SystemExit("model.roi_head.target_stds: torchvision's box coder is (10, 10, 5, 5) = stds 0.1 0.1 0.2 0.2")
    if len(m["anchors"]["scales"]) != 1:
        raise SystemExit("model.anchors.scales: one scale per level is supported")
    return cfg


class ResNet18GN(nn.Module):
    """ResNet-18 (torchvision's BasicBlock) with a base width and GroupNorm, returning C2..C5."""

    def __init__(self, width, groups):
        super().__init__()

        def norm(c):
            return nn.GroupNorm(min(groups, c), c)

        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = norm(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.inplanes = width
        self.layer1 = self._layer(width, 1, norm)
        self.layer2 = self._layer(width * 2, 2, norm)
        self.layer3 = self._layer(width * 4, 2, norm)
        self.layer4 = self._layer(width * 8, 2, norm)
        for mod in self.modules():
            if isinstance(mod, nn.Conv2d):
                nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")

    def _layer(self, planes, stride, norm):
        down = None
        if stride != 1 or self.inplanes != planes:
            down = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride, bias=False), norm(planes))
        blocks = [BasicBlock(self.inplanes, planes, stride, down, norm_layer=norm),
                  BasicBlock(planes, planes, norm_layer=norm)]
        self.inplanes = planes
        return nn.Sequential(*blocks)

    def forward(self, x):
        return self.layer4(self.layer3(self.layer2(self.layer1(self.maxpool(self.relu(self.bn1(self.conv1(x))))))))


def build_model(cfg, num_classes):
    m = cfg["model"]
    w = m["backbone"]["base_width"]
    body = ResNet18GN(w, m["backbone"]["norm"]["gn_groups"])
    fpn_out = m["neck"]["out_channels"]
    backbone = BackboneWithFPN(body, {"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"},
                               [w, 2 * w, 4 * w, 8 * w], fpn_out, extra_blocks=LastLevelMaxPool())
    a = m["anchors"]
    sizes = tuple((int(s * a["scales"][0]),) for s in a["strides"])
    # mmdet ratios are h / w; torchvision's aspect_ratios are h / w too (h_ratios = sqrt(r)).
    anchors = AnchorGenerator(sizes, (tuple(a["ratios"]),) * len(sizes))
    rs = m["roi_head"]["bbox_head"]["roi_feat_size"]
    pool = MultiScaleRoIAlign(["0", "1", "2", "3"], rs, sampling_ratio=2)
    rpn_s, rcnn_s = m["rpn_loss"]["sampler"], m["roi_head"]["sampler"]
    model = FasterRCNN(
        backbone, num_classes=num_classes + 1,
        min_size=cfg["data"]["scale_short"], max_size=cfg["data"]["scale_long"],
        rpn_anchor_generator=anchors, box_roi_pool=pool,
        rpn_pre_nms_top_n_train=m["rpn_train"]["nms_pre"], rpn_post_nms_top_n_train=m["rpn_train"]["max_per_img"],
        rpn_pre_nms_top_n_test=m["rpn_test"]["nms_pre"], rpn_post_nms_top_n_test=m["rpn_test"]["max_per_img"],
        rpn_nms_thresh=m["rpn_train"]["nms_iou"],
        rpn_fg_iou_thresh=m["rpn_loss"]["assigner"]["pos_iou_thr"], rpn_bg_iou_thresh=m["rpn_loss"]["assigner"]["neg_iou_hi"],
        rpn_batch_size_per_image=rpn_s["num"], rpn_positive_fraction=rpn_s["pos_fraction"],
        box_batch_size_per_image=rcnn_s["num"], box_positive_fraction=rcnn_s["pos_fraction"],
        box_fg_iou_thresh=0.5, box_bg_iou_thresh=0.5,
        box_score_thresh=m["roi_head"]["score_thr"], box_nms_thresh=m["roi_head"]["nms_iou"],
        box_detections_per_img=m["roi_head"]["max_per_img"])
    # The box head's width (torchvision's TwoMLPHead default is 1024).
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    fc = m["roi_head"]["bbox_head"]["fc_out_channels"]
    model.roi_heads.box_head = TwoMLPHead(fpn_out * rs * rs, fc)
    model.roi_heads.box_predictor = FastRCNNPredictor(fc, num_classes + 1)
    if m["rpn_test"]["nms_iou"] != m["rpn_train"]["nms_iou"]:
        raise SystemExit("model.rpn_test.nms_iou must equal rpn_train's (torchvision has one RPN NMS IoU)")
    return model


class Coco:
    def __init__(self, ann, images):
        self.coco = COCO(ann)
        self.root = images
        self.ids = sorted(self.coco.getImgIds())
        self.cats = sorted(self.coco.getCatIds())
        self.label_of = {c: i + 1 for i, c in enumerate(self.cats)}  # 0 is torchvision's background

    def image(self, img_id):
        info = self.coco.loadImgs(img_id)[0]
        bgr = cv2.imread(os.path.join(self.root, info["file_name"]), cv2.IMREAD_COLOR)
        if bgr is None:
            raise SystemExit(f"cannot read {os.path.join(self.root, info['file_name'])}")
        return torch.from_numpy(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)).permute(2, 0, 1).float() / 255.0

    def target(self, img_id):
        anns = [a for a in self.coco.loadAnns(self.coco.getAnnIds(imgIds=img_id)) if not a.get("iscrowd", 0)]
        boxes = [[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]] for a in anns]
        return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                "labels": torch.tensor([self.label_of[a["category_id"]] for a in anns], dtype=torch.int64)}


def lr_at(it, s):
    """drcnn's LrSchedule: linear warm-up from warmup_ratio over warmup_iters, x0.1 at each step
    (iteration `it` counts from 0; the lr of the (it+1)-th update)."""
    lr = s["lr"] * 0.1 ** sum(1 for st in s["steps"] if it >= st)
    if it < s["warmup_iters"]:
        k = (1 - it / s["warmup_iters"]) * (1 - s["warmup_ratio"])
        lr *= 1 - k
    return lr


@torch.no_grad()
def evaluate(model, val, out_path):
    model.eval()
    results = []
    cat_of = {v: k for k, v in val.label_of.items()}
    for img_id in val.ids:
        det = model([val.image(img_id)])[0]
        for b, s, l in zip(det["boxes"].tolist(), det["scores"].tolist(), det["labels"].tolist()):
            results.append({"image_id": img_id, "category_id": cat_of[l],
                            "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "score": s})
    model.train()
    with open(out_path, "w") as f:
        json.dump(results, f)
    if not results:
        return {"AP": 0.0, "AP50": 0.0, "AP75": 0.0}
    ev = COCOeval(val.coco, val.coco.loadRes(results), "bbox")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    st = ev.stats
    out = {"AP": st[0], "AP50": st[1], "AP75": st[2], "APs": st[3], "APm": st[4], "APl": st[5]}
    prec = ev.eval["precision"]  # [T, R, K, A, M]
    for t, thr in enumerate(ev.params.iouThrs):
        p = prec[t, :, :, 0, -1]
        out[f"AP{int(round(thr * 100))}"] = float(np.mean(p[p > -1])) if (p > -1).any() else -1.0
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", help="drcnn run config (YAML); default: small_cpu's defaults")
    ap.add_argument("--train-ann", required=True)
    ap.add_argument("--train-images", required=True)
    ap.add_argument("--val-ann", required=True)
    ap.add_argument("--val-images", required=True)
    ap.add_argument("--iters", type=int, help="training iterations (default: solver.max_iters)")
    ap.add_argument("--eval-at", default="", help="comma-separated iteration budgets to evaluate at (the last is always evaluated)")
    ap.add_argument("--seed", type=int, help="default: the config's seed")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--log-every", type=int, default=20)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    cfg = load_config(a.config)
    s = cfg["solver"]
    iters = a.iters or s["max_iters"]
    seed = cfg["seed"] if a.seed is None else a.seed
    budgets = sorted({int(x) for x in a.eval_at.split(",") if x} | {iters})
    torch.set_num_threads(a.threads)
    torch.manual_seed(seed)
    random.seed(seed)
    os.makedirs(a.out, exist_ok=True)

    train = Coco(a.train_ann, a.train_images)
    val = Coco(a.val_ann, a.val_images)
    model = build_model(cfg, len(train.cats))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=s["lr"], momentum=s["momentum"], weight_decay=s["weight_decay"])
    batch = s["images_per_batch"]
    flip = cfg["data"]["flip"]
    images = {i: train.image(i) for i in train.ids}  # 300 small PNGs: decode once
    targets = {i: train.target(i) for i in train.ids}
    order, pos = [], 0
    metrics = open(os.path.join(a.out, "metrics.jsonl"), "w")
    evals = open(os.path.join(a.out, "eval.jsonl"), "w")
    train_seconds, t0, acc = 0.0, time.time(), {}
    for it in range(iters):
        imgs, tgts = [], []
        for _ in range(batch):
            if pos == len(order):
                order, pos = list(train.ids), 0
                random.shuffle(order)
            i = order[pos]
            pos += 1
            img, t = images[i], {k: v.clone() for k, v in targets[i].items()}
            if random.random() < flip:
                w = img.shape[2]
                img = img.flip(2)
                t["boxes"][:, [0, 2]] = w - t["boxes"][:, [2, 0]]
            imgs.append(img)
            tgts.append(t)
        for g in opt.param_groups:
            g["lr"] = lr_at(it, s)
        losses = model(imgs, tgts)
        loss = sum(losses.values())
        opt.zero_grad()
        loss.backward()
        if s["grad_clip"] > 0:
            torch.nn.utils.clip_grad_norm_(params, s["grad_clip"])
        opt.step()
        for k, v in losses.items():
            acc[k] = acc.get(k, 0.0) + float(v.detach())
        n = it + 1
        if n % a.log_every == 0 or n == iters:
            elapsed = time.time() - t0
            rec = {"iter": n, "lr": lr_at(it, s), "seconds": train_seconds + elapsed}
            rec.update({k: v / (a.log_every if n % a.log_every == 0 else n % a.log_every) for k, v in acc.items()})
            acc = {}
            metrics.write(json.dumps(rec) + "\n")
            metrics.flush()
            print(json.dumps(rec), flush=True)
        if n in budgets:
            train_seconds += time.time() - t0
            r = evaluate(model, val, os.path.join(a.out, f"detections_{n}.json"))
            r.update({"iter": n, "train_seconds": round(train_seconds, 1)})
            evals.write(json.dumps(r) + "\n")
            evals.flush()
            print("eval", json.dumps(r), flush=True)
            t0 = time.time()
    torch.save(model.state_dict(), os.path.join(a.out, "model.pt"))


if __name__ == "__main__":
    main()
