#!/usr/bin/python3
"""One full training forward of the two-stage detector (MMDetection v2 DynamicRoIHead semantics),
recomputed independently in torch float64 for tests/models/test_detector_golden.cpp.

Run with /usr/bin/python3 (torch 1.13, torchvision 0.14, CPU; mmdet is NOT used: every step is
written here from the definitions in /work/shared/docs/dynamic-rcnn-spec.md A.3, B.4-B.12):
    /usr/bin/python3 tools/golden_detector_forward.py [--out tests/data/models/detector_forward.safetensors]

The model (the C++ test builds the same DetectorConfig):
  backbone  torchvision resnet18 with GroupNorm(32, eps 1e-5) (the small_cpu preset's norm; with
            FrozenBatchNorm the name-formula weights blow the features up to 1e6 and every objectness
            saturates to 1.0, so the proposals would be all ties), C2..C5 (64..512 channels);
  neck      torchvision FeaturePyramidNetwork(out 32, LastLevelMaxPool) = mmdet FPN with max-pool P6
            (names mapped to mmdet's lateral_convs.i.conv / fpn_convs.i.conv);
  rpn_head  rpn_conv 3x3 (32 -> 32) + ReLU, rpn_cls 1x1 (-> 3), rpn_reg 1x1 (-> 12);
  anchors   mmdet AnchorGenerator strides 4..64, ratios 0.5/1/2, scale 4 (16..256 px), center 0,
            computed in float64 (drcnn's float64 anchors; mmdet itself builds the base anchors in float32);
  roi_head  RoIAlign 7x7 (aligned, sampling_ratio 0) on P2..P5, mmdet level mapping with finest_scale 7
            instead of 56 (so the RoIs of a 64 x 96 batch reach all four levels: 257 / 259 / 81 / 7),
            Shared2FCBBoxHead (32*49 -> 64 -> 64, fc_cls 4, fc_reg 12), 3 classes (background = 3).
Every parameter is deterministic_values(name) (tools/golden_models.py, the C++ twin is
tests/common/deterministic_fill.h); parameter names are drcnn's / mmdet's (backbone.*, neck.*, ...).

Inputs: a batch of two images, image 0 is 60 x 90 and image 1 is 40 x 56 (x[k] = 2 sin(0.013 k) over
[3, h, w]), zero-padded at the bottom/right to 64 x 96; image 0 has 3 GT boxes, the third flagged
ignore (mmdet passes it as gt_bboxes_ignore, unused with ignore_iof_thr -1: it only disappears from
the targets), image 1 has 2.

Training forward (params: IoU threshold 0.5, beta 0.5):
  RPN targets per image on the anchors inside the image's own padded shape (size rounded up to 32:
  64 x 96 and 64 x 64, so image 1 has invalid anchors): MaxIoUAssigner(0.7, 0.3, min_pos 0.3,
  low-quality with gt_max_assign_all); the sampler takes EVERY positive and negative (num 2^20), so no
  random draw matters; BCE-with-logits sum / N_s, L1 on DeltaXYWH (stds 1) sum / N_s,
  N_s = sum_img max(#pos, 1) + max(#neg, 1).
  Proposals: golden_rpn_proposals.proposals_single with rpn_train (nms_pre 600 so P2 is cut, NMS 0.85,
  300 per image, no small-box filter), clipped to the unpadded image.
  R-CNN per image: candidates = [GT; proposals], MaxIoUAssigner(pos = neg = min_pos = 0.5, no low
  quality), every positive and negative taken; RoIs = positives then negatives in ascending candidate
  order, images concatenated; CE mean over R; SmoothL1(beta) on the GT class's deltas (stds 0.1 0.1
  0.2 0.2) sum / R. DynamicStats: per image max_overlaps (after the GTs were prepended) and the
  positives' (|t_x| + |t_y|) / 2.

Writes (float64 unless said): loss_rpn_cls, loss_rpn_bbox, loss_cls, loss_bbox, accuracy [1];
counts int64 [4] (rpn_num_pos, rpn_num_neg, rcnn_num_pos, rcnn_num_sampled); per image i:
img<i>.proposal_boxes [K, 4], img<i>.proposal_scores [K], img<i>.proposal_levels int64 [K],
img<i>.max_overlaps, img<i>.rpn_num_pos/neg (int64 [1]); regression_errors; rois [R, 5], roi_labels
int64 [R], cls_score [R, 4]; rpn_objectness.<l> [2, 3, H, W] (for locating a disagreement);
grad.<name> for the GRAD_NAMES parameters: the gradient of the sum of the four losses (proposals
detached, as mmdet). The output is deterministic (the same bytes on every run).
"""
import argparse
import os
import sys

