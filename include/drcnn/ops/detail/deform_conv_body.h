// Deformable convolution bodies (include/drcnn/ops/deform_conv.h), shared by
// kernels/cpu/deform_conv.cpp and kernels/cuda/deform_conv.cu; also declares those launchers
// (no CUDA types, no Tensor). The GEMMs around these steps run in the dispatcher
// (src/ops/deform_conv.cpp) through ops::matmul (Eigen on the CPU, cuBLAS on CUDA).
//
// Semantics of torchvision.ops.deform_conv2d. For image b, output pixel (oy, ox), kernel tap
// k = i * kw + j and input channel c of offset group og = c / (c_in / offset_groups):
//   y = oy * sh - ph + i * dh + offset[b, og * 2 kh kw + 2 k,     oy, ox]
//   x = ox * sw - pw + j * dw + offset[b, og * 2 kh kw + 2 k + 1, oy, ox]
//   m = mask[b, og * kh kw + k, oy, ox]   (1 without a mask: DCNv1)
//   col[b, (c * kh + i) * kw + j, oy * wo + ox] = m * bilinear(in[b, c], y, x)
// bilinear() is 0 when y <= -1, y >= h, x <= -1 or x >= w; otherwise the four corners
// floor(y) + {0, 1} x floor(x) + {0, 1} with weights (1 - ly, ly) x (1 - lx, lx), a corner
// outside the map reading 0. The column layout is conv_body.h's (rows grouped by channel).
//
// Steps (one DRCNN_HD body each; every body is one invocation per index):
//   DeformIm2ColBody        col from input, offset, mask           i over B * K * P (CUDA); row(r) over
//                                                                  B * K, P elements each (CPU), same values
//   DeformCol2ImAtomicBody  grad_input += the adjoint of bilinear  i over B * K * P (atomic adds, CUDA)
//   DeformCol2ImPlaneBody   the same, one (b, c) plane each,       i over B * c_in (plain adds, CPU:
//                           taps in (i, j, p) order)                deterministic for any thread count)
//   DeformCoordBody         grad_offset (y and x) and grad_mask    i over B * offset_groups * kh * kw * P
//                           of one sample, summed over its group's channels in order
// K = c_in * kh * kw, P = ho * wo. Tests: tests/ops/test_deform_conv.cpp.
#pragma once
#include <cmath>
#include <cstdint>

#include "drcnn/core/device.h"
#include "drcnn/ops/detail/atomic.h"
#include "drcnn/ops/detail/conv_body.h"
#include "drcnn/ops/detail/math.h"

