// Float64 brute-force reference of MMDetection v2's MaxIoUAssigner rules (plain loops over the
// IoU matrix), shared by the assigner tests and the detector-head tests. It shares no code with
// src/models/assigner.cpp.
#pragma once
#include <cstdint>
#include <vector>

#include "drcnn/models/assigner.h"
#include "reference/box_reference.h"

namespace drcnn::ref {

struct AssignRef {
  std::vector<int64_t> gt_inds;  ///< 0 negative, -1 ignored, k + 1 matched to GT k
  std::vector<double> max_overlaps;
};

/// iou[i][j] = IoU(gt i, candidate j) with mmdet's union floor 1e-6 (box_overlaps).
inline std::vector<std::vector<double>> iou_matrix(const std::vector<double>& gt, const std::vector<double>& cand) {
  const size_t k = gt.size() / 4, n = cand.size() / 4;
  const std::vector<double> flat = box_overlaps(gt, cand, false);
  std::vector<std::vector<double>> m(k, std::vector<double>(n));
  for (size_t i = 0; i < k; ++i)
    for (size_t j = 0; j < n; ++j) m[i][j] = flat[i * n + j];
  return m;
}

/// The rules in mmdet's order for n candidates. `thr` maps a threshold to the value the
/// comparison uses (identity for float64, float32 rounding for float32 inputs).
template <typename Thr>
AssignRef assign(const std::vector<std::vector<double>>& iou, size_t n, const models::MaxIoUAssignerOptions& o, Thr thr) {
  const size_t k = iou.size();
  AssignRef r{std::vector<int64_t>(n, k == 0 ? 0 : -1), std::vector<double>(n, 0.0)};
  if (k == 0 || n == 0) return r;
  for (size_t j = 0; j < n; ++j) {
    size_t best = 0;
    for (size_t i = 1; i < k; ++i)
      if (iou[i][j] > iou[best][j]) best = i;  // strict: the first maximum wins
    const double m = iou[best][j];
    r.max_overlaps[j] = m;
    if (m >= thr(o.neg_iou_lo) && m < thr(o.neg_iou_hi)) r.gt_inds[j] = 0;
    if (m >= thr(o.pos_iou_thr)) r.gt_inds[j] = int64_t(best) + 1;
  }
  if (o.match_low_quality) {
    for (size_t i = 0; i < k; ++i) {
      size_t best = 0;
      for (size_t j = 1; j < n; ++j)
        if (iou[i][j] > iou[i][best]) best = j;
      const double gm = iou[i][best];
      if (!(gm >= thr(o.min_pos_iou))) continue;
      for (size_t j = 0; j < n; ++j)
        if (o.gt_max_assign_all ? iou[i][j] == gm : j == best) r.gt_inds[j] = int64_t(i) + 1;
    }
  }
  return r;
}

inline double exact_threshold(double x) { return x; }

}  // namespace drcnn::ref
