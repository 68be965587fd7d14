#!/usr/bin/env python3
"""Goldens of two training-only rules of the seed (hkzhang95/DynamicRCNN, on maskrcnn-benchmark),
transcribed from its code apart from drcnn, for tests/models/test_seed_training_rules.cpp:

    /work/venv/bin/python tools/golden_seed_training_rules.py [--out tests/data/maskrcnn_benchmark]

1. proposals_per_batch.safetensors: det_opr/rpn/proposal_opr.py with is_train=True and
   FPN_POST_NMS_PER_BATCH (the seed's setting): per image and level the top pre_nms_top_n,
   BoxCoder(1, 1, 1, 1).decode, clip_to_image, remove_small_boxes(0), boxlist_nms(0.85,
   post_nms_top_n); the levels concatenated per image; then torch.topk(fpn_post_nms_top_n) over
   the objectness of ALL images' proposals, each image keeping its selected ones in its
   concatenation order (a mask). No targets are passed (the ground-truth append is not part of
   this golden). Two images of 60 x 90 and 44 x 70 in a 64 x 96 batch, random head outputs,
   pre 300 / post 150 / fpn_post 400 = 200 x 2 images. Outputs per image i: "boxes_i",
   "scores_i" sorted by descending score (stable), as drcnn orders them; "count_i".
2. rpn_targets.safetensors: det_opr/rpn/anchor_target_opr.py and the RPN losses of network.py
   for one 60 x 90 image padded to 64 x 96: boxlist_iou (+1) of the targets and every anchor,
   Matcher(0.7, 0.3, allow_low_quality_matches=True), labels 1 / 0 / -1, anchors with
   visibility False (AnchorGenerator.add_visibility_to, STRADDLE_THRESH 0, against the unpadded
   image) set to -1 AFTER matching, BoxCoder(1, 1, 1, 1).encode (+1); every positive and negative
   sampled (BATCH_SIZE_PER_IMAGE larger than the anchors), rpn_bbox_loss = smooth_l1(beta 1/9,
   sum) / #sampled, rpn_cls_loss = BCE-with-logits mean over the sampled. Ground truths: three
   disjoint boxes, one in the image's corner whose best anchor straddles the border (so the seed
   gives it no low-quality positive; dropping the outside anchors before matching, as MMDetection
   does, would give it one: the golden records both counts). Outputs: "gt", "objectness_l",
   "deltas_l" (head outputs per level, float32 values), "visible" (bool, all levels), "num_pos", "num_neg",
   "loss_cls", "loss_bbox", and "num_pos_drop_first" (MMDetection's order, for contrast).
Anchors: golden_maskrcnn_benchmark.generate_anchors / grid_anchors (Detectron's, float32 cell
anchors), sizes 32..512 at strides 4..64, ratios 0.5 / 1 / 2.
"""
import argparse
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import golden_maskrcnn_benchmark as mb  # noqa: E402
import golden_seed_detector as gs  # noqa: E402
import safetensors_writer  # noqa: E402

F64 = torch.float64
PAD_H, PAD_W = 64, 96