namespace drcnn::ops {

/// One step of a deformable convolution on a chunk of `batch` images (the pointers point at
/// the chunk's first image). All arrays contiguous NCHW; a null mask means "no mask" (m = 1).
template <typename T>
struct DeformConvLaunch {
  Conv2dGeometry g;            // g.n is unused: `batch` images are processed
  int64_t batch = 0;
  int64_t offset_groups = 1;   // divides g.c_in
  const T* input = nullptr;    // [batch, c_in, h, w]
  const T* offset = nullptr;   // [batch, offset_groups * 2 * kh * kw, ho, wo]
  const T* mask = nullptr;     // [batch, offset_groups * kh * kw, ho, wo] or null
  T* col = nullptr;            // im2col output [batch, K, P]
  const T* grad_col = nullptr; // backward input [batch, K, P]
  T* grad_input = nullptr;     // [batch, c_in, h, w], zero-filled before the col2im step
  T* grad_offset = nullptr;    // [batch, offset_groups * 2 * kh * kw, ho, wo]
  T* grad_mask = nullptr;      // [batch, offset_groups * kh * kw, ho, wo] (ignored without a mask)
};

namespace cpu {
template <typename T> void deform_im2col(const DeformConvLaunch<T>& l);
/// grad_input += col2im of grad_col (deterministic, independent of the thread count).
template <typename T> void deform_col2im(const DeformConvLaunch<T>& l);
template <typename T> void deform_col2im_coord(const DeformConvLaunch<T>& l);
}  // namespace cpu
namespace cuda {
template <typename T> void deform_im2col(Stream s, const DeformConvLaunch<T>& l);
/// grad_input += col2im of grad_col (float atomics: the last bits may vary from run to run).
template <typename T> void deform_col2im(Stream s, const DeformConvLaunch<T>& l);
template <typename T> void deform_col2im_coord(Stream s, const DeformConvLaunch<T>& l);
}  // namespace cuda

namespace detail {

DRCNN_HD float deform_floor(float x) { return ::floorf(x); }
DRCNN_HD double deform_floor(double x) { return ::floor(x); }

/// Where tap k of output pixel p of image b samples for offset group og, and its mask.
template <typename T>
struct DeformSample {
  T y, x, m;
};

template <typename T>
DRCNN_HD DeformSample<T> deform_sample(const DeformConvLaunch<T>& l, int64_t b, int64_t og, int64_t k, int64_t p) {
  const Conv2dGeometry& g = l.g;
  const int64_t taps = g.kh * g.kw, P = g.p();
  const int64_t oy = p / g.wo, ox = p % g.wo, i = k / g.kw, j = k % g.kw;
  const T* off = l.offset + ((b * l.offset_groups + og) * 2 * taps + 2 * k) * P + p;
  DeformSample<T> s;
  s.y = T(oy * g.sh - g.ph + i * g.dh) + off[0];
  s.x = T(ox * g.sw - g.pw + j * g.dw) + off[P];
  s.m = l.mask ? l.mask[((b * l.offset_groups + og) * taps + k) * P + p] : T(1);
  return s;
}

/// The sample of column element idx (over batch * K * P) and its input plane b * c_in + c.
template <typename T>
DRCNN_HD DeformSample<T> deform_column_sample(const DeformConvLaunch<T>& l, int64_t idx, int64_t& plane) {
  const Conv2dGeometry& g = l.g;
  const int64_t P = g.p(), taps = g.kh * g.kw;
  const int64_t p = idx % P, r = (idx / P) % g.k_all(), b = idx / (P * g.k_all());
  const int64_t c = r / taps;
  plane = b * g.c_in + c;
  return deform_sample(l, b, c / (g.c_in / l.offset_groups), r % taps, p);
}

/// The bilinear cell of a sample: corner (y0 + a, x0 + c) has weight wy[a] * wx[c] and is read
/// when ok_y[a] && ok_x[c]. valid is false when the sample lies outside (-1, h) x (-1, w).
template <typename T>
struct DeformCell {
  bool valid;
  int64_t y0, x0;
  T ly, lx;
  bool ok_y[2], ok_x[2];
};

template <typename T>
DRCNN_HD DeformCell<T> deform_cell(T y, T x, int64_t h, int64_t w) {
  DeformCell<T> c;
  c.valid = !(y <= T(-1) || y >= T(h) || x <= T(-1) || x >= T(w));
  if (!c.valid) {  // y, x may be huge or NaN: never converted
    c.y0 = c.x0 = 0;
    c.ly = c.lx = T(0);
    c.ok_y[0] = c.ok_y[1] = c.ok_x[0] = c.ok_x[1] = false;
    return c;
  }
  const T fy = deform_floor(y), fx = deform_floor(x);
  c.y0 = int64_t(fy);
  c.x0 = int64_t(fx);
  c.ly = y - fy;
  c.lx = x - fx;
  c.ok_y[0] = c.y0 >= 0;
  c.ok_y[1] = c.y0 + 1 <= h - 1;
  c.ok_x[0] = c.x0 >= 0;
  c.ok_x[1] = c.x0 + 1 <= w - 1;
  return c;
}

/// The four corner values (0 outside the map) of a valid cell: v[a][c] at (y0 + a, x0 + c).
template <typename T>
DRCNN_HD void deform_corners(const T* plane, int64_t w, const DeformCell<T>& c, T v[2][2]) {
  for (int a = 0; a < 2; ++a)
    for (int d = 0; d < 2; ++d)
      v[a][d] = (c.ok_y[a] && c.ok_x[d]) ? plane[(c.y0 + a) * w + c.x0 + d] : T(0);
}

/// bilinear(plane, y, x) of the file comment (torchvision's bilinear_interpolate).
template <typename T>
DRCNN_HD T deform_bilinear(const T* plane, int64_t h, int64_t w, T y, T x) {
  const DeformCell<T> c = deform_cell(y, x, h, w);
  if (!c.valid) return T(0);
  T v[2][2];
  deform_corners(plane, w, c, v);
  const T hy = T(1) - c.ly, hx = T(1) - c.lx;
  return hy * hx * v[0][0] + hy * c.lx * v[0][1] + c.ly * hx * v[1][0] + c.ly * c.lx * v[1][1];
}

/// im2col: one column element.
template <typename T>
struct DeformIm2ColBody {
  DeformConvLaunch<T> l;

