// RoIAlign bodies (include/drcnn/ops/roi_align.h; spec C.1, C.2), shared by
// kernels/cpu/roi_align.cpp and kernels/cuda/roi_align.cu. Also declares the backend launchers
// (no CUDA types).
//
// The math is split into small DRCNN_HD pieces that every path calls:
//   roi_geometry   one RoI: batch, level, start, bin size, sampling grid, validity
//   roi_sample_yx  the coordinates of sample (iy, ix) of bin (ph, pw)
//   roi_axis_tap   one axis of a sample's bilinear taps: 2 offsets and 2 weights, or "no
//                  contribution" outside [-1, H] (resp. [-1, W]) (the C.1 clamp rules); a
//                  sample's 4 taps are the products of its y and x taps
//   sample_gather / sample_scatter   apply a sample's taps to a plane
// and three bodies run them:
//   RoiAlignForwardBody          one invocation per output element (CUDA forward)
//   RoiAlignBackwardAtomicBody   one invocation per grad_out element, atomic adds (CUDA)
//   RoiAlignBackwardPlaneBody    one invocation per (batch, channel): loops over the RoIs in
//                                order and adds with plain stores (CUDA deterministic mode)
// The CPU launcher precomputes the y and x taps of every RoI once with roi_axis_tap (the
// sampling grid is separable) and applies them to all channels with sample_gather /
// sample_scatter, in the same order and with the same arithmetic as these bodies, so the CPU forward equals RoiAlignForwardBody and the CPU backward equals
// RoiAlignBackwardPlaneBody (up to nvcc's FMA contraction).
#pragma once
#include <cmath>
#include <cstdint>

#include "drcnn/core/device.h"
#include "drcnn/core/dtype.h"
#include "drcnn/ops/detail/atomic.h"
#include "drcnn/ops/detail/math.h"