import torch
import torch.nn.functional as F
import torchvision
from torchvision.models import resnet
from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_writer  # noqa: E402
from golden_anchors import MMDetAnchors  # noqa: E402
from golden_models import deterministic_values, fill, fpn_rename, input_values, trunk_forward  # noqa: E402
from golden_rpn_proposals import proposals_single  # noqa: E402

NUM_CLASSES = 3
FPN_OUT = 32
FC_OUT = 64
STRIDES = [4, 8, 16, 32, 64]
RATIOS = [0.5, 1.0, 2.0]
SCALES = [4.0]
BATCH_HW = (64, 96)
IMAGE_SIZES = [(60, 90), (40, 56)]  # (h, w)
SIZE_DIVISOR = 32
# Per image: boxes (x1, y1, x2, y2), labels, ignore flags.
GT = [
    ([[10.0, 8.0, 42.0, 40.0], [50.0, 20.0, 85.0, 55.0], [30.0, 30.0, 60.0, 58.0]], [0, 2, 1], [False, False, True]),
    ([[5.0, 4.0, 30.0, 36.0], [28.0, 10.0, 54.0, 30.0]], [1, 0], [False, False]),
]
RPN_TRAIN = dict(nms_pre=600, nms_iou=0.85, max_per_img=300, min_bbox_size=0.0)
RPN_ASSIGN = dict(pos=0.7, neg=0.3, min_pos=0.3, low_quality=True)
IOU_THR = 0.5
BETA = 0.5
RCNN_STDS = (0.1, 0.1, 0.2, 0.2)
ROI_STRIDES = [4, 8, 16, 32]
# Parameters whose gradient of the total loss is stored: the first norm of the backbone (every
# loss reaches it), the last backbone norm, the FPN (P2 output conv: R-CNN level 0 and RPN), and
# every head.
GRAD_NAMES = [
    "backbone.bn1.weight", "backbone.bn1.bias", "backbone.layer4.1.bn2.weight",
    "neck.lateral_convs.3.conv.bias", "neck.fpn_convs.0.conv.bias", "neck.fpn_convs.3.conv.bias",
    "rpn_head.rpn_conv.bias", "rpn_head.rpn_cls.weight", "rpn_head.rpn_cls.bias", "rpn_head.rpn_reg.weight",
    "roi_head.bbox_head.shared_fcs.0.bias", "roi_head.bbox_head.shared_fcs.1.weight",
    "roi_head.bbox_head.fc_cls.weight", "roi_head.bbox_head.fc_cls.bias", "roi_head.bbox_head.fc_reg.weight",
    "roi_head.bbox_head.fc_reg.bias",
]
FINEST_SCALE = 7.0  # mmdet 56; 7 sends this small batch's RoIs to all four levels


# ----------------------------------------------------------------------------------- model
def group_norm(c):
    return torch.nn.GroupNorm(32, c, eps=1e-5)


