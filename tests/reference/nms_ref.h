// Float64 greedy NMS references, written from the definition (spec C.3, C.4), sharing no code
// with include/drcnn/ops/detail/nms_body.h or box_body.h: no mask tiles, no bit words, no
// box_overlap. Boxes are flat vectors of doubles, 4 per box (x1, y1, x2, y2).
//
// Definition: order the boxes by descending score, equal scores in input order, NaN scores
// last (in input order). Walk that order; a box not yet suppressed is kept and suppresses
// every later box whose IoU with it is > thr, IoU = inter / (area_a + area_b - inter). A pair
// whose union is not positive (two zero-area boxes) never suppresses (torchvision: 0/0 is NaN,
// and NaN > thr is false).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <numeric>
#include <vector>

namespace drcnn::ref {

/// a before b in NMS order: numbers descending, NaN after every number.
inline bool nms_score_before(double a, double b) {
  if (std::isnan(a)) return false;
  if (std::isnan(b)) return true;
  return a > b;
}

/// Positions sorted into NMS order (stable).
inline std::vector<int64_t> nms_order(const std::vector<int64_t>& positions, const std::vector<double>& scores) {
  std::vector<int64_t> order = positions;
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return nms_score_before(scores[size_t(a)], scores[size_t(b)]); });
  return order;
}

inline double nms_iou(const std::vector<double>& b, int64_t i, int64_t j) {
  const double* p = &b[size_t(4 * i)];
  const double* q = &b[size_t(4 * j)];
  const double w = std::min(p[2], q[2]) - std::max(p[0], q[0]);
  const double h = std::min(p[3], q[3]) - std::max(p[1], q[1]);
  const double inter = (w > 0 ? w : 0) * (h > 0 ? h : 0);
  const double uni = (p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - inter;
  if (!(uni > 0)) return 0;
  return inter / uni;
}

/// Kept input positions in NMS order, at most max_output (-1: all).
inline std::vector<int64_t> nms(const std::vector<double>& boxes, const std::vector<double>& scores, double thr,
                                int64_t max_output = -1) {
  std::vector<int64_t> all(scores.size());
  std::iota(all.begin(), all.end(), int64_t(0));
  const std::vector<int64_t> order = nms_order(all, scores);
  std::vector<bool> suppressed(scores.size(), false);
  std::vector<int64_t> keep;
  for (size_t a = 0; a < order.size(); ++a) {
    if (suppressed[size_t(order[a])]) continue;
    if (max_output >= 0 && int64_t(keep.size()) == max_output) break;
    keep.push_back(order[a]);
    for (size_t b = a + 1; b < order.size(); ++b)
      if (nms_iou(boxes, order[a], order[b]) > thr) suppressed[size_t(order[b])] = true;
  }
  return keep;
}

/// NMS run separately on each group of equal ids; the kept boxes of all groups in NMS order.
inline std::vector<int64_t> batched_nms(const std::vector<double>& boxes, const std::vector<double>& scores,
                                        const std::vector<int64_t>& ids, double thr, int64_t max_output = -1) {
  std::map<int64_t, std::vector<int64_t>> groups;
  for (size_t i = 0; i < ids.size(); ++i) groups[ids[i]].push_back(int64_t(i));
  std::vector<int64_t> kept;
  for (const auto& [id, pos] : groups) {
    std::vector<double> gb, gs;
    for (int64_t p : pos) {
      for (int c = 0; c < 4; ++c) gb.push_back(boxes[size_t(4 * p + c)]);
      gs.push_back(scores[size_t(p)]);
    }
    for (int64_t k : nms(gb, gs, thr)) kept.push_back(pos[size_t(k)]);
  }
  std::sort(kept.begin(), kept.end());
  std::vector<int64_t> out = nms_order(kept, scores);
  if (max_output >= 0 && int64_t(out.size()) > max_output) out.resize(size_t(max_output));
  return out;
}
}  // namespace drcnn::ref