  DRCNN_HD void operator()(int64_t idx) const {
    int64_t plane = 0;
    const DeformSample<T> s = deform_column_sample(l, idx, plane);
    l.col[idx] = s.m * deform_bilinear(l.input + plane * l.g.h * l.g.w, l.g.h, l.g.w, s.y, s.x);
  }

  /// One column row (b, c, k): its P elements, the same values as operator() (the same
  /// T(base) + offset sums and bilinear arithmetic) without the per-element index divisions.
  /// row over batch * K (the CPU launcher's form).
  DRCNN_HD void row(int64_t r) const {
    const Conv2dGeometry& g = l.g;
    const int64_t P = g.p(), taps = g.kh * g.kw;
    const int64_t k = r % taps, c = (r / taps) % g.c_in, b = r / g.k_all();
    const int64_t og = c / (g.c_in / l.offset_groups), i = k / g.kw, j = k % g.kw;
    const T* plane = l.input + (b * g.c_in + c) * g.h * g.w;
    const T* off_y = l.offset + ((b * l.offset_groups + og) * 2 * taps + 2 * k) * P;
    const T* off_x = off_y + P;
    const T* mask = l.mask ? l.mask + ((b * l.offset_groups + og) * taps + k) * P : nullptr;
    T* dst = l.col + r * P;
    for (int64_t oy = 0, p = 0; oy < g.ho; ++oy) {
      const T base_y = T(oy * g.sh - g.ph + i * g.dh);
      for (int64_t ox = 0; ox < g.wo; ++ox, ++p) {
        const T y = base_y + off_y[p], x = T(ox * g.sw - g.pw + j * g.dw) + off_x[p];
        dst[p] = (mask ? mask[p] : T(1)) * deform_bilinear(plane, g.h, g.w, y, x);
      }
    }
  }
};

/// Adds value * (bilinear weight) to each in-map corner of the sample (y, x): the adjoint of
/// deform_bilinear. add(pointer, amount) is a plain or an atomic add.
template <typename T, typename Add>
DRCNN_HD void deform_scatter(T* plane, int64_t h, int64_t w, T y, T x, T value, const Add& add) {
  const DeformCell<T> c = deform_cell(y, x, h, w);
  if (!c.valid) return;
  const T wy[2] = {T(1) - c.ly, c.ly}, wx[2] = {T(1) - c.lx, c.lx};
  for (int a = 0; a < 2; ++a)
    for (int d = 0; d < 2; ++d)
      if (c.ok_y[a] && c.ok_x[d]) add(plane + (c.y0 + a) * w + c.x0 + d, wy[a] * wx[d] * value);
}

struct PlainAdd {
  template <typename T> DRCNN_HD void operator()(T* p, T v) const { *p += v; }
};
struct AtomicAdd {
  template <typename T> DRCNN_HD void operator()(T* p, T v) const { atomic_add(p, v); }
};

/// col2im, one grad_col element per invocation (atomic adds).
template <typename T>
struct DeformCol2ImAtomicBody {
  DeformConvLaunch<T> l;

