// MMDetection v2 MaxIoUAssigner (spec B.6, B.8, E.6, E.25): assigns each candidate box
// (anchor or proposal) to a ground-truth box, to the background, or to "ignore".
#pragma once
#include <cstdint>
#include <optional>

#include "drcnn/core/tensor.h"

namespace drcnn::models {

/// Result of an assignment of N candidates against num_gts ground truths (mmdet AssignResult).
struct AssignResult {
  int64_t num_gts = 0;
  /// int64 [N]: 0 = negative (background), -1 = ignored (neither positive nor negative),
  /// k + 1 = positive, matched to ground truth k.
  Tensor gt_inds;
  /// [N], the candidates' dtype: each candidate's largest IoU over all ground truths (not the IoU
  /// with the assigned one, which differs after a low-quality match), -1 for a candidate the
  /// ignore boxes removed (its IoU column was set to -1), 0 everywhere when there is no ground
  /// truth. After add_gt the prepended ground truths hold 1.
  Tensor max_overlaps;
  /// int64 [N] class of the matched ground truth for positives and -1 elsewhere; undefined when
  /// assign() got no labels.
  Tensor labels;

  int64_t num_preds() const { return gt_inds.defined() ? gt_inds.size(0) : 0; }
  /// mmdet add_gt_: prepends the num_gts ground truths as candidates matched to themselves:
  /// gt_inds = [1..num_gts, gt_inds], max_overlaps = [1 x num_gts, max_overlaps], labels =
  /// [gt_labels, labels] (when labels are defined). gt_labels: int64 [num_gts] on the result's
  /// device (required when labels are defined; otherwise only its length is used).
  void add_gt(const Tensor& gt_labels);
};

struct MaxIoUAssignerOptions {
  /// IoU >= pos_iou_thr with the best ground truth: positive.
  double pos_iou_thr = 0.5;
  /// Negative when the best IoU is in [neg_iou_lo, neg_iou_hi). mmdet's single float t is the
  /// range [0, t) (a candidate with max IoU -1, i.e. ignored by iof, stays ignored).
  double neg_iou_lo = 0.0;
  double neg_iou_hi = 0.5;
  /// Low-quality matches need the ground truth's best IoU >= min_pos_iou.
  double min_pos_iou = 0.0;
  /// Low-quality matching: every candidate tied at a ground truth's best IoU gets it (true), or
  /// only the first such candidate (false).
  bool gt_max_assign_all = true;
  /// Candidates whose intersection-over-foreground with an ignore box exceeds this are ignored
  /// (their IoUs become -1 before the rules run). <= 0: off (mmdet -1).
  double ignore_iof_thr = -1.0;
  /// Step 4 (give each ground truth its best candidates). RPN: true; R-CNN heads: false.
  bool match_low_quality = true;
  /// maskrcnn-benchmark's boxlist_iou (+1 widths) for the IoU matrix; set from the detector's
  /// box_convention by rpn_loss and RoiHead::loss (not a YAML key).
  bool legacy_iou = false;
  /// Step 4's candidates get their own best ground truth (the argmax of their IoUs, first on
  /// ties: maskrcnn-benchmark's Matcher.set_low_quality_matches_, with min_pos_iou 0 for its "no
  /// minimum") instead of the ground truth they are best for (mmdet, the last such GT).
  bool low_quality_own_best = false;

  /// RPN of Faster R-CNN (spec B.6): 0.7 / 0.3, min_pos_iou 0.3, low-quality matching.
  static MaxIoUAssignerOptions rpn() { return {0.7, 0.0, 0.3, 0.3, true, -1.0, true}; }
  /// R-CNN head with pos = neg = min_pos = thr and no low-quality matching (spec B.8; Dynamic
  /// R-CNN passes the current threshold T_now, the baseline 0.5).
  static MaxIoUAssignerOptions rcnn(double thr = 0.5) { return {thr, 0.0, thr, thr, true, -1.0, false}; }
  friend bool operator==(const MaxIoUAssignerOptions&, const MaxIoUAssignerOptions&) = default;
};

/// The assignment rules, in mmdet's order (later steps overwrite earlier ones):
///  0. IoU matrix [K, N] = ops::box_iou(gt, candidates) (no +1, union floored at 1e-6: zero-area
///     candidates have IoU 0 with everything). With ignore boxes and ignore_iof_thr > 0, the
///     columns of candidates with max_j iof(candidate, ignore_j) > ignore_iof_thr are set to -1.
///  1. every candidate: -1 (ignore);
///  2. max IoU in [neg_iou_lo, neg_iou_hi): 0 (negative);
///  3. max IoU >= pos_iou_thr: argmax GT + 1 (ties: the lowest GT index, argmax's first
///     occurrence, as torch.max);
///  4. match_low_quality: for each GT i in order with gt_max_i >= min_pos_iou, the candidates
///     with IoU == gt_max_i (gt_max_assign_all) or only its first best candidate get i + 1;
///     a later GT overwrites an earlier one (the highest such i wins).
/// No ground truth: every candidate negative (0), max_overlaps 0, labels -1. No candidate:
/// empty results.
class MaxIoUAssigner {
 public:
  explicit MaxIoUAssigner(MaxIoUAssignerOptions options = {});
  const MaxIoUAssignerOptions& options() const { return m_opt; }

  /// candidates [N, 4], gt [K, 4] (same float dtype and device), gt_labels int64 [K] or
  /// undefined, gt_ignore [I, 4] or undefined. Computed with tensor ops on the inputs' device;
  /// no host synchronisation.
  AssignResult assign(const Tensor& candidates, const Tensor& gt, const Tensor& gt_labels = {},
                      const Tensor& gt_ignore = {}) const;
  /// The rules applied to a given IoU matrix [K, N] (float32/float64; -1 marks ignored columns).
  AssignResult assign_wrt_overlaps(const Tensor& overlaps, const Tensor& gt_labels = {}) const;

 private:
  MaxIoUAssignerOptions m_opt;
};

}  // namespace drcnn::models