class Model:
    def __init__(self):
        self.trunk = resnet.resnet18(norm_layer=group_norm).double()
        fill(self.trunk, lambda n: "backbone." + n)
        self.fpn = FeaturePyramidNetwork([64, 128, 256, 512], FPN_OUT, extra_blocks=LastLevelMaxPool()).double()
        fill(self.fpn, lambda n: "neck." + fpn_rename(n))
        a = len(RATIOS) * len(SCALES)
        shapes = {
            "rpn_head.rpn_conv.weight": (FPN_OUT, FPN_OUT, 3, 3), "rpn_head.rpn_conv.bias": (FPN_OUT,),
            "rpn_head.rpn_cls.weight": (a, FPN_OUT, 1, 1), "rpn_head.rpn_cls.bias": (a,),
            "rpn_head.rpn_reg.weight": (4 * a, FPN_OUT, 1, 1), "rpn_head.rpn_reg.bias": (4 * a,),
            "roi_head.bbox_head.shared_fcs.0.weight": (FC_OUT, FPN_OUT * 49),
            "roi_head.bbox_head.shared_fcs.0.bias": (FC_OUT,),
            "roi_head.bbox_head.shared_fcs.1.weight": (FC_OUT, FC_OUT),
            "roi_head.bbox_head.shared_fcs.1.bias": (FC_OUT,),
            "roi_head.bbox_head.fc_cls.weight": (NUM_CLASSES + 1, FC_OUT),
            "roi_head.bbox_head.fc_cls.bias": (NUM_CLASSES + 1,),
            "roi_head.bbox_head.fc_reg.weight": (4 * NUM_CLASSES, FC_OUT),
            "roi_head.bbox_head.fc_reg.bias": (4 * NUM_CLASSES,),
        }
        self.p = {k: deterministic_values(k, s).requires_grad_(True) for k, s in shapes.items()}
        keys = ["backbone." + k for k in self.trunk.state_dict() if not k.startswith("fc.")]
        keys += ["neck." + fpn_rename(k) for k in self.fpn.state_dict()]
        keys += list(shapes)
        self.state_keys = sorted(keys)

    def named_parameters(self):
        out = {"backbone." + k: v for k, v in self.trunk.named_parameters() if not k.startswith("fc.")}
        out.update({"neck." + fpn_rename(k): v for k, v in self.fpn.named_parameters()})
        out.update(self.p)
        return out

    def features(self, x):
        c = trunk_forward(self.trunk, x)
        return list(self.fpn({str(i): t for i, t in enumerate(c)}).values())  # P2..P6

    def rpn(self, feats):
        p = self.p
        out = []
        for f in feats:
            h = F.relu(F.conv2d(f, p["rpn_head.rpn_conv.weight"], p["rpn_head.rpn_conv.bias"], padding=1))
            out.append((F.conv2d(h, p["rpn_head.rpn_cls.weight"], p["rpn_head.rpn_cls.bias"]),
                        F.conv2d(h, p["rpn_head.rpn_reg.weight"], p["rpn_head.rpn_reg.bias"])))
        return out

    def bbox_head(self, roi_feats):
        p = self.p
        pre = "roi_head.bbox_head."
        h = roi_feats.flatten(1)
        h = F.relu(F.linear(h, p[pre + "shared_fcs.0.weight"], p[pre + "shared_fcs.0.bias"]))
        h = F.relu(F.linear(h, p[pre + "shared_fcs.1.weight"], p[pre + "shared_fcs.1.bias"]))
        return (F.linear(h, p[pre + "fc_cls.weight"], p[pre + "fc_cls.bias"]),
                F.linear(h, p[pre + "fc_reg.weight"], p[pre + "fc_reg.bias"]))


# --------------------------------------------------------------------------------- anchors
def base_anchors(stride):
    """mmdet gen_single_level_base_anchors (center 0, scale_major), in float64."""
    r = torch.tensor(RATIOS, dtype=torch.float64)
    s = torch.tensor(SCALES, dtype=torch.float64)
    hr = torch.sqrt(r)
    wr = 1 / hr
    ws = (stride * wr[:, None] * s[None, :]).reshape(-1)
    hs = (stride * hr[:, None] * s[None, :]).reshape(-1)
    return torch.stack([-0.5 * ws, -0.5 * hs, 0.5 * ws, 0.5 * hs], dim=-1)


def anchor_generator():
    """golden_anchors.MMDetAnchors (grid priors, valid flags) with the float64 base anchors above:
    its grids then come out in float64 (type_as the base)."""
    gen = MMDetAnchors(STRIDES, RATIOS, SCALES)
    gen.base = [base_anchors(s) for s in STRIDES]
    return gen