  DRCNN_HD void operator()(int64_t idx) const {
    int64_t plane = 0;
    const DeformSample<T> s = deform_column_sample(l, idx, plane);
    deform_scatter(l.grad_input + plane * l.g.h * l.g.w, l.g.h, l.g.w, s.y, s.x, s.m * l.grad_col[idx], AtomicAdd{});
  }
};

/// col2im, one (b, c) input plane per invocation: its taps k, then pixels p, in order.
template <typename T>
struct DeformCol2ImPlaneBody {
  DeformConvLaunch<T> l;

  DRCNN_HD void operator()(int64_t idx) const {
    const Conv2dGeometry& g = l.g;
    const int64_t P = g.p(), taps = g.kh * g.kw;
    const int64_t c = idx % g.c_in, b = idx / g.c_in, og = c / (g.c_in / l.offset_groups);
    T* plane = l.grad_input + idx * g.h * g.w;
    const T* gc = l.grad_col + (b * g.k_all() + c * taps) * P;
    for (int64_t k = 0; k < taps; ++k)
      for (int64_t p = 0; p < P; ++p) {
        const DeformSample<T> s = deform_sample(l, b, og, k, p);
        deform_scatter(plane, g.h, g.w, s.y, s.x, s.m * gc[k * P + p], PlainAdd{});
      }
  }
};

/// Offset and mask gradients of one sample (b, og, k, p): with gc = grad_col of channel c,
///   grad_offset_y = sum_c m * gc * d bilinear / dy,  grad_offset_x likewise with d / dx,
///   grad_mask     = sum_c gc * bilinear
/// over the channels c of offset group og in order. The derivatives are those of the bilinear
/// form on the cell floor(y), floor(x) (torchvision's get_coordinate_weight); outside the map
/// all three are 0.
template <typename T>
struct DeformCoordBody {
  DeformConvLaunch<T> l;

  DRCNN_HD void operator()(int64_t idx) const {
    const Conv2dGeometry& g = l.g;
    const int64_t P = g.p(), taps = g.kh * g.kw;
    const int64_t p = idx % P, k = (idx / P) % taps, og = (idx / (P * taps)) % l.offset_groups,
                  b = idx / (P * taps * l.offset_groups);
    const DeformSample<T> s = deform_sample(l, b, og, k, p);
    const DeformCell<T> cell = deform_cell(s.y, s.x, g.h, g.w);
    const int64_t cpg = g.c_in / l.offset_groups;
    T gy = T(0), gx = T(0), gm = T(0);
    if (cell.valid) {
      const T hy = T(1) - cell.ly, hx = T(1) - cell.lx;
      for (int64_t ci = 0; ci < cpg; ++ci) {
        const int64_t c = og * cpg + ci;
        const T gc = l.grad_col[(b * g.k_all() + c * taps + k) * P + p];
        T v[2][2];
        deform_corners(l.input + (b * g.c_in + c) * g.h * g.w, g.w, cell, v);
        gy += s.m * gc * (cell.lx * (v[1][1] - v[0][1]) + hx * (v[1][0] - v[0][0]));
        gx += s.m * gc * (cell.ly * (v[1][1] - v[1][0]) + hy * (v[0][1] - v[0][0]));
        gm += gc * (hy * hx * v[0][0] + hy * cell.lx * v[0][1] + cell.ly * hx * v[1][0] + cell.ly * cell.lx * v[1][1]);
      }
    }
    const int64_t base = (b * l.offset_groups + og) * taps;
    l.grad_offset[((base + k) * 2) * P + p] = gy;
    l.grad_offset[((base + k) * 2 + 1) * P + p] = gx;
    if (l.mask) l.grad_mask[(base + k) * P + p] = gm;
  }
};
}  // namespace detail
}  // namespace drcnn::ops
