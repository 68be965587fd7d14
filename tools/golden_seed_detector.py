#!/usr/bin/env python3
"""The whole-detector golden of maskrcnn-benchmark's (the seed's) inference: a float64 and a
float32 transcription of hkzhang95/DynamicRCNN's test path, written from its code and apart from
drcnn, run on a small random-weight model saved with the seed's own names, converted by
tools/convert_checkpoint.py. The ctest tests/models/test_seed_checkpoint.cpp compares drcnn's
proposals and detections (box_convention maskrcnn_benchmark) with it.

    /work/venv/bin/python tools/golden_seed_detector.py [--out tests/data/checkpoints]
        [--image ../shared/data/raccoon/images/raccoon-1.jpg]

Transcribed (files of hkzhang95/DynamicRCNN; the box rules are those of
tools/golden_maskrcnn_benchmark.py, imported from there):
  backbone   basemodels/resnet.py: StemWithFixedBatchNorm (7x7/2 conv, FrozenBatchNorm2d, ReLU,
             max_pool2d(3, 2, 1)), BottleneckWithFixedBatchNorm with STRIDE_IN_1X1 (the stride on
             conv1), downsample = 1x1 conv + FrozenBatchNorm2d in each stage's first block;
             utils/misc.py FrozenBatchNorm2d: x * (w * rsqrt(var)) + (b - mean * scale), no eps
  fpn        det_opr/fpn/fpn.py: fpn_inner (1x1) / fpn_layer (3x3) with bias, top-down
             F.interpolate(scale_factor=2, nearest), LastLevelMaxPool (max_pool2d(P5, 1, 2))
  rpn        network.py: rpn_conv 3x3 + ReLU, rpn_cls_logits, rpn_bbox_pred; anchors
             det_opr/rpn/anchor_generator.py (generate_anchors, float32 cell anchors, sizes 32..512
             at strides 4..64, ratios 0.5 / 1 / 2)
  proposals  det_opr/rpn/proposal_opr.py at test (is_train False): per level permute_and_flatten,
             sigmoid, topk(pre_nms_top_n, sorted), BoxCoder(1, 1, 1, 1).decode, clip_to_image,
             remove_small_boxes(MIN_SIZE), boxlist_nms(NMS_THRESH, max_proposals=post_nms_top_n);
             then per image topk(fpn_post_nms_top_n) over the levels' concatenation
  pooler     det_opr/poolers.py: LevelMapper(2, 5, 224, 4, 1e-6) on BoxList.area (+1), ROIAlign
             (7, 7) at scales 1/4 .. 1/32, sampling ratio 2, maskrcnn-benchmark's kernel: no
             half-pixel offset, roi size at least 1 (torchvision.ops.roi_align aligned=False is
             that kernel)
  box head   network.py: fc6, fc7 with ReLU, cls_score, bbox_pred
  post       det_opr/rcnn/post_processing.py: softmax, BoxCoder(10, 10, 5, 5).decode,
             clip_to_image, filter_results (per class j >= 1: score > 0.05, boxlist_nms 0.5 whose
             kernel returns kept positions sorted ascending; classes concatenated; more than 100:
             kthvalue threshold, keep score >= it); then BoxList.resize to the original image
             (the test's evaluation), x * (orig_w / w), y * (orig_h / h)
NMS: kernels/cuda/nms.cu (devIoU: +1 widths, IoU > thr suppresses, visit in descending score
order, kept positions sorted ascending), vectorised here (the IoU matrix of
golden_maskrcnn_benchmark.boxlist_iou, then the greedy pass).

The model is the seed's config narrowed: ResNet-50 with STEM_OUT_CHANNELS = WIDTH_PER_GROUP = 2
(RES2_OUT_CHANNELS 8), FPN 8 channels, MLP_HEAD_DIM 16, 3 classes + background. Weights: seeded
random, each FrozenBatchNorm's statistics measured on the input, output layers scaled so scores
are spread (as tools/compare_mmdet.py does), saved as float32 with the seed's names
({"model": {"module.backbone.body.stem.conv1.weight", ..., "module.rpn_conv.weight", ...,
"module.fc6.weight", ..., "module.anchor_generator.cell_anchors.0", ...}}), then converted; only
the converted files are committed. The input is raccoon-1.jpg resized to 100 x 64 (cv2
INTER_AREA, not under test), BGR minus PIXEL_MEAN, zero-padded to 128 x 64.

Two proposal settings: "capped" (PRE_NMS_TOP_N_TEST 300, POST_NMS_TOP_N_TEST 120,
FPN_POST_NMS_TOP_N_TEST 250: the per-level cap and the image's top-n both cut) and "preset" (the
seed's 1000 / 1000 / 1000). Files: seed_tiny.safetensors, seed_tiny.yaml (the converter's
output), seed_tiny_io.safetensors ("image" [1, 3, 64, 128] float32, "size", "orig", "scale" (w,
h) as drcnn's scale factor, and per setting S and dtype D: "prop_boxes_S_D", "prop_scores_S_D",
"boxes_S_D", "scores_S_D", "labels_S_D", the labels 0-based foreground classes; boxes in
original-image pixels).
"""
import argparse
import math
import os
import subprocess
import sys

