// Box-op bodies (include/drcnn/ops/box_ops.h): one invocation per box or per box pair, shared
// by kernels/cpu/box_ops.cpp and kernels/cuda/box_ops.cu through run_box(). Inputs are
// contiguous [N, 4] (rois [R, 5]). Also declares the backend launchers (no CUDA types).
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "drcnn/core/device.h"
#include "drcnn/core/dtype.h"
#include "drcnn/core/error.h"
#include "drcnn/ops/detail/math.h"

namespace drcnn::ops {

enum class BoxKind { Area, Iou, Iof, Encode, Decode, Clip, SmallMask, RoiLevel };

/// One box-op launch. n: index space (boxes, pairs, or rois x groups); m: second extent (M of
/// the overlaps, K groups of the decoder).
struct BoxLaunch {
  int64_t n = 0, m = 1;
  const void* a = nullptr;  // boxes / first set / proposals / rois
  const void* b = nullptr;  // second set / gt / deltas
  void* out = nullptr;      // dtype of a; uint8 for SmallMask; int64 for RoiLevel
  double means[4] = {0, 0, 0, 0};
  double stds[4] = {1, 1, 1, 1};
  bool clip = false;                // Decode: clip to (height, width)
  double height = 0, width = 0;     // Clip, Decode
  double max_ratio = 0;             // Decode: |ln(wh_ratio_clip)|
  double min_size = 0;              // SmallMask
  double finest_scale = 56;         // RoiLevel
  int64_t num_levels = 1;           // RoiLevel
  double level0 = 0;                // RoiLevel: added before the floor (maskrcnn-benchmark: 4)
  int64_t k_min = 0;                // RoiLevel: level of index 0 (maskrcnn-benchmark: 2)
  // maskrcnn-benchmark / Detectron boxes: widths x2 - x1 + 1 (Area, Iou, Iof, SmallMask,
  // RoiLevel), centres x1 + 0.5 w and x2 = centre + 0.5 w - 1 (Encode, Decode), dw/dh clamped
  // above only (Decode). Clipping to W - 1 is the caller's (height / width given less 1).
  bool legacy = false;
};

namespace cpu {
void box_op(BoxKind kind, DType dtype, const BoxLaunch& l);
}
namespace cuda {
void box_op(Stream s, BoxKind kind, DType dtype, const BoxLaunch& l);
}

namespace detail {
DRCNN_HD float box_log2(float x) { return ::log2f(x); }
DRCNN_HD double box_log2(double x) { return ::log2(x); }
DRCNN_HD float box_floor(float x) { return ::floorf(x); }
DRCNN_HD double box_floor(double x) { return ::floor(x); }

/// The one clipping rule (box_clip and box_decode): x to [0, w], y to [0, h]; NaN passes.
template <typename T>
DRCNN_HD void clip_box(T* b, T h, T w) {
  b[0] = hd::clamp(b[0], T(0), w);
  b[1] = hd::clamp(b[1], T(0), h);
  b[2] = hd::clamp(b[2], T(0), w);
  b[3] = hd::clamp(b[3], T(0), h);
}

template <typename T>
struct BoxAreaBody {
  const T* boxes;
  T* out;
  T off;  // 1 for legacy widths (adding 0 is exact: MMDetection's results are unchanged)
  DRCNN_HD void operator()(int64_t i) const {
    const T* p = boxes + 4 * i;
    out[i] = (p[2] - p[0] + off) * (p[3] - p[1] + off);
  }
};

/// a * b rounded on its own: nvcc would otherwise fuse it with a following add into an FMA
/// (--fmad=true) and the device result could differ from the host's in the last bit. NMS
/// needs CPU and CUDA IoUs to be bitwise equal (identical keep lists).
DRCNN_HD float box_mul(float a, float b) {
#if DRCNN_ON_DEVICE
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
DRCNN_HD double box_mul(double a, double b) {
#if DRCNN_ON_DEVICE
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}

/// IoU (iof = false) or IoF of boxes p and q (4 values each), mmdet bbox_overlaps: no +1,
/// denominator floored at 1e-6, so zero-area pairs give 0. Shared with NMS (nms_body.h), whose
/// keep lists must match torchvision's: the operation order is torchvision's nms
/// (inter / ((area_p + area_q) - inter)), and no multiply is contracted on either backend.
/// off = 1: maskrcnn-benchmark's boxlist_iou (+1 in every width and overlap, same order);
/// off = 0 adds an exact zero.
template <typename T>
DRCNN_HD T box_overlap(const T* p, const T* q, bool iof, T off = T(0)) {
  const T iw = hd::max(hd::min(p[2], q[2]) - hd::max(p[0], q[0]) + off, T(0));
  const T ih = hd::max(hd::min(p[3], q[3]) - hd::max(p[1], q[1]) + off, T(0));
  const T inter = box_mul(iw, ih);
  const T area_p = box_mul(p[2] - p[0] + off, p[3] - p[1] + off);
  T denom = area_p;
  if (!iof) denom = area_p + box_mul(q[2] - q[0] + off, q[3] - q[1] + off) - inter;
  return inter / hd::max(denom, T(1e-6));
}

/// out[i] for pair (i / M, i % M).
template <typename T>
struct BoxOverlapBody {
  const T* a;
  const T* b;
  T* out;
  int64_t M;
  bool iof;
  T off;
  DRCNN_HD void operator()(int64_t i) const { out[i] = box_overlap(a + 4 * (i / M), b + 4 * (i % M), iof, off); }
};

template <typename T>
struct BoxEncodeBody {
  const T* proposals;
  const T* gt;
  T* out;
  T means[4], stds[4];
  bool legacy;
  DRCNN_HD void operator()(int64_t i) const {
    const T* p = proposals + 4 * i;
    const T* g = gt + 4 * i;
    T px = (p[0] + p[2]) * T(0.5), py = (p[1] + p[3]) * T(0.5);
    T pw = p[2] - p[0], ph = p[3] - p[1];
    T gx = (g[0] + g[2]) * T(0.5), gy = (g[1] + g[3]) * T(0.5);
    T gw = g[2] - g[0], gh = g[3] - g[1];
    if (legacy) {  // maskrcnn-benchmark BoxCoder.encode (TO_REMOVE = 1)
      pw = p[2] - p[0] + T(1), ph = p[3] - p[1] + T(1);
      px = p[0] + T(0.5) * pw, py = p[1] + T(0.5) * ph;
      gw = g[2] - g[0] + T(1), gh = g[3] - g[1] + T(1);
      gx = g[0] + T(0.5) * gw, gy = g[1] + T(0.5) * gh;
    }
    const T d[4] = {(gx - px) / pw, (gy - py) / ph, hd::log(gw / pw), hd::log(gh / ph)};
    for (int k = 0; k < 4; ++k) out[4 * i + k] = (d[k] - means[k]) / stds[k];
  }
};

/// Index i = row * K + group: deltas and out are [N, 4K], rois [N, 4].
template <typename T>
struct BoxDecodeBody {
  const T* rois;
  const T* deltas;
  T* out;
  int64_t K;
  T means[4], stds[4];
  T max_ratio, height, width;
  bool clip;
  bool legacy;
  DRCNN_HD void operator()(int64_t i) const {
    const T* r = rois + 4 * (i / K);
    const T* d = deltas + 4 * i;
    const T dx = d[0] * stds[0] + means[0];
    const T dy = d[1] * stds[1] + means[1];
    // maskrcnn-benchmark clamps dw, dh above only (torch.clamp(max=)).
    const T dw_raw = d[2] * stds[2] + means[2], dh_raw = d[3] * stds[3] + means[3];
    const T dw = legacy ? hd::min(dw_raw, max_ratio) : hd::clamp(dw_raw, -max_ratio, max_ratio);
    const T dh = legacy ? hd::min(dh_raw, max_ratio) : hd::clamp(dh_raw, -max_ratio, max_ratio);
    T px = (r[0] + r[2]) * T(0.5), py = (r[1] + r[3]) * T(0.5);
    T pw = r[2] - r[0], ph = r[3] - r[1];
    if (legacy) {  // BoxCoder.decode: TO_REMOVE = 1, x2 = centre + 0.5 w - 1
      pw = r[2] - r[0] + T(1), ph = r[3] - r[1] + T(1);
      px = r[0] + T(0.5) * pw, py = r[1] + T(0.5) * ph;
    }
    const T gw = pw * hd::exp(dw), gh = ph * hd::exp(dh);
    const T gx = px + pw * dx, gy = py + ph * dy;
    const T end = legacy ? T(1) : T(0);
    T b[4] = {gx - gw * T(0.5), gy - gh * T(0.5), gx + gw * T(0.5) - end, gy + gh * T(0.5) - end};
    if (clip) clip_box(b, height, width);
    for (int k = 0; k < 4; ++k) out[4 * i + k] = b[k];
  }
};

template <typename T>
struct BoxClipBody {
  const T* boxes;
  T* out;
  T height, width;
  DRCNN_HD void operator()(int64_t i) const {
    T b[4] = {boxes[4 * i], boxes[4 * i + 1], boxes[4 * i + 2], boxes[4 * i + 3]};
    clip_box(b, height, width);
    for (int k = 0; k < 4; ++k) out[4 * i + k] = b[k];
  }
};

/// out[i] = 1 when both sides are >= min_size (false for NaN).
template <typename T>
struct SmallBoxMaskBody {
  const T* boxes;
  uint8_t* out;
  T min_size;
  T off;
  DRCNN_HD void operator()(int64_t i) const {
    const T* p = boxes + 4 * i;
    out[i] = (p[2] - p[0] + off >= min_size && p[3] - p[1] + off >= min_size) ? uint8_t(1) : uint8_t(0);
  }
};

template <typename T>
struct RoiLevelBody {
  const T* rois;  // [R, 5]: batch, x1, y1, x2, y2
  int64_t* out;
  T finest_scale;
  int64_t num_levels;
  T off, level0;
  int64_t k_min;
  DRCNN_HD void operator()(int64_t i) const {
    const T* r = rois + 5 * i;
    const T scale = hd::sqrt((r[3] - r[1] + off) * (r[4] - r[2] + off));
    // mmdet: floor(log2(s / 56 + 1e-6)) (level0 = k_min = 0: + 0 and - 0 are exact);
    // maskrcnn-benchmark LevelMapper: floor(4 + log2(s / 224 + 1e-6)) - 2.
    const T lvl = box_floor(level0 + box_log2(scale / finest_scale + T(1e-6))) - T(k_min);
    int64_t v = 0;  // NaN (negative area) and everything below 0 map to level 0
    if (lvl >= T(num_levels - 1)) v = num_levels - 1;
    else if (lvl > T(0)) v = static_cast<int64_t>(lvl);
    out[i] = v;
  }
};

/// The (kind, dtype) -> body switch, shared by both backends. launch(n, body).
template <typename Launch>
void run_box(BoxKind kind, DType dtype, const BoxLaunch& l, Launch&& launch) {
  dispatch_floating(dtype, "box_op", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* a = static_cast<const T*>(l.a);
    const T* b = static_cast<const T*>(l.b);
    T* out = static_cast<T*>(l.out);
    const T means[4] = {T(l.means[0]), T(l.means[1]), T(l.means[2]), T(l.means[3])};
    const T stds[4] = {T(l.stds[0]), T(l.stds[1]), T(l.stds[2]), T(l.stds[3])};
    const T off = l.legacy ? T(1) : T(0);
    switch (kind) {
      case BoxKind::Area: return launch(l.n, BoxAreaBody<T>{a, out, off});
      case BoxKind::Iou: return launch(l.n, BoxOverlapBody<T>{a, b, out, l.m, false, off});
      case BoxKind::Iof: return launch(l.n, BoxOverlapBody<T>{a, b, out, l.m, true, off});
      case BoxKind::Encode: {
        BoxEncodeBody<T> body{a, b, out, {}, {}, l.legacy};
        for (int k = 0; k < 4; ++k) body.means[k] = means[k], body.stds[k] = stds[k];
        return launch(l.n, body);
      }
      case BoxKind::Decode: {
        BoxDecodeBody<T> body{a, b, out, l.m, {}, {}, T(l.max_ratio), T(l.height), T(l.width), l.clip, l.legacy};
        for (int k = 0; k < 4; ++k) body.means[k] = means[k], body.stds[k] = stds[k];
        return launch(l.n, body);
      }
      case BoxKind::Clip: return launch(l.n, BoxClipBody<T>{a, out, T(l.height), T(l.width)});
      case BoxKind::SmallMask:
        return launch(l.n, SmallBoxMaskBody<T>{a, static_cast<uint8_t*>(l.out), T(l.min_size), off});
      case BoxKind::RoiLevel:
        return launch(l.n, RoiLevelBody<T>{a, static_cast<int64_t*>(l.out), T(l.finest_scale), l.num_levels, off,
                                           T(l.level0), l.k_min});
    }
  });
}
}  // namespace detail
}  // namespace drcnn::ops