namespace drcnn::ops {

/// Most FPN levels one multi-level launch can pool from.
inline constexpr int kRoiAlignMaxLevels = 8;

/// One feature level: a [N, C, H, W] map with element strides (features for the forward,
/// grad for the backward; the other pointer is unused).
struct RoiAlignLevel {
  const void* features = nullptr;
  void* grad = nullptr;
  int64_t H = 0, W = 0;
  int64_t stride[4] = {0, 0, 0, 0};  // N, C, H, W
  double scale = 1.0;                // spatial_scale of this level
};

/// One RoIAlign launch (forward or backward), single- or multi-level.
struct RoiAlignLaunch {
  int64_t R = 0, C = 0, N = 0, PH = 1, PW = 1;
  int64_t sampling_ratio = 0;  // > 0 fixed grid, 0 adaptive ceil(roi / bin count)
  bool aligned = false;
  int num_levels = 1;
  RoiAlignLevel level[kRoiAlignMaxLevels];
  const void* rois = nullptr;       // contiguous [R, 5] (batch, x1, y1, x2, y2), features' dtype
  const int64_t* levels = nullptr;  // contiguous [R] level of each RoI; nullptr: all level 0
  void* out = nullptr;              // forward: contiguous [R, C, PH, PW]
  const void* grad_out = nullptr;   // backward: [R, C, PH, PW] with go_stride
  int64_t go_stride[4] = {0, 0, 0, 0};
  int* error = nullptr;             // set to 1 by a RoI with a bad batch index or level
};

namespace cpu {
void roi_align_forward(DType dtype, const RoiAlignLaunch& l);
/// grad planes must be zero-filled; deterministic and independent of the thread count.
void roi_align_backward(DType dtype, const RoiAlignLaunch& l);
}  // namespace cpu
namespace cuda {
void roi_align_forward(Stream s, DType dtype, const RoiAlignLaunch& l);
/// deterministic: RoiAlignBackwardPlaneBody (one thread per (batch, channel) plane); else
/// RoiAlignBackwardAtomicBody (one thread per grad_out element, float atomics).
void roi_align_backward(Stream s, DType dtype, const RoiAlignLaunch& l, bool deterministic);
}  // namespace cuda

namespace detail {

DRCNN_HD float roi_ceil(float x) { return ::ceilf(x); }
DRCNN_HD double roi_ceil(double x) { return ::ceil(x); }

/// Largest sampling grid side the adaptive rule may produce (guards the float -> int
/// conversion for absurd RoIs; a real image never comes near it).
inline constexpr int64_t kRoiAlignMaxGrid = int64_t(1) << 20;

/// Everything about one RoI that its bins and samples need.
template <typename T>
struct RoiGeom {
  bool valid;          // batch index an integer in [0, N) and level in [0, num_levels)
  int64_t b, level;
  T start_h, start_w;  // first sample row/column origin, in the level's pixels
  T bin_h, bin_w;
  int64_t grid_h, grid_w;  // samples per bin along y and x (>= 0)
};

/// Sampling grid side: the fixed ratio, or ceil(size / bins) (0 for a non-positive or
/// non-finite size, which then contributes nothing: mmcv's zero-size RoI gives 0).
template <typename T>
DRCNN_HD int64_t roi_grid(int64_t sampling_ratio, T size, int64_t bins) {
  if (sampling_ratio > 0) return sampling_ratio;
  const T q = roi_ceil(size / T(bins));
  if (!(q > T(0))) return 0;  // also NaN
  if (!(q < T(kRoiAlignMaxGrid))) return kRoiAlignMaxGrid;
  return static_cast<int64_t>(q);
}

template <typename T>
DRCNN_HD RoiGeom<T> roi_geometry(const RoiAlignLaunch& l, int64_t r) {
  const T* roi = static_cast<const T*>(l.rois) + 5 * r;
  RoiGeom<T> g{};
  const T bf = roi[0];
  const int64_t level = l.levels ? l.levels[r] : 0;
  // Written as !(in range) so that NaN is rejected; the cast happens only once in range.
  g.valid = bf >= T(0) && bf < T(l.N) && T(static_cast<int64_t>(bf)) == bf && level >= 0 && level < l.num_levels;
  if (!g.valid) return g;
  g.b = static_cast<int64_t>(bf);
  g.level = level;
  const T scale = T(l.level[level].scale);
  const T off = l.aligned ? T(0.5) : T(0);
  g.start_w = roi[1] * scale - off;
  g.start_h = roi[2] * scale - off;
  const T end_w = roi[3] * scale - off;
  const T end_h = roi[4] * scale - off;
  T rw = end_w - g.start_w, rh = end_h - g.start_h;
  if (!l.aligned) {  // legacy: RoIs at least 1x1 (aligned RoIs may be empty or reversed)
    rw = hd::max(rw, T(1));
    rh = hd::max(rh, T(1));
  }
  g.bin_h = rh / T(l.PH);
  g.bin_w = rw / T(l.PW);
  g.grid_h = roi_grid(l.sampling_ratio, rh, l.PH);
  g.grid_w = roi_grid(l.sampling_ratio, rw, l.PW);
  return g;
}

/// Coordinates of sample (iy, ix) of bin (ph, pw): start + p * bin + (i + 0.5) * bin / grid.
template <typename T>
DRCNN_HD T roi_sample_coord(T start, int64_t p, T bin, int64_t i, int64_t grid) {
  return start + T(p) * bin + (T(i) + T(0.5)) * bin / T(grid);
}

/// One axis of a sample's bilinear interpolation: the two neighbouring rows (or columns) as
/// element offsets (index * stride) and their weights. The 2-D taps are the products of a y
/// and an x tap, so the CPU can precompute each axis once per RoI (the grid is separable).
template <typename T>
struct RoiAxisTap {
  bool valid;      // the coordinate lies in [-1, size]
  int64_t lo, hi;  // offsets of the lower and upper neighbour
  T l, h;          // weight of hi (the fraction) and of lo (1 - fraction)
};

/// The tap of coordinate v on an axis of `size` cells: invalid outside [-1, size] (or NaN);
/// [-1, 0] reads cell 0; at or beyond size - 1 reads the last cell with full weight (C.1).
template <typename T>
DRCNN_HD RoiAxisTap<T> roi_axis_tap(T v, int64_t size, int64_t stride) {
  RoiAxisTap<T> t{};
  t.valid = v >= T(-1) && v <= T(size);
  if (!t.valid) return t;
  if (v <= T(0)) v = T(0);
  int64_t lo = static_cast<int64_t>(v), hi;
  if (lo >= size - 1) {
    hi = lo = size - 1;
    v = T(lo);
  } else {
    hi = lo + 1;
  }
  t.l = v - T(lo);
  t.h = T(1) - t.l;
  t.lo = lo * stride;
  t.hi = hi * stride;
  return t;
}

/// A sample's four taps in a plane: offsets and weights hy*hx, hy*lx, ly*hx, ly*lx on
/// (lo, lo), (lo, hi), (hi, lo), (hi, hi) of (ty, tx) (both valid).
template <typename T>
struct RoiTaps2d {
  int64_t o[4];
  T w[4];
};
template <typename T>
DRCNN_HD RoiTaps2d<T> roi_taps_2d(const RoiAxisTap<T>& ty, const RoiAxisTap<T>& tx) {
  return {{ty.lo + tx.lo, ty.lo + tx.hi, ty.hi + tx.lo, ty.hi + tx.hi},
          {ty.h * tx.h, ty.h * tx.l, ty.l * tx.h, ty.l * tx.l}};
}

/// Bilinear value of a sample: sum of weight * value over its four taps, in tap order.
template <typename T>
DRCNN_HD T sample_gather(const T* plane, const RoiTaps2d<T>& s) {
  return s.w[0] * plane[s.o[0]] + s.w[1] * plane[s.o[1]] + s.w[2] * plane[s.o[2]] + s.w[3] * plane[s.o[3]];
}

/// plane[tap] += g * weight for the four taps (taps coincide at the border: their sum is the
/// right total weight). Atomic on the device when kAtomic.
template <bool kAtomic, typename T>
DRCNN_HD void sample_scatter(T* plane, const RoiTaps2d<T>& s, T g) {
  for (int k = 0; k < 4; ++k) {
    if constexpr (kAtomic) {
      atomic_add(plane + s.o[k], g * s.w[k]);
    } else {
      plane[s.o[k]] += g * s.w[k];
    }
  }
}

/// Divisor of a bin's average (forward): max(grid_h * grid_w, 1).
template <typename T>
DRCNN_HD T roi_count(const RoiGeom<T>& g) {
  const int64_t n = g.grid_h * g.grid_w;
  return T(n > 0 ? n : 1);
}

/// Average of bin (ph, pw) of a valid RoI over one plane.
template <typename T>
DRCNN_HD T roi_bin_average(const T* plane, const RoiAlignLevel& lv, const RoiGeom<T>& g, int64_t ph, int64_t pw) {
  T acc = T(0);
  for (int64_t iy = 0; iy < g.grid_h; ++iy) {
    const RoiAxisTap<T> ty = roi_axis_tap(roi_sample_coord(g.start_h, ph, g.bin_h, iy, g.grid_h), lv.H, lv.stride[2]);
    if (!ty.valid) continue;
    for (int64_t ix = 0; ix < g.grid_w; ++ix) {
      const RoiAxisTap<T> tx = roi_axis_tap(roi_sample_coord(g.start_w, pw, g.bin_w, ix, g.grid_w), lv.W, lv.stride[3]);
      if (tx.valid) acc += sample_gather(plane, roi_taps_2d(ty, tx));
    }
  }
  return acc / roi_count(g);
}

/// Adds g / count times each sample's taps of bin (ph, pw) into a plane.
template <bool kAtomic, typename T>
DRCNN_HD void roi_bin_scatter(T* plane, const RoiAlignLevel& lv, const RoiGeom<T>& g, int64_t ph, int64_t pw, T grad) {
  const T gc = grad / roi_count(g);
  for (int64_t iy = 0; iy < g.grid_h; ++iy) {
    const RoiAxisTap<T> ty = roi_axis_tap(roi_sample_coord(g.start_h, ph, g.bin_h, iy, g.grid_h), lv.H, lv.stride[2]);
    if (!ty.valid) continue;
    for (int64_t ix = 0; ix < g.grid_w; ++ix) {
      const RoiAxisTap<T> tx = roi_axis_tap(roi_sample_coord(g.start_w, pw, g.bin_w, ix, g.grid_w), lv.W, lv.stride[3]);
      if (tx.valid) sample_scatter<kAtomic>(plane, roi_taps_2d(ty, tx), gc);
    }
  }
}

/// Coordinates of element i of a contiguous [R, C, PH, PW] tensor.
struct RoiElement {
  int64_t r, c, ph, pw;
};
DRCNN_HD RoiElement roi_element(const RoiAlignLaunch& l, int64_t i) {
  RoiElement e;
  e.pw = i % l.PW;
  i /= l.PW;
  e.ph = i % l.PH;
  i /= l.PH;
  e.c = i % l.C;
  e.r = i / l.C;
  return e;
}

/// out[r, c, ph, pw] for i in [0, R * C * PH * PW). A RoI with a bad batch index or level
/// writes zeros and raises the error flag.
template <typename T>
struct RoiAlignForwardBody {
  RoiAlignLaunch l;
  DRCNN_HD void operator()(int64_t i) const {
    const RoiElement e = roi_element(l, i);
    const int64_t r = e.r, c = e.c, ph = e.ph, pw = e.pw;
    T* out = static_cast<T*>(l.out);
    const RoiGeom<T> g = roi_geometry<T>(l, r);
    if (!g.valid) {
      out[i] = T(0);
      raise_flag(l.error);
      return;
    }
    const RoiAlignLevel& lv = l.level[g.level];
    const T* plane = static_cast<const T*>(lv.features) + g.b * lv.stride[0] + c * lv.stride[1];
    out[i] = roi_bin_average(plane, lv, g, ph, pw);
  }
};

template <typename T>
DRCNN_HD T grad_out_at(const RoiAlignLaunch& l, int64_t r, int64_t c, int64_t ph, int64_t pw) {
  return static_cast<const T*>(l.grad_out)[r * l.go_stride[0] + c * l.go_stride[1] + ph * l.go_stride[2] +
                                           pw * l.go_stride[3]];
}

/// One grad_out element's contribution, i in [0, R * C * PH * PW), with atomic adds.
template <typename T>
struct RoiAlignBackwardAtomicBody {
  RoiAlignLaunch l;
  DRCNN_HD void operator()(int64_t i) const {
    const RoiElement e = roi_element(l, i);
    const int64_t r = e.r, c = e.c, ph = e.ph, pw = e.pw;
    const RoiGeom<T> g = roi_geometry<T>(l, r);
    if (!g.valid) {
      raise_flag(l.error);
      return;
    }
    const RoiAlignLevel& lv = l.level[g.level];
    T* plane = static_cast<T*>(lv.grad) + g.b * lv.stride[0] + c * lv.stride[1];
    roi_bin_scatter<true>(plane, lv, g, ph, pw, grad_out_at<T>(l, r, c, ph, pw));
  }
};

/// Plane p = b * C + c (of every level): walks the RoIs in index order and adds the
/// contributions of those with batch b, bins and samples in order. Nothing else writes the
/// planes of (b, c), so the result is reproducible bit for bit.
template <typename T>
struct RoiAlignBackwardPlaneBody {
  RoiAlignLaunch l;
  DRCNN_HD void operator()(int64_t p) const {
    const int64_t b = p / l.C, c = p % l.C;
    for (int64_t r = 0; r < l.R; ++r) {
      const RoiGeom<T> g = roi_geometry<T>(l, r);
      if (!g.valid) {
        if (p == 0) raise_flag(l.error);
        continue;
      }
      if (g.b != b) continue;
      const RoiAlignLevel& lv = l.level[g.level];
      T* plane = static_cast<T*>(lv.grad) + b * lv.stride[0] + c * lv.stride[1];
      for (int64_t ph = 0; ph < l.PH; ++ph)
        for (int64_t pw = 0; pw < l.PW; ++pw) roi_bin_scatter<false>(plane, lv, g, ph, pw, grad_out_at<T>(l, r, c, ph, pw));
    }
  }
};
}  // namespace detail
}  // namespace drcnn::ops