import cv2
import numpy as np
import torch
import torch.nn.functional as F
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import golden_maskrcnn_benchmark as mb  # noqa: E402
import safetensors_writer  # noqa: E402

WIDTH = 2          # STEM_OUT_CHANNELS = WIDTH_PER_GROUP (NUM_GROUPS 1)
FPN_OUT = 8
MLP = 16
NUM_CLASSES = 4    # ROI_BOX_HEAD.NUM_CLASSES, background included
BLOCKS = (3, 4, 6, 3)
STRIDES = (4, 8, 16, 32, 64)
SIZES = (32, 64, 128, 256, 512)
RATIOS = (0.5, 1.0, 2.0)
PIXEL_MEAN = (102.9801, 115.9465, 122.7717)
SETTINGS = {"capped": (300, 120, 250), "preset": (1000, 1000, 1000)}


# ----------------------------------------------------------------------------- weights
def make_weights(g):
    """The seed's Network state (names without 'module.'), float32, random."""
    w = {}

    def conv(name, cout, cin, k, bias=False):
        w[name + ".weight"] = torch.randn(cout, cin, k, k, generator=g) * math.sqrt(2.0 / (cin * k * k))
        if bias:
            w[name + ".bias"] = torch.randn(cout, generator=g) * 0.05

    def fbn(name, c):
        w[name + ".weight"] = torch.rand(c, generator=g) + 0.5
        w[name + ".bias"] = torch.randn(c, generator=g) * 0.2
        w[name + ".running_mean"] = torch.zeros(c)  # measured later
        w[name + ".running_var"] = torch.ones(c)

    conv("backbone.body.stem.conv1", WIDTH, 3, 7)
    fbn("backbone.body.stem.bn1", WIDTH)
    cin = WIDTH
    for s, nb in enumerate(BLOCKS, start=1):
        mid, out = WIDTH * 2 ** (s - 1), WIDTH * 4 * 2 ** (s - 1)
        for b in range(nb):
            p = f"backbone.body.layer{s}.{b}."
            if b == 0:
                conv(p + "downsample.0", out, cin, 1)
                fbn(p + "downsample.1", out)
            conv(p + "conv1", mid, cin, 1)
            fbn(p + "bn1", mid)
            conv(p + "conv2", mid, mid, 3)
            fbn(p + "bn2", mid)
            conv(p + "conv3", out, mid, 1)
            fbn(p + "bn3", out)
            cin = out
    for i in range(4):
        conv(f"backbone.fpn.fpn_inner{i + 1}", FPN_OUT, WIDTH * 4 * 2 ** i, 1, bias=True)
        conv(f"backbone.fpn.fpn_layer{i + 1}", FPN_OUT, FPN_OUT, 3, bias=True)
    conv("rpn_conv", FPN_OUT, FPN_OUT, 3, bias=True)
    conv("rpn_cls_logits", 3, FPN_OUT, 1, bias=True)
    conv("rpn_bbox_pred", 12, FPN_OUT, 1, bias=True)
    w["fc6.weight"] = torch.randn(MLP, FPN_OUT * 49, generator=g) * math.sqrt(2.0 / (FPN_OUT * 49))
    w["fc6.bias"] = torch.randn(MLP, generator=g) * 0.05
    w["fc7.weight"] = torch.randn(MLP, MLP, generator=g) * math.sqrt(2.0 / MLP)
    w["fc7.bias"] = torch.randn(MLP, generator=g) * 0.05
    w["cls_score.weight"] = torch.randn(NUM_CLASSES, MLP, generator=g)
    w["cls_score.bias"] = torch.randn(NUM_CLASSES, generator=g) * 0.05
    w["bbox_pred.weight"] = torch.randn(4 * NUM_CLASSES, MLP, generator=g)
    w["bbox_pred.bias"] = torch.randn(4 * NUM_CLASSES, generator=g) * 0.05
    for i, s in enumerate(STRIDES):  # AnchorGenerator.cell_anchors (a BufferList)
        w[f"anchor_generator.cell_anchors.{i}"] = mb.generate_anchors(s, (SIZES[i],), RATIOS).float()
    return w


