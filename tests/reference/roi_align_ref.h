// Float64 reference of RoIAlign forward and backward, written from the definition (spec C.1,
// C.2; torchvision.ops.roi_align / mmcv avg mode). Shares no code with
// include/drcnn/ops/detail/roi_align_body.h: features are a flat NCHW vector of doubles, each
// sample's interpolation is spelled out as "clamp, floor, four weights" with std::floor, and
// the backward is the transpose of the forward's linear map (the same weights, scattered).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace drcnn::ref {

struct RoiAlignRefParams {
  int64_t pooled_h = 1, pooled_w = 1;
  double spatial_scale = 1.0;
  int64_t sampling_ratio = 0;
  bool aligned = false;
};

/// One bilinear tap: feature cell (row, col) with its weight.
struct RoiTap {
  int64_t row, col;
  double weight;
};

/// The taps of the point (y, x) of an H x W map: none when the point lies outside
/// [-1, H] x [-1, W]; otherwise the point is pulled to [0, H - 1] x [0, W - 1] (anything in
/// [-1, 0) reads row 0, anything at or past H - 1 reads the last row) and split among the
/// four surrounding cells.
inline std::vector<RoiTap> roi_ref_taps(double y, double x, int64_t H, int64_t W) {
  std::vector<RoiTap> taps;
  if (std::isnan(y) || std::isnan(x) || y < -1.0 || y > double(H) || x < -1.0 || x > double(W)) return taps;
  const double yc = std::min(std::max(y, 0.0), double(H - 1));
  const double xc = std::min(std::max(x, 0.0), double(W - 1));
  const int64_t r0 = int64_t(std::floor(yc)), c0 = int64_t(std::floor(xc));
  const int64_t r1 = std::min(r0 + 1, H - 1), c1 = std::min(c0 + 1, W - 1);
  const double fy = yc - double(r0), fx = xc - double(c0);  // 0 when clamped to the last row
  taps.push_back({r0, c0, (1 - fy) * (1 - fx)});
  taps.push_back({r0, c1, (1 - fy) * fx});
  taps.push_back({r1, c0, fy * (1 - fx)});
  taps.push_back({r1, c1, fy * fx});
  return taps;
}

/// For RoI row `roi` (5 values): calls visit(bin_row, bin_col, taps, 1 / count) for every
/// sample of every bin.
template <typename Visit>
void roi_ref_samples(const double* roi, int64_t H, int64_t W, const RoiAlignRefParams& p, Visit&& visit) {
  const double shift = p.aligned ? 0.5 : 0.0;
  const double x0 = roi[1] * p.spatial_scale - shift, y0 = roi[2] * p.spatial_scale - shift;
  const double x1 = roi[3] * p.spatial_scale - shift, y1 = roi[4] * p.spatial_scale - shift;
  double width = x1 - x0, height = y1 - y0;
  if (!p.aligned) {
    width = std::max(width, 1.0);
    height = std::max(height, 1.0);
  }
  const double bin_h = height / double(p.pooled_h), bin_w = width / double(p.pooled_w);
  int64_t gy = p.sampling_ratio, gx = p.sampling_ratio;
  if (p.sampling_ratio == 0) {
    gy = int64_t(std::max(0.0, std::ceil(height / double(p.pooled_h))));
    gx = int64_t(std::max(0.0, std::ceil(width / double(p.pooled_w))));
  }
  const double inv_count = 1.0 / double(std::max<int64_t>(gy * gx, 1));
  for (int64_t ph = 0; ph < p.pooled_h; ++ph)
    for (int64_t pw = 0; pw < p.pooled_w; ++pw)
      for (int64_t iy = 0; iy < gy; ++iy)
        for (int64_t ix = 0; ix < gx; ++ix) {
          // Sample centres split each bin into gy x gx equal cells.
          const double y = y0 + bin_h * (double(ph) + (double(iy) + 0.5) / double(gy));
          const double x = x0 + bin_w * (double(pw) + (double(ix) + 0.5) / double(gx));
          visit(ph, pw, roi_ref_taps(y, x, H, W), inv_count);
        }
}

/// features: flat [N, C, H, W]; rois: flat [R, 5] -> flat [R, C, PH, PW].
inline std::vector<double> roi_align_forward(const std::vector<double>& features, int64_t N, int64_t C, int64_t H,
                                             int64_t W, const std::vector<double>& rois, const RoiAlignRefParams& p) {
  (void)N;
  const int64_t R = int64_t(rois.size()) / 5, bins = p.pooled_h * p.pooled_w;
  std::vector<double> out(size_t(R * C * bins), 0.0);
  for (int64_t r = 0; r < R; ++r) {
    const int64_t b = int64_t(rois[size_t(5 * r)]);
    for (int64_t c = 0; c < C; ++c) {
      const double* plane = features.data() + (b * C + c) * H * W;
      double* o = out.data() + (r * C + c) * bins;
      roi_ref_samples(&rois[size_t(5 * r)], H, W, p,
                      [&](int64_t ph, int64_t pw, const std::vector<RoiTap>& taps, double inv_count) {
                        for (const RoiTap& t : taps) o[ph * p.pooled_w + pw] += inv_count * t.weight * plane[t.row * W + t.col];
                      });
    }
  }
  return out;
}

/// grad_out: flat [R, C, PH, PW] -> flat [N, C, H, W].
inline std::vector<double> roi_align_backward(const std::vector<double>& grad_out, int64_t N, int64_t C, int64_t H,
                                              int64_t W, const std::vector<double>& rois, const RoiAlignRefParams& p) {
  const int64_t R = int64_t(rois.size()) / 5, bins = p.pooled_h * p.pooled_w;
  std::vector<double> grad(size_t(N * C * H * W), 0.0);
  for (int64_t r = 0; r < R; ++r) {
    const int64_t b = int64_t(rois[size_t(5 * r)]);
    for (int64_t c = 0; c < C; ++c) {
      double* plane = grad.data() + (b * C + c) * H * W;
      const double* g = grad_out.data() + (r * C + c) * bins;
      roi_ref_samples(&rois[size_t(5 * r)], H, W, p,
                      [&](int64_t ph, int64_t pw, const std::vector<RoiTap>& taps, double inv_count) {
                        for (const RoiTap& t : taps) plane[t.row * W + t.col] += inv_count * t.weight * g[ph * p.pooled_w + pw];
                      });
    }
  }
  return grad;
}
}  // namespace drcnn::ref