# ------------------------------------------------------------------------- targets, losses
def bbox_overlaps(a, b):
    """mmdet bbox_overlaps (iou, no +1, union clamped to >= 1e-6): [len(a), len(b)]."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = (area_a[:, None] + area_b[None, :] - inter).clamp(min=1e-6)
    return inter / union


def max_iou_assign(cand, gt, pos, neg, min_pos, low_quality):
    """mmdet MaxIoUAssigner.assign_wrt_overlaps (gt_max_assign_all=True, ignore_iof_thr -1).
    Returns gt_inds (0 negative, -1 ignored, k+1 positive) and max_overlaps."""
    n, k = cand.shape[0], gt.shape[0]
    gt_inds = torch.full((n,), -1, dtype=torch.long)
    if k == 0:
        return torch.zeros(n, dtype=torch.long), torch.zeros(n, dtype=cand.dtype)
    ov = bbox_overlaps(gt, cand)  # [K, N]
    max_ov, argmax = ov.max(dim=0)
    gt_max, _ = ov.max(dim=1)
    gt_inds[(max_ov >= 0) & (max_ov < neg)] = 0
    p = max_ov >= pos
    gt_inds[p] = argmax[p] + 1
    if low_quality:
        for i in range(k):
            if gt_max[i] >= min_pos:
                gt_inds[ov[i] == gt_max[i]] = i + 1
    return gt_inds, max_ov


def bbox2delta(p, g, stds):
    """mmdet DeltaXYWHBBoxCoder.encode, means 0."""
    px = (p[:, 0] + p[:, 2]) * 0.5
    py = (p[:, 1] + p[:, 3]) * 0.5
    pw = p[:, 2] - p[:, 0]
    ph = p[:, 3] - p[:, 1]
    gx = (g[:, 0] + g[:, 2]) * 0.5
    gy = (g[:, 1] + g[:, 3]) * 0.5
    gw = g[:, 2] - g[:, 0]
    gh = g[:, 3] - g[:, 1]
    d = torch.stack([(gx - px) / pw, (gy - py) / ph, torch.log(gw / pw), torch.log(gh / ph)], dim=-1)
    return d / torch.tensor(stds, dtype=d.dtype)


def smooth_l1(pred, target, beta):
    diff = (pred - target).abs()
    return torch.where(diff < beta, 0.5 * diff * diff / beta, diff - 0.5 * beta)


def roi_levels(rois):
    scale = torch.sqrt((rois[:, 3] - rois[:, 1]) * (rois[:, 4] - rois[:, 2]))
    return torch.floor(torch.log2(scale / FINEST_SCALE + 1e-6)).clamp(min=0, max=len(ROI_STRIDES) - 1).long()


def roi_extract(feats, rois):
    """mmdet SingleRoIExtractor: each RoI pooled from its level only (others stay 0)."""
    lv = roi_levels(rois)
    out = torch.zeros(rois.shape[0], feats[0].shape[1], 7, 7, dtype=feats[0].dtype)
    for l, stride in enumerate(ROI_STRIDES):
        m = lv == l
        if m.any():
            out[m] = torchvision.ops.roi_align(feats[l], rois[m], (7, 7), spatial_scale=1.0 / stride,
                                               sampling_ratio=0, aligned=True)
    return out


# ------------------------------------------------------------------------------- forward
def make_batch():
    x = torch.zeros(len(IMAGE_SIZES), 3, *BATCH_HW, dtype=torch.float64)
    for i, (h, w) in enumerate(IMAGE_SIZES):
        x[i, :, :h, :w] = input_values((3, h, w))
    return x


def forward_train(model):
    res = {}
    # Gradients are recorded: the backward of the total loss is part of the golden.
    x = make_batch()
    feats = model.features(x)
    sizes = [tuple(f.shape[2:]) for f in feats]
    assert sizes == [(16, 24), (8, 12), (4, 6), (2, 3), (1, 2)], sizes
    rpn_out = model.rpn(feats)
    gen = anchor_generator()
    anchors = [gen.single_level_grid_priors(l, h, w) for l, (h, w) in enumerate(sizes)]
    all_anchors = torch.cat(anchors)
    for l, (c, _) in enumerate(rpn_out):
        res[f"rpn_objectness.{l}"] = c.detach()
    n_img = x.shape[0]
    # [N, T] logits and [N, T, 4] deltas in (level, y, x, a) order.
    logits = torch.cat([c.permute(0, 2, 3, 1).reshape(n_img, -1) for c, _ in rpn_out], 1)
    deltas = torch.cat([r.permute(0, 2, 3, 1).reshape(n_img, -1, 4) for _, r in rpn_out], 1)

    # ---- RPN loss
    cls_terms, reg_terms = [], []
    n_s, rpn_pos, rpn_neg = 0, 0, 0
    for i, ((h, w), (boxes, labels, ignore)) in enumerate(zip(IMAGE_SIZES, GT)):
        pad_h = -(-h // SIZE_DIVISOR) * SIZE_DIVISOR
        pad_w = -(-w // SIZE_DIVISOR) * SIZE_DIVISOR
        valid = torch.cat([gen.valid_flags(l, fh, fw, pad_h, pad_w) for l, (fh, fw) in enumerate(sizes)])
        vidx = valid.nonzero().squeeze(1)
        keep = ~torch.tensor(ignore)
        gt = torch.tensor(boxes, dtype=torch.float64)[keep]
        gt_inds, _ = max_iou_assign(all_anchors[vidx], gt, RPN_ASSIGN["pos"], RPN_ASSIGN["neg"],
                                    RPN_ASSIGN["min_pos"], RPN_ASSIGN["low_quality"])
        pos = (gt_inds > 0).nonzero().squeeze(1)
        neg = (gt_inds == 0).nonzero().squeeze(1)
        res[f"img{i}.rpn_num_pos"] = torch.tensor([len(pos)])
        res[f"img{i}.rpn_num_neg"] = torch.tensor([len(neg)])
        rpn_pos += len(pos)
        rpn_neg += len(neg)
        n_s += max(len(pos), 1) + max(len(neg), 1)
        lg = logits[i, vidx]
        cls_terms.append(F.binary_cross_entropy_with_logits(lg[pos], torch.ones(len(pos), dtype=torch.float64),
                                                            reduction="sum"))
        cls_terms.append(F.binary_cross_entropy_with_logits(lg[neg], torch.zeros(len(neg), dtype=torch.float64),
                                                            reduction="sum"))
        t = bbox2delta(all_anchors[vidx][pos], gt[gt_inds[pos] - 1], (1.0, 1.0, 1.0, 1.0))
        reg_terms.append((deltas[i, vidx][pos] - t).abs().sum())
    res["loss_rpn_cls"] = torch.stack(cls_terms).sum().reshape(1) / n_s
    res["loss_rpn_bbox"] = torch.stack(reg_terms).sum().reshape(1) / n_s

    # ---- proposals (detached)
    proposals = []
    for i, (h, w) in enumerate(IMAGE_SIZES):
        b, s, lv = proposals_single([c[i].detach() for c, _ in rpn_out], [r[i].detach() for _, r in rpn_out],
                                    anchors, (h, w), RPN_TRAIN)
        proposals.append(b)
        res[f"img{i}.proposal_boxes"], res[f"img{i}.proposal_scores"], res[f"img{i}.proposal_levels"] = b, s, lv

    # ---- R-CNN
    rois, roi_labels, pos_rows, pos_labels, pos_targets, reg_err = [], [], [], [], [], []
    offset, rcnn_pos = 0, 0
    for i, (boxes, labels, ignore) in enumerate(GT):
        keep = ~torch.tensor(ignore)
        gt = torch.tensor(boxes, dtype=torch.float64)[keep]
        gl = torch.tensor(labels, dtype=torch.long)[keep]
        gt_inds, max_ov = max_iou_assign(proposals[i], gt, IOU_THR, IOU_THR, IOU_THR, False)
        k = gt.shape[0]
        cand = torch.cat([gt, proposals[i]])  # add_gt_as_proposals: GTs prepended
        gt_inds = torch.cat([torch.arange(1, k + 1), gt_inds])
        max_ov = torch.cat([torch.ones(k, dtype=torch.float64), max_ov])
        res[f"img{i}.max_overlaps"] = max_ov
        pos = (gt_inds > 0).nonzero().squeeze(1)
        neg = (gt_inds == 0).nonzero().squeeze(1)
        boxes_i = torch.cat([cand[pos], cand[neg]])
        rois.append(torch.cat([torch.full((len(boxes_i), 1), float(i), dtype=torch.float64), boxes_i], 1))
        lab = gl[gt_inds[pos] - 1]
        roi_labels.append(torch.cat([lab, torch.full((len(neg),), NUM_CLASSES, dtype=torch.long)]))
        t = bbox2delta(cand[pos], gt[gt_inds[pos] - 1], RCNN_STDS)
        pos_rows.append(torch.arange(offset, offset + len(pos)))
        pos_labels.append(lab)
        pos_targets.append(t)
        reg_err.append((t[:, 0].abs() + t[:, 1].abs()) / 2)
        offset += len(boxes_i)
        rcnn_pos += len(pos)
    rois = torch.cat(rois)
    roi_labels = torch.cat(roi_labels)
    cls_score, bbox_pred = model.bbox_head(roi_extract(feats[:4], rois))
    r = rois.shape[0]
    res["loss_cls"] = F.cross_entropy(cls_score, roi_labels, reduction="sum").reshape(1) / r
    rows = torch.cat(pos_rows)
    pred = bbox_pred.view(r, NUM_CLASSES, 4)[rows, torch.cat(pos_labels)]
    res["loss_bbox"] = smooth_l1(pred, torch.cat(pos_targets), BETA).sum().reshape(1) / r
    res["accuracy"] = torch.tensor([100.0 * (cls_score.argmax(1) == roi_labels).sum().item() / r],
                                   dtype=torch.float64)
    res["regression_errors"] = torch.cat(reg_err)
    res["counts"] = torch.tensor([rpn_pos, rpn_neg, rcnn_pos, r], dtype=torch.long)
    res["rois"] = rois
    res["roi_labels"] = roi_labels
    res["cls_score"] = cls_score.detach()
    total = res["loss_rpn_cls"] + res["loss_rpn_bbox"] + res["loss_cls"] + res["loss_bbox"]
    total.backward()
    params = model.named_parameters()
    for name in GRAD_NAMES:
        res["grad." + name] = params[name].grad
    for k in ("loss_rpn_cls", "loss_rpn_bbox", "loss_cls", "loss_bbox"):
        res[k] = res[k].detach()
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data",
                                                  "models", "detector_forward.safetensors"))
    args = ap.parse_args()
    model = Model()
    res = forward_train(model)
    for i in range(len(IMAGE_SIZES)):
        s = res[f"img{i}.proposal_scores"]
        ties = (s[1:] == s[:-1]).sum().item()
        print(f"image {i}: {len(s)} proposals (score {s[0].item():.6f} .. {s[-1].item():.6f}, {ties} tied pairs), "
              f"RPN pos {res[f'img{i}.rpn_num_pos'].item()} neg {res[f'img{i}.rpn_num_neg'].item()}")
    for k in ("loss_rpn_cls", "loss_rpn_bbox", "loss_cls", "loss_bbox", "accuracy"):
        print(f"{k} = {res[k].item():.17g}")
    print("counts (rpn pos, rpn neg, rcnn pos, rcnn sampled):", res["counts"].tolist())
    meta = {"script": "tools/golden_detector_forward.py", "torch": torch.__version__,
            "torchvision": torchvision.__version__, "state_keys": ",".join(model.state_keys),
            "iou_threshold": str(IOU_THR), "beta": str(BETA)}
    safetensors_writer.save(args.out, res, meta)
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes)")


if __name__ == "__main__":
    main()
