// Bodies of the layer ops (include/drcnn/ops/nn.h): max pooling, nearest upsampling and the
// normalisations (frozen BN, BN, GN), shared by kernels/cpu/nn.cpp and kernels/cuda/nn.cu
// through run_nn(). Every operand is contiguous NCHW (the dispatcher makes it so). Also
// declares the backend launchers (no CUDA types).
//
// Determinism: no body uses atomics. The backward passes of pooling and upsampling are gather
// forms (one invocation per input element sums the output gradients that map to it, in a fixed
// order), and every reduction of the norms sums fixed chunks of kNormChunk elements into
// double partials and then the partials in order, so results do not depend on the thread
// count. The CPU sums each chunk serially; CUDA gives each chunk a warp whose lanes stride
// through it (coalesced) and adds the lanes in a fixed shuffle order (NormPartialBody::
// lane_sums, norm_lane_tree): deterministic too, but the chunk's double sum is rounded in
// another order than the CPU's (and nvcc may contract a*b+c into an FMA elsewhere).
// Tests: tests/ops/test_nn.cpp (CPU), tests/cuda/test_cuda_nn.cpp (parity).
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "drcnn/core/device.h"
#include "drcnn/core/dtype.h"
#include "drcnn/core/error.h"
#include "drcnn/ops/detail/math.h"