# ---------------------------------------------------------------------------- the network
class Seed:
    """network.Network.forward at test, over a state dict (names without 'module.')."""

    def __init__(self, w, dtype, measure=False):
        self.w = {k: v.to(dtype) for k, v in w.items()}
        self.dtype = dtype
        self.measure = measure  # set each FrozenBatchNorm's statistics from its input (calibration)
        self.grab = {}

    def frozen_bn(self, x, name):
        if self.measure:
            self.w[name + ".running_mean"] = x.mean(dim=(0, 2, 3))
            self.w[name + ".running_var"] = x.var(dim=(0, 2, 3), unbiased=False)
        scale = self.w[name + ".weight"] * self.w[name + ".running_var"].rsqrt()
        bias = self.w[name + ".bias"] - self.w[name + ".running_mean"] * scale
        return x * scale.reshape(1, -1, 1, 1) + bias.reshape(1, -1, 1, 1)

    def conv(self, x, name, stride=1, padding=0):
        return F.conv2d(x, self.w[name + ".weight"], self.w.get(name + ".bias"), stride, padding)

    def body(self, x):
        x = F.relu(self.frozen_bn(self.conv(x, "backbone.body.stem.conv1", 2, 3), "backbone.body.stem.bn1"))
        x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
        outs = []
        for s, nb in enumerate(BLOCKS, start=1):
            for b in range(nb):
                p = f"backbone.body.layer{s}.{b}."
                stride = (2 if s > 1 else 1) if b == 0 else 1  # first_stride = int(index > 1) + 1
                identity = x
                if b == 0:
                    identity = self.frozen_bn(self.conv(x, p + "downsample.0", stride), p + "downsample.1")
                out = F.relu(self.frozen_bn(self.conv(x, p + "conv1", stride), p + "bn1"))  # STRIDE_IN_1X1
                out = F.relu(self.frozen_bn(self.conv(out, p + "conv2", 1, 1), p + "bn2"))
                out = self.frozen_bn(self.conv(out, p + "conv3"), p + "bn3")
                x = F.relu(out + identity)
            outs.append(x)
        return outs

    def fpn(self, c):
        last_inner = self.conv(c[-1], "backbone.fpn.fpn_inner4")
        results = [self.conv(last_inner, "backbone.fpn.fpn_layer4", 1, 1)]
        for i in (3, 2, 1):
            top_down = F.interpolate(last_inner, scale_factor=2, mode="nearest")
            last_inner = self.conv(c[i - 1], f"backbone.fpn.fpn_inner{i}") + top_down
            results.insert(0, self.conv(last_inner, f"backbone.fpn.fpn_layer{i}", 1, 1))
        results.append(F.max_pool2d(results[-1], 1, 2, 0))  # LastLevelMaxPool
        return results

    def rpn_head(self, feats):
        cls, reg = [], []
        for f in feats:
            t = F.relu(self.conv(f, "rpn_conv", 1, 1))
            cls.append(self.conv(t, "rpn_cls_logits"))
            reg.append(self.conv(t, "rpn_bbox_pred"))
        self.grab.setdefault("rpn_cls_logits", []).extend(c.flatten() for c in cls)
        self.grab.setdefault("rpn_bbox_pred", []).extend(r.flatten() for r in reg)
        return cls, reg

    def anchors(self, feats):
        return [mb.grid_anchors(s, self.w[f"anchor_generator.cell_anchors.{i}"].float(), f.shape[2], f.shape[3])
                for i, (s, f) in enumerate(zip(STRIDES, feats))]

    def box_head(self, feats, proposals):
        rois = torch.cat([torch.zeros(len(proposals), 1, dtype=self.dtype), proposals], 1)
        levels = mb.level_mapper(rois)
        x = torch.zeros(len(rois), FPN_OUT, 7, 7, dtype=self.dtype)
        for lv, (f, s) in enumerate(zip(feats[:4], (0.25, 0.125, 0.0625, 0.03125))):
            idx = torch.nonzero(levels == lv).squeeze(1)
            x[idx] = torchvision.ops.roi_align(f, rois[idx], (7, 7), s, 2, aligned=False)
        x = x.view(len(rois), -1)
        x = F.relu(F.linear(x, self.w["fc6.weight"], self.w["fc6.bias"]))
        x = F.relu(F.linear(x, self.w["fc7.weight"], self.w["fc7.bias"]))
        logits = F.linear(x, self.w["cls_score.weight"], self.w["cls_score.bias"])
        offsets = F.linear(x, self.w["bbox_pred.weight"], self.w["bbox_pred.bias"])
        self.grab.setdefault("cls_score", []).append(logits.flatten())
        self.grab.setdefault("bbox_pred", []).append(offsets.flatten())
        return logits, offsets


