// Float64 reference of the MMDetection v2 anchor generator, written from the definition
// (spec B.4): w = base * scale / sqrt(r), h = base * scale * sqrt(r), box = (c - w/2, c - h/2,
// c + w/2, c + h/2) with c = center_offset * base, shifted by (x * stride, y * stride), rows
// in (y, x, ratio, scale) order (scale_major) or (y, x, scale, ratio). Valid flags from the
// padded-extent rule. Shares no code with include/drcnn/ops/detail/anchor_body.h.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

namespace drcnn::ref {

struct AnchorRefLevel {
  double stride = 0, base = 0, center_offset = 0;
  std::vector<double> ratios, scales;
  bool scale_major = true;
};

/// Row-major [H * W * A, 4] anchors of one level, as doubles.
inline std::vector<double> anchors_level(const AnchorRefLevel& lv, int64_t H, int64_t W) {
  std::vector<double> out;
  const double c = lv.center_offset * lv.base;
  // Per-location (w, h) list in the configured order.
  std::vector<std::pair<double, double>> wh;
  const size_t R = lv.ratios.size(), S = lv.scales.size();
  for (size_t outer = 0; outer < (lv.scale_major ? R : S); ++outer) {
    for (size_t inner = 0; inner < (lv.scale_major ? S : R); ++inner) {
      const double r = lv.ratios[lv.scale_major ? outer : inner];
      const double s = lv.scales[lv.scale_major ? inner : outer];
      const double size = lv.base * s;
      wh.emplace_back(size / std::sqrt(r), size * std::sqrt(r));
    }
  }
  for (int64_t y = 0; y < H; ++y) {
    for (int64_t x = 0; x < W; ++x) {
      const double cx = c + double(x) * lv.stride, cy = c + double(y) * lv.stride;
      for (const auto& [w, h] : wh) {
        out.push_back(cx - w / 2);
        out.push_back(cy - h / 2);
        out.push_back(cx + w / 2);
        out.push_back(cy + h / 2);
      }
    }
  }
  return out;
}

/// [H * W * A] flags (1.0 / 0.0): cell (y, x) lies inside ceil(pad / stride) of this image.
inline std::vector<double> anchor_valid_level(double stride, int64_t A, int64_t H, int64_t W, double pad_h,
                                              double pad_w) {
  std::vector<double> out;
  for (int64_t y = 0; y < H; ++y) {
    for (int64_t x = 0; x < W; ++x) {
      // The cell's top-left corner y * stride must lie inside the padded image: y * stride < pad_h.
      const bool inside = double(y) * stride < pad_h && double(x) * stride < pad_w;
      for (int64_t a = 0; a < A; ++a) out.push_back(inside ? 1.0 : 0.0);
    }
  }
  return out;
}
}  // namespace drcnn::ref