namespace drcnn::ops {

/// Elements of one reduction segment each partial-sum invocation covers (fixed: results must
/// not depend on the thread count or the backend).
inline constexpr int64_t kNormChunk = 1024;

enum class NnKind {
  MaxPoolForward,    // n = NC * OH * OW
  MaxPoolBackward,   // n = NC * H * W (gather)
  UpsampleForward,   // n = NC * OH * OW
  UpsampleBackward,  // n = NC * H * W (gather)
  ChannelAffine,     // n = numel: y = x * A[s] + B[s]
  NormBackward,      // n = numel: dx = g * A[s] + (x - M[s]) * Bc[s] + C[s]
  NormPartial,       // n = Q * K: double partial sums of one chunk of one segment
  AffineCoef,        // n = C: A = w / sqrt(var + eps), B = b - mean * A (frozen BN, BN eval)
  BnTrainMean,       // n = C: mean from the first pass's partials
  BnTrainStats,      // n = C: var, invstd, A, B, running-stat update from the second pass
  BnBackwardCoef,    // n = C: dw, db and the dx coefficients of BN
  GnMean,            // n = N * G
  GnRstd,            // n = N * G
  GnForwardCoef,     // n = N * C
  GnBackwardCoef,    // n = N * C
  GnWeightGrad,      // n = C
};

/// Geometry of a pooling or upsampling launch (input H x W, output OH x OW per plane).
struct PoolGeometry {
  int64_t H = 0, W = 0, OH = 0, OW = 0;
  int64_t kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1;
};

/// One launch of a layer-op body (dtype-erased; which fields matter depends on the kind).
/// Pointers named like the math: x input, y output, g output gradient, A/B/C/M per-segment
/// coefficients (dtype of x), p0/p1 double partials, idx int64 pooling indices.
struct NnLaunch {
  int64_t n = 0;
  PoolGeometry geo;
  const void* x = nullptr;
  const void* g = nullptr;
  void* y = nullptr;
  int64_t* idx = nullptr;
  const int64_t* cidx = nullptr;
  // Per-segment coefficients. seg(i) = (i / inner) % mod.
  void* A = nullptr;
  void* B = nullptr;
  void* C = nullptr;
  void* M = nullptr;
  int64_t inner = 1, mod = 1;
  // Segmented reduction: segment q covers elements q * seg_stride + (j / seg_inner) * outer_stride
  // + j % seg_inner for j in [0, L); K = ceil(L / kNormChunk) partials per segment; the shift
  // m (M, may be null) of segment q is M[q / m_div].
  int64_t Q = 0, L = 0, K = 0, seg_stride = 0, seg_inner = 1, outer_stride = 0, m_div = 1;
  double* p0 = nullptr;
  double* p1 = nullptr;
  // Norm parameters (dtype of x; any may be null where documented).
  const void* weight = nullptr;
  const void* bias = nullptr;
  void* running_mean = nullptr;
  void* running_var = nullptr;
  void* save_mean = nullptr;
  void* save_invstd = nullptr;
  void* dweight = nullptr;
  void* dbias = nullptr;
  double eps = 0, momentum = 0;
  bool training = false;
  int64_t N = 0, Cn = 0, G = 0, HW = 0;
};

namespace cpu {
void nn_op(NnKind kind, DType dtype, const NnLaunch& l);
}
namespace cuda {
void nn_op(Stream s, NnKind kind, DType dtype, const NnLaunch& l);
}

namespace detail {

DRCNN_HD float nn_floor(float v) { return ::floorf(v); }
DRCNN_HD double nn_floor(double v) { return ::floor(v); }

// ------------------------------------------------------------------------------- max pool
/// One output element (plane, oh, ow). PyTorch's scan: the window starts at oh * sh - ph,
/// rows below 0 are skipped in steps of the dilation (padding acts as -inf), the index starts
/// at the first in-range position, and an element replaces the max when it is greater or NaN
/// (so ties keep the first index in row-major scan order, and the LAST NaN wins, as in
/// aten's max_pool2d kernels). indices are offsets h * W + w within the plane.
template <typename T>
struct MaxPoolForwardBody {
  const T* x;
  T* y;
  int64_t* idx;
  PoolGeometry p;
  DRCNN_HD void operator()(int64_t i) const { at(i / p.OW, i % p.OW); }
  /// Output row r = plane * OH + oh at once (the CPU's launch: no division per element).
  DRCNN_HD void row(int64_t r) const {
    for (int64_t ow = 0; ow < p.OW; ++ow) at(r, ow);
  }
  DRCNN_HD void at(int64_t r, int64_t ow) const {
    const int64_t i = r * p.OW + ow, oh = r % p.OH, plane = r / p.OH;
    int64_t h0 = oh * p.sh - p.ph, w0 = ow * p.sw - p.pw;
    const int64_t h1 = hd::min(h0 + (p.kh - 1) * p.dh + 1, p.H), w1 = hd::min(w0 + (p.kw - 1) * p.dw + 1, p.W);
    while (h0 < 0) h0 += p.dh;
    while (w0 < 0) w0 += p.dw;
    const T* src = x + plane * p.H * p.W;
    int64_t best = h0 * p.W + w0;
    T m = -INFINITY;
    for (int64_t h = h0; h < h1; h += p.dh)
      for (int64_t w = w0; w < w1; w += p.dw) {
        const T v = src[h * p.W + w];
        if (v > m || hd::isnan(v)) {
          m = v;
          best = h * p.W + w;
        }
      }
    y[i] = m;
    idx[i] = best;
  }
};

/// One input element (plane, h, w): sums the gradients of the outputs whose recorded index is
/// h * W + w. Only outputs whose window can contain (h, w) are visited: oh with
/// oh * sh - ph + k * dh == h for some k in [0, kh). Indices must come from MaxPoolForwardBody
/// with the same geometry (an index outside its own window is never matched).
template <typename T>
struct MaxPoolBackwardBody {
  const T* g;
  const int64_t* idx;
  T* dx;
  PoolGeometry p;
  /// First and one-past-last output position whose window (start o * s - pad, extent
  /// (k - 1) * d + 1) covers input position v.
  static DRCNN_HD void out_range(int64_t v, int64_t s, int64_t pad, int64_t k, int64_t d, int64_t out, int64_t& lo,
                                 int64_t& hi) {
    const int64_t num = v + pad - (k - 1) * d;  // o * s >= num
    lo = num <= 0 ? 0 : (num + s - 1) / s;
    hi = hd::min((v + pad) / s + 1, out);  // o * s <= v + pad
  }
  DRCNN_HD void operator()(int64_t i) const { at(i / p.W, i % p.W); }
  /// Input row r = plane * H + h at once (the CPU's launch).
  DRCNN_HD void row(int64_t r) const {
    for (int64_t w = 0; w < p.W; ++w) at(r, w);
  }
  DRCNN_HD void at(int64_t r, int64_t w) const {
    const int64_t i = r * p.W + w, h = r % p.H, plane = r / p.H;
    int64_t oh0, oh1, ow0, ow1;
    out_range(h, p.sh, p.ph, p.kh, p.dh, p.OH, oh0, oh1);
    out_range(w, p.sw, p.pw, p.kw, p.dw, p.OW, ow0, ow1);
    const int64_t target = h * p.W + w, base = plane * p.OH * p.OW;
    T acc = T(0);
    for (int64_t oh = oh0; oh < oh1; ++oh)
      for (int64_t ow = ow0; ow < ow1; ++ow) {
        const int64_t o = base + oh * p.OW + ow;
        if (idx[o] == target) acc += g[o];
      }
    dx[i] = acc;
  }
};

// ------------------------------------------------------------------------------- upsample
/// PyTorch's nearest source index (aten UpSample.h nearest_idx, no scale factor given):
/// equal sizes map identically, an exact 2x uses dst >> 1, otherwise scale = float(in) / out
/// in float and src = min(floor(dst * scale), in - 1), all in float, as aten does on CPU and CUDA.
DRCNN_HD int64_t nearest_source_index(int64_t dst, int64_t in, int64_t out) {
  if (out == in) return dst;
  if (out == 2 * in) return dst >> 1;
  const float scale = float(in) / float(out);
  const int64_t s = static_cast<int64_t>(::floorf(float(dst) * scale));
  return s < in - 1 ? s : in - 1;
}

/// [first, last) output positions whose source index is v (the map is non-decreasing in dst).
/// Starts from the exact-arithmetic guess and walks to the float map's boundaries.
DRCNN_HD void nearest_dest_range(int64_t v, int64_t in, int64_t out, int64_t& lo, int64_t& hi) {
  lo = hd::min(v * out / in, out);
  while (lo > 0 && nearest_source_index(lo - 1, in, out) >= v) --lo;
  while (lo < out && nearest_source_index(lo, in, out) < v) ++lo;
  hi = lo;
  while (hi < out && nearest_source_index(hi, in, out) == v) ++hi;
}

template <typename T>
struct UpsampleForwardBody {
  const T* x;
  T* y;
  PoolGeometry p;
  DRCNN_HD void operator()(int64_t i) const {
    const int64_t ow = i % p.OW, oh = (i / p.OW) % p.OH, plane = i / (p.OW * p.OH);
    const int64_t h = nearest_source_index(oh, p.H, p.OH), w = nearest_source_index(ow, p.W, p.OW);
    y[i] = x[(plane * p.H + h) * p.W + w];
  }
  /// Output row r = plane * OH + oh at once (the CPU's launch): the source row once.
  DRCNN_HD void row(int64_t r) const {
    const int64_t oh = r % p.OH, plane = r / p.OH;
    const T* src = x + (plane * p.H + nearest_source_index(oh, p.H, p.OH)) * p.W;
    for (int64_t ow = 0; ow < p.OW; ++ow) y[r * p.OW + ow] = src[nearest_source_index(ow, p.W, p.OW)];
  }
};

/// One input element: the sum of the output gradients copied from it, rows then columns in
/// increasing order.
template <typename T>
struct UpsampleBackwardBody {
  const T* g;
  T* dx;
  PoolGeometry p;
  DRCNN_HD void operator()(int64_t i) const { at(i / p.W, i % p.W); }
  /// Input row r = plane * H + h at once (the CPU's launch).
  DRCNN_HD void row(int64_t r) const {
    for (int64_t w = 0; w < p.W; ++w) at(r, w);
  }
  DRCNN_HD void at(int64_t r, int64_t w) const {
    const int64_t i = r * p.W + w, h = r % p.H, plane = r / p.H;
    int64_t oh0, oh1, ow0, ow1;
    nearest_dest_range(h, p.H, p.OH, oh0, oh1);
    nearest_dest_range(w, p.W, p.OW, ow0, ow1);
    T acc = T(0);
    for (int64_t oh = oh0; oh < oh1; ++oh)
      for (int64_t ow = ow0; ow < ow1; ++ow) acc += g[(plane * p.OH + oh) * p.OW + ow];
    dx[i] = acc;
  }
};

// ------------------------------------------------------------------------------- norms
/// y = x * A[s] + B[s] with s = (i / inner) % mod (B may be null: y = x * A[s]). Frozen BN,
/// BN and GN forwards, and dx of frozen BN and of BN in eval mode.
template <typename T>
struct ChannelAffineBody {
  const T* x;
  T* y;
  const T* A;
  const T* B;
  int64_t inner, mod;
  DRCNN_HD void operator()(int64_t i) const {
    const int64_t s = (i / inner) % mod;
    y[i] = B ? x[i] * A[s] + B[s] : x[i] * A[s];
  }
  /// The same math over row r (elements [r * inner, (r + 1) * inner), one segment): the CPU's
  /// launch, without a division per element, so the inner loop vectorises.
  DRCNN_HD void row(int64_t r) const {
    const int64_t s = r % mod, o = r * inner;
    const T a = A[s];
    if (B) {
      const T b = B[s];
      for (int64_t j = o; j < o + inner; ++j) y[j] = x[j] * a + b;
    } else {
      for (int64_t j = o; j < o + inner; ++j) y[j] = x[j] * a;
    }
  }
};

/// dx = g * A[s] + (x - M[s]) * Bc[s] + C[s], s = (i / inner) % mod: the input gradient of BN
/// (training) and GN in a centred form (no x * B + C cancellation for large means).
template <typename T>
struct NormBackwardBody {
  const T* g;
  const T* x;
  T* dx;
  const T* A;
  const T* Bc;
  const T* C;
  const T* M;
  int64_t inner, mod;
  DRCNN_HD void operator()(int64_t i) const {
    const int64_t s = (i / inner) % mod;
    dx[i] = g[i] * A[s] + (x[i] - M[s]) * Bc[s] + C[s];
  }
  /// Row r at once (see ChannelAffineBody::row).
  DRCNN_HD void row(int64_t r) const {
    const int64_t s = r % mod, o = r * inner;
    const T a = A[s], m = M[s], b = Bc[s], c = C[s];
    for (int64_t j = o; j < o + inner; ++j) dx[j] = g[j] * a + (x[j] - m) * b + c;
  }
};

/// Lanes of the CUDA warp that sums one chunk of a NormPartialBody.
inline constexpr int kNormLanes = 32;

/// Partial sums of one chunk k of segment q (i = q * K + k), accumulated in double:
/// with g null, p0 = sum(d) and p1 = sum(d^2); with g, p0 = sum(g) and p1 = sum(g * d); where
/// d = x - M[q / m_div] (M null: d = x).
template <typename T>
struct NormPartialBody {
  const T* x;
  const T* g;
  const T* M;
  double* p0;
  double* p1;
  int64_t K, L, seg_stride, seg_inner, outer_stride, m_div;
  DRCNN_HD void operator()(int64_t i) const {
    const int64_t q = i / K, k = i % K;
    const int64_t j0 = k * kNormChunk, j1 = hd::min(j0 + kNormChunk, L);
    const double m = M ? double(M[q / m_div]) : 0.0;
    // Walk (outer, inner) incrementally: no division per element.
    int64_t outer = j0 / seg_inner, in = j0 % seg_inner;
    double s0 = 0, s1 = 0;
    for (int64_t j = j0; j < j1; ++j) {
      const int64_t o = q * seg_stride + outer * outer_stride + in;
      const double d = double(x[o]) - m;
      const double a = g ? double(g[o]) : d;
      s0 += a;
      s1 += a * d;
      if (++in == seg_inner) in = 0, ++outer;
    }
    p0[i] = s0;
    p1[i] = s1;
  }