def nms_cu(boxes, scores, thr):
    """kernels/cuda/nms.cu: the kept positions, sorted ascending. Its visiting order is
    scores.sort(0, descending=True), whose order among equal scores torch leaves unspecified
    (and the CPU and GPU sorts differ); identical boxes with equal scores are common (proposals
    clipped to the same border strip on two FPN levels get the same class scores). This
    transcription pins that order with a stable sort, lower position first, drcnn's rule."""
    if len(boxes) == 0:
        return torch.zeros(0, dtype=torch.int64)
    order = torch.sort(scores, dim=0, descending=True, stable=True)[1]
    b = boxes[order]
    iou = mb.boxlist_iou(b, b)
    removed = torch.zeros(len(b), dtype=torch.bool)
    keep = []
    for i in range(len(b)):
        if removed[i]:
            continue
        keep.append(i)
        removed |= iou[i] > thr
    return order[torch.tensor(keep, dtype=torch.int64)].sort()[0]


def proposal_opr(cls, reg, anchors, im_w, im_h, pre_nms_top_n, post_nms_top_n, fpn_post_nms_top_n,
                 nms_thresh=0.85, min_size=0):
    """proposal_opr for one image at test (N = 1)."""
    boxes_all, scores_all = [], []
    for obj, box_regression, a in zip(cls, reg, anchors):
        N, A, H, W = obj.shape
        obj = obj.view(N, -1, 1, H, W).permute(0, 3, 4, 1, 2).reshape(N, -1).sigmoid()  # permute_and_flatten
        box_regression = box_regression.view(N, -1, 4, H, W).permute(0, 3, 4, 1, 2).reshape(N, -1, 4)
        k = min(pre_nms_top_n, A * H * W)
        obj, topk_idx = obj.topk(k, dim=1, sorted=True)
        box_regression = box_regression[0, topk_idx[0]]
        proposals = mb.decode((1.0, 1.0, 1.0, 1.0), box_regression.reshape(-1, 4), a.reshape(-1, 4)[topk_idx[0]])
        proposals = mb.clip_to_image(proposals, im_w, im_h)
        score = obj[0]
        keep = mb.remove_small_boxes(proposals, min_size)
        proposals, score = proposals[keep], score[keep]
        keep = nms_cu(proposals, score, nms_thresh)
        if post_nms_top_n > 0:
            keep = keep[:post_nms_top_n]
        boxes_all.append(proposals[keep])
        scores_all.append(score[keep])
    boxes, scores = torch.cat(boxes_all), torch.cat(scores_all)
    k = min(fpn_post_nms_top_n, len(scores))
    _, inds = torch.topk(scores, k, dim=0, sorted=True)
    return boxes[inds], scores[inds]


def post_processing(proposals, logits, offsets, im_w, im_h, score_thresh=0.05, nms_thresh=0.5,
                    detections_per_img=100):
    class_prob = F.softmax(logits, -1)
    num_classes = class_prob.shape[1]
    boxes = mb.decode((10.0, 10.0, 5.0, 5.0), offsets.view(len(proposals), -1), proposals)
    boxes = mb.clip_to_image(boxes.reshape(-1, 4), im_w, im_h).reshape(-1, num_classes * 4)
    scores = class_prob.reshape(-1, num_classes)
    inds_all = scores > score_thresh
    rb, rs, rl = [], [], []
    for j in range(1, num_classes):
        inds = inds_all[:, j].nonzero().squeeze(1)
        scores_j = scores[inds, j]
        boxes_j = boxes[inds, j * 4:(j + 1) * 4]
        keep = nms_cu(boxes_j, scores_j, nms_thresh)
        rb.append(boxes_j[keep])
        rs.append(scores_j[keep])
        rl.append(torch.full((len(keep),), j, dtype=torch.int64))
    b, s, lab = torch.cat(rb), torch.cat(rs), torch.cat(rl)
    n = len(s)
    print(f"  {n} detections before the detections_per_img rule")
    if n > detections_per_img > 0:
        image_thresh, _ = torch.kthvalue(s.cpu(), n - detections_per_img + 1)
        keep = torch.nonzero(s >= image_thresh.item()).squeeze(1)
        b, s, lab = b[keep], s[keep], lab[keep]
    return b, s, lab


