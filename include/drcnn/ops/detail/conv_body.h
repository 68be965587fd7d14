// conv2d bodies (include/drcnn/ops/conv.h): im2col and its adjoint col2im for NCHW images,
// plus the geometry struct and the backend launchers' declarations (no CUDA types).
//
// Column matrix of a chunk of B images: col[b, r, p] with r = (c * kh + i) * kw + j over all
// input channels c (so group g's rows are [g * k_g, (g + 1) * k_g)) and p = oy * wo + ox:
//   col[b, r, p] = in[b, c, oy * sh - ph + i * dh, ox * sw - pw + j * dw]   (0 outside).
//
// Each body comes in two forms computing bitwise the same values:
// - operator()(i): one element (the index space a CUDA grid would use);
// - row(r): one row of wo (im2col) or w (col2im) contiguous outputs, for the CPU, where the
//   index arithmetic of the per-element form would cost more than the copy itself.
// col2im is the gather form: each input cell sums its (i, j) contributions in that fixed
// order from 0, and is written by exactly one invocation (no atomics, deterministic).
// tests/ops/test_conv.cpp checks both forms against each other and the float64 reference.
#pragma once
#include <cstdint>

#include "drcnn/core/device.h"
#include "drcnn/core/macros.h"

namespace drcnn::ops {

/// Every extent of one convolution, validated by conv2d_geometry() (ops/conv.h). Output size
/// per PyTorch: ho = (h + 2 ph - dh (kh - 1) - 1) / sh + 1 (floor division), same for wo.
struct Conv2dGeometry {
  int64_t n = 0, c_in = 0, h = 0, w = 0;  // input [n, c_in, h, w]
  int64_t c_out = 0, kh = 0, kw = 0;      // weight [c_out, c_in / groups, kh, kw]
  int64_t ho = 0, wo = 0;                 // output [n, c_out, ho, wo]
  int64_t sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1, groups = 1;

  DRCNN_HD int64_t cin_g() const { return c_in / groups; }
  DRCNN_HD int64_t cout_g() const { return c_out / groups; }
  /// Rows of one group's column matrix: cin_g * kh * kw.
  DRCNN_HD int64_t k_g() const { return cin_g() * kh * kw; }
  /// Rows of one image's column matrix (all groups): c_in * kh * kw.
  DRCNN_HD int64_t k_all() const { return c_in * kh * kw; }
  /// Output pixels per image (columns of the column matrix).
  DRCNN_HD int64_t p() const { return ho * wo; }
  /// 1x1, stride 1, no padding: the input image already is the column matrix.
  DRCNN_HD bool is_pointwise() const { return kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0; }
  /// Multiply-adds of the forward pass (one backward pass for input and weight costs twice that).
  DRCNN_HD int64_t macs() const { return n * c_out * ho * wo * k_g(); }
};

/// Forward launch: contiguous NCHW input, weight [c_out, cin_g, kh, kw], bias [c_out] or null.
template <typename T>
struct Conv2dForwardLaunch {
  Conv2dGeometry g;
  const T* input = nullptr;
  const T* weight = nullptr;
  const T* bias = nullptr;
  T* out = nullptr;
  void* save = nullptr;  // a Conv2dSaved* (ops/conv.h) the CPU's oneDNN path may fill, or null
};

/// Backward launch: a null output pointer means "not requested".
template <typename T>
struct Conv2dBackwardLaunch {
  Conv2dGeometry g;
  const T* grad_out = nullptr;
  const T* input = nullptr;
  const T* weight = nullptr;
  T* grad_input = nullptr;
  T* grad_weight = nullptr;
  T* grad_bias = nullptr;
  const void* saved = nullptr;  // what the forward saved (Conv2dSaved::get()), or null
};

namespace cpu {
template <typename T> void conv2d_forward(const Conv2dForwardLaunch<T>& l);
template <typename T> void conv2d_backward(const Conv2dBackwardLaunch<T>& l);
}  // namespace cpu
namespace cuda {
template <typename T> void conv2d_forward(Stream s, const Conv2dForwardLaunch<T>& l);
template <typename T> void conv2d_backward(Stream s, const Conv2dBackwardLaunch<T>& l);
}  // namespace cuda

namespace detail {

/// First and one-past-last output index o in [0, out) with 0 <= o * stride + offset < extent.
/// Returns lo == hi when there is none.
DRCNN_HD void conv_valid_range(int64_t offset, int64_t stride, int64_t extent, int64_t out, int64_t& lo,
                               int64_t& hi) {
  lo = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
  hi = extent - offset > 0 ? (extent - offset + stride - 1) / stride : 0;
  if (hi > out) hi = out;
  if (lo > hi) lo = hi;
}

/// im2col of B images: in [B, c_in, h, w] -> col [B, k_all, ho * wo].
template <typename T>
struct Im2Col {
  Conv2dGeometry g;
  const T* in;
  T* col;