  /// The CUDA form (kernels/cuda/nn.cu: one warp per chunk): lane `lane` of kNormLanes sums
  /// the elements j0 + lane, j0 + lane + kNormLanes, ... of chunk i, so consecutive lanes read
  /// consecutive addresses; the lanes' sums are then added in norm_lane_tree's fixed order.
  /// Products are rounded before the add (hd::add_mul_rn), so the device and the host
  /// emulation (norm_partial_warp_host) give the same bits. The chunk's sum differs from the
  /// serial operator()'s only by the order of its (double) additions.
  DRCNN_HD void lane_sums(int64_t i, int lane, double& s0, double& s1) const {
    const int64_t q = i / K, k = i % K;
    const int64_t j0 = k * kNormChunk + lane, j1 = hd::min(k * kNormChunk + kNormChunk, L);
    const double m = M ? double(M[q / m_div]) : 0.0;
    s0 = 0;
    s1 = 0;
    if (j0 >= j1) return;
    // Walk (outer, inner) by kNormLanes elements at a time: no division per element.
    const int64_t step_outer = kNormLanes / seg_inner, step_in = kNormLanes % seg_inner;
    int64_t outer = j0 / seg_inner, in = j0 % seg_inner;
    for (int64_t j = j0; j < j1; j += kNormLanes) {
      const int64_t o = q * seg_stride + outer * outer_stride + in;
      const double d = double(x[o]) - m;
      const double a = g ? double(g[o]) : d;
      s0 += a;
      s1 = hd::add_mul_rn(s1, a, d);
      outer += step_outer;
      in += step_in;
      if (in >= seg_inner) in -= seg_inner, ++outer;
    }
  }
};

/// The CUDA warp's fixed reduction order (__shfl_down_sync by 16, 8, 4, 2, 1: lane l adds
/// lane l + off), on the host: v[0] ends with the sum of the kNormLanes values.
inline double norm_lane_tree(double* v) {
  for (int off = kNormLanes / 2; off > 0; off /= 2)
    for (int l = 0; l < off; ++l) v[l] = v[l] + v[l + off];
  return v[0];
}

/// Chunk i of a NormPartialBody as the CUDA warp computes it, on the host (tests).
template <typename T>
void norm_partial_warp_host(const NormPartialBody<T>& body, int64_t i) {
  double v0[kNormLanes], v1[kNormLanes];
  for (int l = 0; l < kNormLanes; ++l) body.lane_sums(i, l, v0[l], v1[l]);
  body.p0[i] = norm_lane_tree(v0);
  body.p1[i] = norm_lane_tree(v1);
}

/// Sum of the K partials of segment q, in order.
DRCNN_HD double sum_partials(const double* p, int64_t q, int64_t K) {
  double s = 0;
  for (int64_t k = 0; k < K; ++k) s += p[q * K + k];
  return s;
}

/// Per channel c: invstd = 1 / sqrt(var + eps), A = w * invstd, B = b - mean * A (torchvision
/// FrozenBatchNorm2d and aten's eval-mode batch norm; w, b null mean 1, 0). Optionally saves
/// mean and invstd (BN eval mode, for the backward).
template <typename T>
struct AffineCoefBody {
  const T* w;
  const T* b;
  const T* mean;
  const T* var;
  T* A;
  T* B;
  T* save_mean;
  T* save_invstd;
  T eps;
  DRCNN_HD void operator()(int64_t c) const {
    const T invstd = T(1) / hd::sqrt(var[c] + eps);
    const T a = w ? w[c] * invstd : invstd;
    A[c] = a;
    B[c] = (b ? b[c] : T(0)) - mean[c] * a;
    if (save_mean) save_mean[c] = mean[c];
    if (save_invstd) save_invstd[c] = invstd;
  }
};

/// First pass of the BN and GN statistics: mean[q] = sum(x) / count over segment q (a BN
/// channel, or a GN group (n, g) of (C / G) * HW elements), from its K partial sums.
template <typename T>
struct PartialsMeanBody {
  const double* p0;
  T* mean;
  int64_t K;
  double count;
  DRCNN_HD void operator()(int64_t q) const { mean[q] = T(sum_partials(p0, q, K) / count); }
};

/// n * the biased variance from the partials of d = x - shift: sum d^2 - (sum d)^2 / n (the
/// corrected two-pass formula: exact for any shift, so the rounded mean costs nothing),
/// clamped at 0 against rounding.
DRCNN_HD double corrected_var_sum(double sum_d, double sum_d2, double n) {
  const double v = sum_d2 - sum_d * sum_d / n;
  return v < 0 ? 0 : v;
}

/// Second pass (partials of d = x - mean[c]): biased var = corrected_var_sum / n; invstd,
/// the affine coefficients (as aten: alpha = invstd * w, beta = b - mean * alpha) and the
/// running stats: r = (1 - momentum) r + momentum s, with the UNBIASED variance.
template <typename T>
struct BnTrainStatsBody {
  const double* p0;
  const double* p1;
  const T* w;
  const T* b;
  const T* mean;
  T* invstd_out;
  T* A;
  T* B;
  T* running_mean;
  T* running_var;
  int64_t K;
  double count, eps, momentum;
  DRCNN_HD void operator()(int64_t c) const {
    const double s0 = sum_partials(p0, c, K), s1 = sum_partials(p1, c, K);
    const double var_sum = corrected_var_sum(s0, s1, count);  // n * biased variance
    const double mean_d = double(mean[c]) + s0 / count;
    const T invstd = T(1.0 / ::sqrt(var_sum / count + eps));
    invstd_out[c] = invstd;
    const T a = w ? w[c] * invstd : invstd;
    A[c] = a;
    B[c] = (b ? b[c] : T(0)) - mean[c] * a;
    if (running_mean) {
      running_mean[c] = T(momentum * mean_d + (1 - momentum) * double(running_mean[c]));
      running_var[c] = T(momentum * var_sum / (count - 1) + (1 - momentum) * double(running_var[c]));
    }
  }
};

/// BN backward per channel from p0 = sum(g), p1 = sum(g (x - mean)): dw = p1 * invstd,
/// db = p0; dx coefficients (NormBackwardBody) for training,
/// dx = w invstd (g - p0 / n - (x - mean) invstd^2 p1 / n), or eval, dx = w invstd g.
template <typename T>
struct BnBackwardCoefBody {
  const double* p0;
  const double* p1;
  const T* w;
  const T* invstd;
  T* A;
  T* Bc;
  T* C;
  T* dw;
  T* db;
  int64_t K;
  double count;
  bool training;
  DRCNN_HD void operator()(int64_t c) const {
    const double s0 = sum_partials(p0, c, K), s1 = sum_partials(p1, c, K);
    const double r = double(invstd[c]);
    const double k = (w ? double(w[c]) : 1.0) * r;
    if (dw) dw[c] = T(s1 * r);
    if (db) db[c] = T(s0);
    A[c] = T(k);
    Bc[c] = training ? T(-k * r * r * s1 / count) : T(0);
    C[c] = training ? T(-k * s0 / count) : T(0);
  }
};

/// GN second pass (the first is PartialsMeanBody): rstd = 1 / sqrt(biased var + eps).
template <typename T>
struct GnRstdBody {
  const double* p0;
  const double* p1;
  T* rstd;
  int64_t K;
  double D, eps;
  DRCNN_HD void operator()(int64_t q) const {
    const double s0 = sum_partials(p0, q, K), s1 = sum_partials(p1, q, K);
    rstd[q] = T(1.0 / ::sqrt(corrected_var_sum(s0, s1, D) / D + eps));
  }
};

/// Per (n, c): A = rstd[n, g] * w[c], B = b[c] - A * mean[n, g] (aten GroupNorm's a, b).
template <typename T>
struct GnForwardCoefBody {
  const T* w;
  const T* b;
  const T* mean;
  const T* rstd;
  T* A;
  T* B;
  int64_t C, G;
  DRCNN_HD void operator()(int64_t i) const {
    const int64_t n = i / C, c = i % C, q = n * G + c / (C / G);
    const T a = w ? rstd[q] * w[c] : rstd[q];
    A[i] = a;
    B[i] = (b ? b[c] : T(0)) - a * mean[q];
  }
};

/// Per (n, c), from the per-(n, c) partials p0 = sum(g), p1 = sum(g (x - mean[n, g])):
/// with the group sums S1 = sum_c w_c p1[n, c], S0 = sum_c w_c p0[n, c] (same order for every
/// channel of the group), dx = rstd w_c g + (x - mean) (-rstd^3 S1 / D) - rstd S0 / D.
template <typename T>
struct GnBackwardCoefBody {
  const double* p0;
  const double* p1;
  const T* w;
  const T* rstd;
  T* A;
  T* Bc;
  T* Cc;
  int64_t K, C, G;
  double D;
  DRCNN_HD void operator()(int64_t i) const {
    const int64_t n = i / C, c = i % C, cg = C / G, grp = c / cg, q = n * G + grp;
    double s0 = 0, s1 = 0;
    for (int64_t cc = grp * cg; cc < (grp + 1) * cg; ++cc) {
      const double wc = w ? double(w[cc]) : 1.0;
      s0 += wc * sum_partials(p0, n * C + cc, K);
      s1 += wc * sum_partials(p1, n * C + cc, K);
    }
    const double r = double(rstd[q]);
    A[i] = T(r * (w ? double(w[c]) : 1.0));
    Bc[i] = T(-r * r * r * s1 / D);
    Cc[i] = T(-r * s0 / D);
  }
};

/// GN weight/bias gradients per channel: dw[c] = sum_n p1[n, c] rstd[n, g], db[c] = sum_n p0[n, c].
template <typename T>
struct GnWeightGradBody {
  const double* p0;
  const double* p1;
  const T* rstd;
  T* dw;
  T* db;
  int64_t K, N, C, G;
  DRCNN_HD void operator()(int64_t c) const {
    double sw = 0, sb = 0;
    for (int64_t n = 0; n < N; ++n) {
      sw += sum_partials(p1, n * C + c, K) * double(rstd[n * G + c / (C / G)]);
      sb += sum_partials(p0, n * C + c, K);
    }
    dw[c] = T(sw);
    db[c] = T(sb);
  }
};

/// The (kind, dtype) -> body switch shared by both backends: launch(n, body, cost), where
/// cost is the rough number of elements one invocation touches (the CPU picks its grain), and
/// launch.rows(n, row_len, row_cost, body) for bodies over rows of a plane: the CPU runs
/// body.row(r) for each of the n / row_len rows (no index division per element; the affine loops vectorise), CUDA one thread per
/// element (body(i)). Both forms compute each element with the same expression.
template <typename Launch>
void run_nn(NnKind kind, DType dtype, const NnLaunch& l, Launch&& launch) {
  dispatch_floating(dtype, "nn_op", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* x = static_cast<const T*>(l.x);
    const T* g = static_cast<const T*>(l.g);
    T* y = static_cast<T*>(l.y);
    T* A = static_cast<T*>(l.A);
    T* B = static_cast<T*>(l.B);
    T* C = static_cast<T*>(l.C);
    T* M = static_cast<T*>(l.M);
    const T* w = static_cast<const T*>(l.weight);
    const T* b = static_cast<const T*>(l.bias);
    T* rm = static_cast<T*>(l.running_mean);
    T* rv = static_cast<T*>(l.running_var);
    T* sm = static_cast<T*>(l.save_mean);
    T* si = static_cast<T*>(l.save_invstd);
    T* dw = static_cast<T*>(l.dweight);
    T* db = static_cast<T*>(l.dbias);
    const PoolGeometry& p = l.geo;
    switch (kind) {
      case NnKind::MaxPoolForward:
        return launch.rows(l.n, p.OW, p.OW * p.kh * p.kw, MaxPoolForwardBody<T>{x, y, l.idx, p});
      case NnKind::MaxPoolBackward:
        return launch.rows(l.n, p.W, p.W * p.kh * p.kw, MaxPoolBackwardBody<T>{g, l.cidx, y, p});
      case NnKind::UpsampleForward: return launch.rows(l.n, p.OW, p.OW, UpsampleForwardBody<T>{x, y, p});
      case NnKind::UpsampleBackward: {
        const int64_t cost = (p.OH / hd::max(p.H, int64_t(1)) + 2) * (p.OW / hd::max(p.W, int64_t(1)) + 2);
        return launch.rows(l.n, p.W, p.W * cost, UpsampleBackwardBody<T>{g, y, p});
      }
      case NnKind::ChannelAffine:
        return launch.rows(l.n, l.inner, l.inner, ChannelAffineBody<T>{x, y, A, B, l.inner, l.mod});
      case NnKind::NormBackward:
        return launch.rows(l.n, l.inner, l.inner, NormBackwardBody<T>{g, x, y, A, B, C, M, l.inner, l.mod});
      case NnKind::NormPartial:
        return launch(l.n,
                      NormPartialBody<T>{x, g, M, l.p0, l.p1, l.K, l.L, l.seg_stride, l.seg_inner, l.outer_stride,
                                         l.m_div},
                      kNormChunk);
      case NnKind::AffineCoef: return launch(l.n, AffineCoefBody<T>{w, b, M, rv, A, B, sm, si, T(l.eps)}, 1);
      case NnKind::BnTrainMean: return launch(l.n, PartialsMeanBody<T>{l.p0, M, l.K, double(l.L)}, l.K);
      case NnKind::BnTrainStats:
        return launch(l.n,
                      BnTrainStatsBody<T>{l.p0, l.p1, w, b, M, si, A, B, rm, rv, l.K, double(l.L), l.eps, l.momentum},
                      l.K);
      case NnKind::BnBackwardCoef:
        return launch(l.n, BnBackwardCoefBody<T>{l.p0, l.p1, w, si, A, B, C, dw, db, l.K, double(l.L), l.training},
                      l.K);
      case NnKind::GnMean: return launch(l.n, PartialsMeanBody<T>{l.p0, M, l.K, double(l.L)}, l.K);
      case NnKind::GnRstd: return launch(l.n, GnRstdBody<T>{l.p0, l.p1, si, l.K, double(l.L), l.eps}, l.K);
      case NnKind::GnForwardCoef: return launch(l.n, GnForwardCoefBody<T>{w, b, M, si, A, B, l.Cn, l.G}, 1);
      case NnKind::GnBackwardCoef:
        return launch(l.n, GnBackwardCoefBody<T>{l.p0, l.p1, w, si, A, B, C, l.K, l.Cn, l.G, double(l.L)},
                      l.K * l.Cn / l.G);
      case NnKind::GnWeightGrad:
        return launch(l.n, GnWeightGradBody<T>{l.p0, l.p1, si, dw, db, l.K, l.N, l.Cn, l.G}, l.K * l.N);
    }
  });
}
}  // namespace detail
}  // namespace drcnn::ops