def run(seed, image, im_w, im_h, setting):
    x = image.to(seed.dtype)
    feats = seed.fpn(seed.body(x))
    cls, reg = seed.rpn_head(feats)
    pre, post, fpn_post = SETTINGS[setting]
    props, pscores = proposal_opr(cls, reg, seed.anchors(feats), im_w, im_h, pre, post, fpn_post)
    logits, offsets = seed.box_head(feats, props)
    b, s, lab = post_processing(props, logits, offsets, im_w, im_h)
    return props, pscores, b, s, lab


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(HERE, "..", "tests", "data", "checkpoints"))
    ap.add_argument("--image", default=os.path.join(HERE, "..", "..", "shared", "data", "raccoon", "images",
                                                    "raccoon-1.jpg"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    bgr = cv2.imread(a.image)
    if bgr is None:
        sys.exit(f"cannot read {a.image}")
    orig_h, orig_w = bgr.shape[:2]
    im_w, im_h = 100, 64
    small = cv2.resize(bgr, (im_w, im_h), interpolation=cv2.INTER_AREA).astype(np.float64)
    small -= np.array(PIXEL_MEAN)
    image = torch.zeros(1, 3, 64, 128, dtype=torch.float32)  # to_image_list: padded to 32
    image[0, :, :im_h, :im_w] = torch.from_numpy(small).permute(2, 0, 1).float()

    g = torch.Generator().manual_seed(18)
    w = make_weights(g)
    # Calibration (float64): FrozenBatchNorm statistics of the input, then the output layers scaled
    # to a set spread (RPN logits 2.0, deltas 0.3; box head logits 2.5, deltas 0.5).
    cal = Seed(w, torch.float64, measure=True)
    cal.fpn(cal.body(image.double()))
    for k, v in cal.w.items():
        if k.endswith(("running_mean", "running_var")):
            w[k] = v.float()
    for name, target in (("rpn_cls_logits", 2.0), ("rpn_bbox_pred", 0.3), ("cls_score", 2.5), ("bbox_pred", 0.5)):
        cal = Seed(w, torch.float64)
        run(cal, image, im_w, im_h, "preset")
        sd = float(torch.cat(cal.grab[name]).std())
        w[name + ".weight"] *= target / sd
        w[name + ".bias"] *= target / sd

    ckpt = os.path.join(a.out, "seed_tiny.pth")
    torch.save({"model": {"module." + k: v.float().contiguous() for k, v in w.items()}, "iteration": 0}, ckpt)
    conv = os.path.join(a.out, "seed_tiny.safetensors")
    subprocess.run([sys.executable, os.path.join(HERE, "convert_checkpoint.py"), ckpt, conv], check=True)
    os.remove(ckpt)  # only the converted files are committed

    io = {"image": image, "size": torch.tensor([im_h, im_w]), "orig": torch.tensor([orig_h, orig_w]),
          "scale": torch.tensor([im_w / orig_w, im_h / orig_h], dtype=torch.float64)}
    ratio = torch.tensor([orig_w / im_w, orig_h / im_h, orig_w / im_w, orig_h / im_h], dtype=torch.float64)
    for setting in SETTINGS:
        for tag, dt in (("f64", torch.float64), ("f32", torch.float32)):
            seed = Seed({k: v.float() for k, v in w.items()}, dt)
            props, pscores, b, s, lab = run(seed, image, im_w, im_h, setting)
            b = b * ratio.to(dt)  # BoxList.resize to the original image (the test's evaluation)
            io[f"prop_boxes_{setting}_{tag}"] = props
            io[f"prop_scores_{setting}_{tag}"] = pscores
            io[f"boxes_{setting}_{tag}"] = b
            io[f"scores_{setting}_{tag}"] = s
            io[f"labels_{setting}_{tag}"] = lab - 1  # drcnn's 0-based foreground classes
            print(setting, tag, len(props), "proposals,", len(s), "detections; labels per class",
                  torch.bincount(lab - 1, minlength=3).tolist(), "scores", [round(float(v), 4) for v in s[:6]])
    safetensors_writer.save(os.path.join(a.out, "seed_tiny_io.safetensors"), io,
                            {"torch": torch.__version__, "torchvision": torchvision.__version__,
                             "written_by": "tools/golden_seed_detector.py"})


if __name__ == "__main__":
    main()