def level_shapes():
    return [((PAD_H + s - 1) // s, (PAD_W + s - 1) // s) for s in gs.STRIDES]


def anchors_per_level():
    return [mb.grid_anchors(s, mb.generate_anchors(s, (gs.SIZES[i],), gs.RATIOS).float(), h, w).double()
            for i, (s, (h, w)) in enumerate(zip(gs.STRIDES, level_shapes()))]


def head_outputs(g, n):
    """Random head outputs, float32 values (stored as float32, computed with in float64)."""
    cls = [(torch.randn(n, 3, h, w, generator=g) * 2.0).double() for h, w in level_shapes()]
    reg = [(torch.randn(n, 12, h, w, generator=g) * 0.3).double() for h, w in level_shapes()]
    return cls, reg


def proposals_per_batch(g):
    sizes = [(60, 90), (44, 70)]  # (h, w)
    pre, post, fpn_post = 300, 150, 400
    cls, reg = head_outputs(g, 2)
    anchors = anchors_per_level()
    per_image = []
    for i, (h, w) in enumerate(sizes):
        boxes, scores = [], []
        for obj, box_regression, a in zip(cls, reg, anchors):
            _, A, H, W = obj.shape
            o = obj[i:i + 1].view(1, -1, 1, H, W).permute(0, 3, 4, 1, 2).reshape(-1).sigmoid()
            d = box_regression[i:i + 1].view(1, -1, 4, H, W).permute(0, 3, 4, 1, 2).reshape(-1, 4)
            o, idx = o.topk(min(pre, A * H * W), sorted=True)
            p = mb.clip_to_image(mb.decode((1.0, 1.0, 1.0, 1.0), d[idx], a[idx]), w, h)
            keep = mb.remove_small_boxes(p, 0)
            p, o = p[keep], o[keep]
            keep = gs.nms_cu(p, o, 0.85)[:post]
            boxes.append(p[keep])
            scores.append(o[keep])
        per_image.append((torch.cat(boxes), torch.cat(scores)))
    # select over all levels, is_train and fpn_post_nms_per_batch
    objectness = torch.cat([s for _, s in per_image])
    k = min(fpn_post, len(objectness))
    _, inds_sorted = torch.topk(objectness, k, dim=0, sorted=True)
    mask = torch.zeros_like(objectness, dtype=torch.bool)
    mask[inds_sorted] = True
    masks = mask.split([len(s) for _, s in per_image])
    out = {"image_sizes": torch.tensor(sizes)}
    for lv, (c, r) in enumerate(zip(cls, reg)):
        out[f"objectness_{lv}"], out[f"deltas_{lv}"] = c.float(), r.float()
    for i, ((b, s), m) in enumerate(zip(per_image, masks)):
        b, s = b[m], s[m]
        order = torch.sort(s, descending=True, stable=True)[1]
        out[f"boxes_{i}"], out[f"scores_{i}"] = b[order], s[order]
        out[f"count_{i}"] = torch.tensor(len(s))
        print(f"per batch: image {i} keeps {len(s)} of {len(m)} (the per-image rule would keep {min(200, len(m))})")
    return out


def matcher(quality, high=0.7, low=0.3):
    """det_opr/matcher.py Matcher(high, low, allow_low_quality_matches=True)."""
    matched_vals, matches = quality.max(dim=0)
    all_matches = matches.clone()
    matches[matched_vals < low] = -1
    matches[(matched_vals >= low) & (matched_vals < high)] = -2
    highest = quality.max(dim=1)[0]
    pairs = torch.nonzero(quality == highest[:, None])
    matches[pairs[:, 1]] = all_matches[pairs[:, 1]]
    return matches


def mmdet_low_quality(quality, min_pos_iou=0.3):
    """For contrast: MMDetection's MaxIoUAssigner (0.7, 0.3, min_pos_iou) with gt_max_assign_all:
    GT k in order writes k to every candidate tied at its best IoU, when that is >= min_pos_iou."""
    matched_vals, matches = quality.max(dim=0)
    out = torch.full_like(matches, -2)
    out[matched_vals < 0.3] = -1
    out[matched_vals >= 0.7] = matches[matched_vals >= 0.7]
    for k in range(quality.shape[0]):
        best = quality[k].max()
        if best >= min_pos_iou:
            out[quality[k] == best] = k
    return out


def rpn_targets(g):
    h, w = 60, 90
    cls, reg = head_outputs(g, 1)
    out = rpn_targets_case(cls, reg, h, w, torch.tensor(
        [[0.0, 0.0, 21.0, 37.0], [40.0, 8.0, 62.0, 30.0], [30.0, 42.0, 85.0, 58.0]], dtype=F64), "")
    # Case 2, the Matcher's low-quality rule: two overlapping ground truths and a 6 x 6 one whose
    # best IoU is under 0.3 (MMDetection's min_pos_iou), in the middle of the image.
    out.update(rpn_targets_case(cls, reg, h, w, torch.tensor(
        [[18.0, 14.0, 50.0, 44.0], [30.0, 18.0, 66.0, 48.0], [70.0, 30.0, 75.0, 35.0]], dtype=F64), "2"))
    for lv, (c, r) in enumerate(zip(cls, reg)):
        out[f"objectness_{lv}"], out[f"deltas_{lv}"] = c.float(), r.float()
    return out


def rpn_targets_case(cls, reg, h, w, gt, tag):
    anchors = torch.cat(anchors_per_level())
    visible = (anchors[:, 0] >= 0) & (anchors[:, 1] >= 0) & (anchors[:, 2] < w) & (anchors[:, 3] < h)

    def labels_of(anchor_set, quality):
        m = matcher(quality)
        lab = (m >= 0).to(F64)
        lab[m == -1] = 0
        lab[m == -2] = -1
        return m, lab

    m, labels = labels_of(anchors, mb.boxlist_iou(gt, anchors))
    labels[~visible] = -1  # discard anchors that go out of the boundaries of the image
    targets = mb.encode((1.0, 1.0, 1.0, 1.0), gt[m.clamp(min=0)], anchors)
    objectness = torch.cat([c.permute(0, 2, 3, 1).reshape(-1) for c in cls])
    deltas = torch.cat([r.view(1, 3, 4, r.shape[2], r.shape[3]).permute(0, 3, 4, 1, 2).reshape(-1, 4) for r in reg])
    pos = torch.nonzero(labels == 1).squeeze(1)
    neg = torch.nonzero(labels == 0).squeeze(1)
    sampled = torch.cat([pos, neg])
    diff = (deltas[pos] - targets[pos]).abs()
    beta = 1.0 / 9
    sl1 = torch.where(diff < beta, 0.5 * diff ** 2 / beta, diff - 0.5 * beta).sum()
    loss_bbox = sl1 / sampled.numel()
    loss_cls = F.binary_cross_entropy_with_logits(objectness[sampled], labels[sampled])
    # For contrast: MMDetection's order (the outside anchors removed before matching) and its
    # low-quality rule (on the seed's order).
    _, lab_drop = labels_of(anchors[visible], mb.boxlist_iou(gt, anchors[visible]))
    quality = mb.boxlist_iou(gt, anchors)
    mm = mmdet_low_quality(quality)
    mm[~visible] = -2
    mm_pos = torch.nonzero(mm >= 0).squeeze(1)
    mm_differs = not torch.equal(mm_pos, pos) or not torch.equal(mm[mm_pos], m[pos])
    best = quality.argmax(dim=1)
    print(f"rpn targets{tag}:", len(pos), "positives,", len(neg), "negatives; dropping the outside anchors first:",
          int((lab_drop == 1).sum()), "positives; each GT's best anchor visible:", visible[best].tolist(),
          "best IoUs", [round(float(v), 3) for v in quality.max(dim=1)[0]], "; MMDetection's low-quality rule differs:",
          mm_differs)
    out = {"gt": gt, "image_size": torch.tensor([h, w]), "visible": visible, "num_pos": torch.tensor(len(pos)),
           "num_neg": torch.tensor(len(neg)), "loss_cls": loss_cls.reshape(1), "loss_bbox": loss_bbox.reshape(1),
           "num_pos_drop_first": torch.tensor(int((lab_drop == 1).sum()))}
    return {k + tag if k not in ("image_size", "visible") else k: v for k, v in out.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(HERE, "..", "tests", "data", "maskrcnn_benchmark"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(1804)
    meta = {"torch": torch.__version__, "written_by": "tools/golden_seed_training_rules.py"}
    safetensors_writer.save(os.path.join(a.out, "proposals_per_batch.safetensors"), proposals_per_batch(g), meta)
    safetensors_writer.save(os.path.join(a.out, "rpn_targets.safetensors"), rpn_targets(g), meta)


if __name__ == "__main__":
    main()
