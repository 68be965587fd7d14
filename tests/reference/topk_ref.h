// Naive reference of the segmented top-k, written from the definition in
// include/drcnn/ops/topk.h: for each segment, std::stable_sort of its positions by score
// descending with NaN after every number (values read as double), then the first min(k, len).
// Shares no code with include/drcnn/ops/detail/topk_body.h (no key transform).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

namespace drcnn::ref {

struct TopKRef {
  std::vector<double> values;    // [S * k], -inf padding
  std::vector<double> indices;   // [S * k], -1 padding
  std::vector<double> counts;    // [S]
};

inline TopKRef segment_topk(const std::vector<double>& scores, const std::vector<int64_t>& offsets, int64_t k,
                            bool relative = false) {
  TopKRef r;
  for (size_t s = 0; s + 1 < offsets.size(); ++s) {
    std::vector<int64_t> pos(size_t(offsets[s + 1] - offsets[s]));
    std::iota(pos.begin(), pos.end(), offsets[s]);
    std::stable_sort(pos.begin(), pos.end(), [&](int64_t a, int64_t b) {
      const double x = scores[size_t(a)], y = scores[size_t(b)];
      if (std::isnan(x)) return false;  // NaN is never before anything
      if (std::isnan(y)) return true;   // a number is before NaN
      return x > y;                     // -0 == +0: equal, stable
    });
    const int64_t count = std::min<int64_t>(k, int64_t(pos.size()));
    r.counts.push_back(double(count));
    for (int64_t j = 0; j < k; ++j) {
      if (j < count) {
        r.values.push_back(scores[size_t(pos[size_t(j)])]);
        r.indices.push_back(double(relative ? pos[size_t(j)] - offsets[s] : pos[size_t(j)]));
      } else {
        r.values.push_back(-std::numeric_limits<double>::infinity());
        r.indices.push_back(-1);
      }
    }
  }
  return r;
}
}  // namespace drcnn::ref
