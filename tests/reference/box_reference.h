// Float64 references for the box ops, written from the MMDetection v2 definitions (spec B.11,
// C.5). They share no code with include/drcnn/ops/detail/box_body.h: boxes are flat vectors of
// doubles, 4 (or 5) per row, and each formula is spelled out again here.
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

namespace drcnn::ref {

inline std::vector<double> box_area(const std::vector<double>& b) {
  std::vector<double> out;
  for (size_t i = 0; i + 3 < b.size(); i += 4) out.push_back((b[i + 2] - b[i]) * (b[i + 3] - b[i + 1]));
  return out;
}

/// Row-major [N, M]; iof divides by the first box's area. Denominator floored at 1e-6.
inline std::vector<double> box_overlaps(const std::vector<double>& a, const std::vector<double>& b, bool iof) {
  const size_t n = a.size() / 4, m = b.size() / 4;
  std::vector<double> out(n * m);
  for (size_t i = 0; i < n; ++i) {
    const double ax1 = a[4 * i], ay1 = a[4 * i + 1], ax2 = a[4 * i + 2], ay2 = a[4 * i + 3];
    for (size_t j = 0; j < m; ++j) {
      const double bx1 = b[4 * j], by1 = b[4 * j + 1], bx2 = b[4 * j + 2], by2 = b[4 * j + 3];
      double w = std::min(ax2, bx2) - std::max(ax1, bx1);
      double h = std::min(ay2, by2) - std::max(ay1, by1);
      if (w < 0) w = 0;
      if (h < 0) h = 0;
      const double overlap = w * h;
      const double area1 = (ax2 - ax1) * (ay2 - ay1), area2 = (bx2 - bx1) * (by2 - by1);
      double u = iof ? area1 : area1 + area2 - overlap;
      if (u < 1e-6) u = 1e-6;
      out[i * m + j] = overlap / u;
    }
  }
  return out;
}

inline std::vector<double> box_encode(const std::vector<double>& p, const std::vector<double>& g,
                                      const std::array<double, 4>& means, const std::array<double, 4>& stds) {
  std::vector<double> out;
  for (size_t i = 0; i + 3 < p.size(); i += 4) {
    const double pw = p[i + 2] - p[i], ph = p[i + 3] - p[i + 1];
    const double pcx = p[i] + 0.5 * pw, pcy = p[i + 1] + 0.5 * ph;
    const double gw = g[i + 2] - g[i], gh = g[i + 3] - g[i + 1];
    const double gcx = g[i] + 0.5 * gw, gcy = g[i + 1] + 0.5 * gh;
    const double t[4] = {(gcx - pcx) / pw, (gcy - pcy) / ph, std::log(gw / pw), std::log(gh / ph)};
    for (int k = 0; k < 4; ++k) out.push_back((t[k] - means[size_t(k)]) / stds[size_t(k)]);
  }
  return out;
}

/// deltas: N rows of 4K; clip when height >= 0.
inline std::vector<double> box_decode(const std::vector<double>& rois, const std::vector<double>& deltas, size_t K,
                                      const std::array<double, 4>& means, const std::array<double, 4>& stds,
                                      double height, double width, double wh_ratio_clip) {
  const double r = std::fabs(std::log(wh_ratio_clip));
  std::vector<double> out(deltas.size());
  const size_t n = rois.size() / 4;
  for (size_t i = 0; i < n; ++i)
    for (size_t k = 0; k < K; ++k) {
      const double* d = &deltas[(i * K + k) * 4];
      const double x1 = rois[4 * i], y1 = rois[4 * i + 1], x2 = rois[4 * i + 2], y2 = rois[4 * i + 3];
      const double dx = means[0] + stds[0] * d[0], dy = means[1] + stds[1] * d[1];
      const double dw = std::clamp(means[2] + stds[2] * d[2], -r, r);
      const double dh = std::clamp(means[3] + stds[3] * d[3], -r, r);
      const double w = (x2 - x1) * std::exp(dw), h = (y2 - y1) * std::exp(dh);
      const double cx = 0.5 * (x1 + x2) + (x2 - x1) * dx, cy = 0.5 * (y1 + y2) + (y2 - y1) * dy;
      double box[4] = {cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2};
      if (height >= 0) {
        box[0] = std::clamp(box[0], 0.0, width);
        box[2] = std::clamp(box[2], 0.0, width);
        box[1] = std::clamp(box[1], 0.0, height);
        box[3] = std::clamp(box[3], 0.0, height);
      }
      for (int c = 0; c < 4; ++c) out[(i * K + k) * 4 + size_t(c)] = box[c];
    }
  return out;
}

inline std::vector<double> box_clip(const std::vector<double>& b, double height, double width) {
  std::vector<double> out(b.size());
  for (size_t i = 0; i < b.size(); ++i) {
    const double lim = (i % 2 == 0) ? width : height;
    out[i] = std::min(std::max(b[i], 0.0), lim);
  }
  return out;
}

inline std::vector<int64_t> remove_small_boxes(const std::vector<double>& b, double min_size) {
  std::vector<int64_t> keep;
  for (size_t i = 0; i + 3 < b.size(); i += 4)
    if (b[i + 2] - b[i] >= min_size && b[i + 3] - b[i + 1] >= min_size) keep.push_back(int64_t(i / 4));
  return keep;
}

/// Also returns, through `margin`, the distance of the pre-floor value to the nearest integer
/// (rows near a level boundary can round either way in float32).
inline std::vector<int64_t> map_roi_levels(const std::vector<double>& rois, int num_levels, double finest_scale,
                                           std::vector<double>* margin = nullptr) {
  std::vector<int64_t> out;
  for (size_t i = 0; i + 4 < rois.size(); i += 5) {
    const double area = (rois[i + 3] - rois[i + 1]) * (rois[i + 4] - rois[i + 2]);
    const double v = std::log2(std::sqrt(area) / finest_scale + 1e-6);
    int64_t lvl = 0;
    if (!std::isnan(v)) lvl = int64_t(std::min<double>(std::max<double>(std::floor(v), 0.0), num_levels - 1));
    out.push_back(lvl);
    if (margin) margin->push_back(std::isnan(v) ? 1.0 : std::fabs(v - std::round(v)));
  }
  return out;
}
}  // namespace drcnn::ref
