// Anchor bodies (include/drcnn/ops/anchors.h): one invocation per anchor, shared by
// kernels/cpu/anchors.cpp and kernels/cuda/anchors.cu through run_anchor(). Also declares the
// backend launchers (no CUDA types).
//
// Rounding follows mmdet's gen_single_level_base_anchors + single_level_grid_priors in float32
// torch, operation by operation: h_ratio = sqrt(ratio); w_ratio = 1 / h_ratio;
// w = (base * w_ratio) * scale (scale_major) or (base * scale) * w_ratio; corners
// center -/+ 0.5 * w; then + float(x * stride) (the integer shift converted exactly).
// No a*b+c pattern appears, so nvcc's FMA contraction cannot change a result (and 0.5 * w is
// exact anyway); sqrt and division are IEEE-rounded on both backends (no fast math).
#pragma once
#include <cstdint>

#include "drcnn/core/device.h"
#include "drcnn/core/dtype.h"
#include "drcnn/core/error.h"
#include "drcnn/ops/detail/math.h"

namespace drcnn::ops {

enum class AnchorKind { Grid, ValidFlags };

/// One level's launch: n = H * W * A anchors.
struct AnchorLaunch {
  static constexpr int kMaxParams = 16;
  int64_t n = 0;
  int64_t width = 0;        // W of the feature map
  int64_t stride = 1;
  int64_t num_ratios = 0, num_scales = 0;
  double ratios[kMaxParams] = {};
  double scales[kMaxParams] = {};
  double base_size = 0;
  double center = 0;         // center_offset * base_size, rounded to T like mmdet's scalar
  bool scale_major = true;
  bool detectron = false;    // Detectron's generate_anchors (detectron_base_anchor)
  int64_t valid_h = 0, valid_w = 0;  // ValidFlags
  void* out = nullptr;       // T [n, 4] (Grid) or bool [n] (ValidFlags)
};

namespace cpu {
void anchors(AnchorKind kind, DType dtype, const AnchorLaunch& l);
}
namespace cuda {
void anchors(Stream s, AnchorKind kind, DType dtype, const AnchorLaunch& l);
}

namespace detail {

/// Base anchor (x1, y1, x2, y2) of one (ratio, scale) pair in mmdet's float order.
template <typename T>
DRCNN_HD void base_anchor(T base, T ratio, T scale, T center, bool scale_major, T* out) {
  const T h_ratio = hd::sqrt(ratio);
  const T w_ratio = T(1) / h_ratio;
  T w, h;
  if (scale_major) {
    w = base * w_ratio;
    w = w * scale;
    h = base * h_ratio;
    h = h * scale;
  } else {
    w = base * scale;
    w = w * w_ratio;
    h = base * scale;
    h = h * h_ratio;
  }
  const T hw = T(0.5) * w, hh = T(0.5) * h;
  out[0] = center - hw;
  out[1] = center - hh;
  out[2] = center + hw;
  out[3] = center + hh;
}

/// Base anchor of one (ratio, scale) pair as Detectron's generate_anchors (maskrcnn-benchmark,
/// the seed) computes it in float64 numpy: the window [0, 0, base - 1, base - 1], _ratio_enum
/// (ws = round(sqrt(base^2 / ratio)), hs = round(ws * ratio), half to even as np.round), then
/// _scale_enum (ws * scale, hs * scale about the same centre), corners ctr -/+ 0.5 (w - 1).
DRCNN_HD void detectron_base_anchor(double base, double ratio, double scale, double* out) {
  const double w = base, h = base;  // _whctrs of [0, 0, base - 1, base - 1]
  const double x_ctr = 0.5 * (w - 1), y_ctr = 0.5 * (h - 1);
  const double ws = ::rint(::sqrt(w * h / ratio));
  const double hs = ::rint(ws * ratio);
  const double r[4] = {x_ctr - 0.5 * (ws - 1), y_ctr - 0.5 * (hs - 1), x_ctr + 0.5 * (ws - 1), y_ctr + 0.5 * (hs - 1)};
  const double w2 = r[2] - r[0] + 1, h2 = r[3] - r[1] + 1;
  const double xc = r[0] + 0.5 * (w2 - 1), yc = r[1] + 0.5 * (h2 - 1);
  const double sw = w2 * scale, sh = h2 * scale;
  out[0] = xc - 0.5 * (sw - 1);
  out[1] = yc - 0.5 * (sh - 1);
  out[2] = xc + 0.5 * (sw - 1);
  out[3] = yc + 0.5 * (sh - 1);
}

/// Anchor i = (y * W + x) * A + a of one level.
template <typename T>
struct AnchorGridBody {
  T ratios[AnchorLaunch::kMaxParams];
  T scales[AnchorLaunch::kMaxParams];
  int64_t num_ratios, num_scales, width, stride;
  T base, center;
  bool scale_major;
  bool detectron;
  double dratios[AnchorLaunch::kMaxParams], dscales[AnchorLaunch::kMaxParams], dbase;  // detectron
  T* out;
  DRCNN_HD void operator()(int64_t i) const {
    const int64_t A = num_ratios * num_scales;
    const int64_t a = i % A, cell = i / A;
    const int64_t x = cell % width, y = cell / width;
    const int64_t r = scale_major ? a / num_scales : a % num_ratios;
    const int64_t s = scale_major ? a % num_scales : a / num_ratios;
    T b[4];
    if (detectron) {
      // Computed in float64 and rounded to T once, as the seed's cell anchors (.float()).
      double d[4];
      detectron_base_anchor(dbase, dratios[r], dscales[s], d);
      for (int k = 0; k < 4; ++k) b[k] = T(d[k]);
    } else {
      base_anchor(base, ratios[r], scales[s], center, scale_major, b);
    }
    const T sx = T(x * stride), sy = T(y * stride);  // exact integers (< 2^24 for any real map)
    out[4 * i + 0] = b[0] + sx;
    out[4 * i + 1] = b[1] + sy;
    out[4 * i + 2] = b[2] + sx;
    out[4 * i + 3] = b[3] + sy;
  }
};

/// valid[i] = (y < valid_h) && (x < valid_w) for anchor i's cell.
struct AnchorValidBody {
  int64_t A, width, valid_h, valid_w;
  bool* out;
  DRCNN_HD void operator()(int64_t i) const {
    const int64_t cell = i / A;
    out[i] = (cell % width) < valid_w && (cell / width) < valid_h;
  }
};

/// The (kind, dtype) -> body switch, shared by both backends. launch(n, body).
template <typename Launch>
void run_anchor(AnchorKind kind, DType dtype, const AnchorLaunch& l, Launch&& launch) {
  if (kind == AnchorKind::ValidFlags) {
    return launch(l.n, AnchorValidBody{l.num_ratios * l.num_scales, l.width, l.valid_h, l.valid_w,
                                       static_cast<bool*>(l.out)});
  }
  dispatch_floating(dtype, "grid_anchors", [&](auto tag) {
    using T = typename decltype(tag)::type;
    AnchorGridBody<T> body{};
    for (int64_t k = 0; k < l.num_ratios; ++k) body.ratios[k] = T(l.ratios[k]);
    for (int64_t k = 0; k < l.num_scales; ++k) body.scales[k] = T(l.scales[k]);
    body.num_ratios = l.num_ratios;
    body.num_scales = l.num_scales;
    body.width = l.width;
    body.stride = l.stride;
    body.base = T(l.base_size);
    body.center = T(l.center);
    body.scale_major = l.scale_major;
    body.detectron = l.detectron;
    for (int64_t k = 0; k < l.num_ratios; ++k) body.dratios[k] = l.ratios[k];
    for (int64_t k = 0; k < l.num_scales; ++k) body.dscales[k] = l.scales[k];
    body.dbase = l.base_size;
    body.out = static_cast<T*>(l.out);
    launch(l.n, body);
  });
}
}  // namespace detail
}  // namespace drcnn::ops