  /// One element; i over B * k_all * ho * wo.
  DRCNN_HD void operator()(int64_t i) const {
    const int64_t ox = i % g.wo, oy = (i / g.wo) % g.ho, r = (i / g.p()) % g.k_all(), b = i / (g.p() * g.k_all());
    const int64_t j = r % g.kw, ki = (r / g.kw) % g.kh, c = r / (g.kw * g.kh);
    const int64_t iy = oy * g.sh - g.ph + ki * g.dh, ix = ox * g.sw - g.pw + j * g.dw;
    col[i] = (iy >= 0 && iy < g.h && ix >= 0 && ix < g.w) ? in[((b * g.c_in + c) * g.h + iy) * g.w + ix] : T(0);
  }

  /// One row of wo outputs; r over B * k_all * ho (same values as operator()).
  DRCNN_HD void row(int64_t r) const {
    const int64_t oy = r % g.ho, rr = (r / g.ho) % g.k_all(), b = r / (g.ho * g.k_all());
    const int64_t j = rr % g.kw, ki = (rr / g.kw) % g.kh, c = rr / (g.kw * g.kh);
    T* dst = col + r * g.wo;
    const int64_t iy = oy * g.sh - g.ph + ki * g.dh;
    if (iy < 0 || iy >= g.h) {
      for (int64_t x = 0; x < g.wo; ++x) dst[x] = T(0);
      return;
    }
    const T* src = in + ((b * g.c_in + c) * g.h + iy) * g.w;
    const int64_t off = j * g.dw - g.pw;
    int64_t lo = 0, hi = 0;
    conv_valid_range(off, g.sw, g.w, g.wo, lo, hi);
    for (int64_t x = 0; x < lo; ++x) dst[x] = T(0);
    if (g.sw == 1) {
      for (int64_t x = lo; x < hi; ++x) dst[x] = src[x + off];
    } else {
      for (int64_t x = lo; x < hi; ++x) dst[x] = src[x * g.sw + off];
    }
    for (int64_t x = hi; x < g.wo; ++x) dst[x] = T(0);
  }
};

/// col2im (gather): col [B, k_all, ho * wo] -> in_grad [B, c_in, h, w], every cell the sum of
/// the column entries that im2col copied from it, in (i, j) order starting from 0.
template <typename T>
struct Col2Im {
  Conv2dGeometry g;
  const T* col;
  T* out;

  /// One element; i over B * c_in * h * w.
  DRCNN_HD void operator()(int64_t i) const {
    const int64_t x = i % g.w, y = (i / g.w) % g.h, c = (i / (g.w * g.h)) % g.c_in, b = i / (g.w * g.h * g.c_in);
    T s = T(0);
    for (int64_t ki = 0; ki < g.kh; ++ki) {
      const int64_t ty = y + g.ph - ki * g.dh;
      if (ty < 0 || ty % g.sh != 0 || ty / g.sh >= g.ho) continue;
      const int64_t oy = ty / g.sh;
      for (int64_t j = 0; j < g.kw; ++j) {
        const int64_t tx = x + g.pw - j * g.dw;
        if (tx < 0 || tx % g.sw != 0 || tx / g.sw >= g.wo) continue;
        s += col[((b * g.k_all() + (c * g.kh + ki) * g.kw + j) * g.ho + oy) * g.wo + tx / g.sw];
      }
    }
    out[i] = s;
  }

  /// One row of w outputs; r over B * c_in * h (same values as operator()).
  DRCNN_HD void row(int64_t r) const {
    const int64_t y = r % g.h, c = (r / g.h) % g.c_in, b = r / (g.h * g.c_in);
    T* dst = out + r * g.w;
    for (int64_t x = 0; x < g.w; ++x) dst[x] = T(0);
    for (int64_t ki = 0; ki < g.kh; ++ki) {
      const int64_t ty = y + g.ph - ki * g.dh;
      if (ty < 0 || ty % g.sh != 0 || ty / g.sh >= g.ho) continue;
      const int64_t oy = ty / g.sh;
      for (int64_t j = 0; j < g.kw; ++j) {
        const T* src = col + ((b * g.k_all() + (c * g.kh + ki) * g.kw + j) * g.ho + oy) * g.wo;
        // Output column ox reads input x = ox * sw + off.
        const int64_t off = j * g.dw - g.pw;
        int64_t lo = 0, hi = 0;
        conv_valid_range(off, g.sw, g.w, g.wo, lo, hi);
        if (g.sw == 1) {
          for (int64_t ox = lo; ox < hi; ++ox) dst[ox + off] += src[ox];
        } else {
          for (int64_t ox = lo; ox < hi; ++ox) dst[ox * g.sw + off] += src[ox];
        }
      }
    }
  }
};
}  // namespace detail
}  // namespace drcnn::ops
