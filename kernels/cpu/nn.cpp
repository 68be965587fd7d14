// CPU launcher of the layer-op bodies (include/drcnn/ops/detail/nn_body.h): OpenMP static
// partition, each invocation writes only its own outputs. The grain shrinks with the work one
// invocation does (a reduction chunk is 1024 elements, a pooling window kh * kw), so heavy
// bodies still spread over the threads; the per-channel elementwise bodies run a whole
// (n, c) row per invocation (body.row), which vectorises. Max-pool forward runs its bodies'
// windows vectorised across outputs and max-pool backward is a scatter per plane (below),
// both with the shared bodies' results bit for bit. Tests: tests/ops/test_nn.cpp.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "drcnn/core/parallel_cpu.h"
#include "drcnn/ops/detail/nn_body.h"
#include "cpu_features.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define DRCNN_NN_AVX2 1
#else
#define DRCNN_NN_AVX2 0
#endif

namespace drcnn::ops::cpu {
namespace {
struct CpuNnLaunch {
  template <typename Body>
  void operator()(int64_t n, const Body& body, int64_t cost) const {
    parallel_for_cpu(n, body, cost > 1 ? kParallelGrain / cost + 1 : kParallelGrain);
  }
  template <typename Body>
  void rows(int64_t n, int64_t row_len, int64_t row_cost, const Body& body) const {
    parallel_for_cpu(n / row_len, [&body](int64_t r) { body.row(r); }, kParallelGrain / row_cost + 1);
  }
};

/// Max-pool forward of one output row r = plane * OH + oh. The outputs whose window lies inside
/// the row (most of them) run in chunks, one window tap at a time across the chunk's outputs,
/// with selects: a loop GCC vectorises (the stride of the column loads a constant for the
/// common strides). Each output still visits its taps in MaxPoolForwardBody's order with its
/// rule (strictly greater, or NaN), from the same start (-inf at the window's first tap), so
/// values and indices are the body's; the border outputs run the body itself.
template <typename T, int64_t kStride>
void max_pool_forward_row(const detail::MaxPoolForwardBody<T>& body, int64_t r) {
  constexpr int64_t kChunk = 64;
  const PoolGeometry& p = body.p;
  const int64_t sw = kStride > 0 ? kStride : p.sw;
  const int64_t oh = r % p.OH, plane = r / p.OH;
  int64_t h0 = oh * p.sh - p.ph;
  const int64_t h1 = std::min(h0 + (p.kh - 1) * p.dh + 1, p.H);
  while (h0 < 0) h0 += p.dh;
  // Interior: ow * sw - pw >= 0 and ow * sw - pw + (kw - 1) * dw <= W - 1.
  const int64_t span = (p.kw - 1) * p.dw, last = p.W - 1 + p.pw - span;
  const int64_t lo = std::min(p.OW, (p.pw + sw - 1) / sw), hi = last < 0 ? lo : std::max(lo, std::min(p.OW, last / sw + 1));
  if (h0 >= h1 || lo >= hi) return body.row(r);
  for (int64_t ow = 0; ow < lo; ++ow) body.at(r, ow);
  for (int64_t ow = hi; ow < p.OW; ++ow) body.at(r, ow);
  const T* src = body.x + plane * p.H * p.W;
  alignas(64) T m[kChunk];
  alignas(64) int32_t tap[kChunk];
  for (int64_t c0 = lo; c0 < hi; c0 += kChunk) {
    const int64_t n = std::min(kChunk, hi - c0), w0 = c0 * sw - p.pw;
    for (int64_t o = 0; o < n; ++o) {
      m[o] = -INFINITY;
      tap[o] = 0;
    }
    int32_t k = 0;
    for (int64_t h = h0; h < h1; h += p.dh)
      for (int64_t j = 0; j < p.kw; ++j, ++k) {
        const T* s = src + h * p.W + w0 + j * p.dw;
        for (int64_t o = 0; o < n; ++o) {
          const T v = s[o * sw];
          const bool take = (v > m[o]) | (v != v);
          m[o] = take ? v : m[o];
          tap[o] = take ? k : tap[o];
        }
      }
    const int64_t i0 = r * p.OW + c0;
    for (int64_t o = 0; o < n; ++o) {
      const int64_t row = tap[o] / p.kw, j = tap[o] - row * p.kw;
      body.y[i0 + o] = m[o];
      body.idx[i0 + o] = (h0 + row * p.dh) * p.W + w0 + o * sw + j * p.dw;
    }
  }
}

template <typename T>
void max_pool_forward(const NnLaunch& l) {
  const detail::MaxPoolForwardBody<T> body{static_cast<const T*>(l.x), static_cast<T*>(l.y), l.idx, l.geo};
  const PoolGeometry& p = l.geo;
  const int64_t grain = kParallelGrain / (p.OW * p.kh * p.kw) + 1;
  if (p.sw == 2) parallel_for_cpu(l.n / p.OW, [&](int64_t r) { max_pool_forward_row<T, 2>(body, r); }, grain);
  else if (p.sw == 1) parallel_for_cpu(l.n / p.OW, [&](int64_t r) { max_pool_forward_row<T, 1>(body, r); }, grain);
  else parallel_for_cpu(l.n / p.OW, [&](int64_t r) { max_pool_forward_row<T, 0>(body, r); }, grain);
}

/// Chunks interleaved by norm_partial_group.
constexpr int64_t kNormGroup = 8;

#if DRCNN_NN_AVX2
/// norm_partial_group's contiguous float32 case with AVX2: the 8 chunks as the lanes of two
/// 4-wide double vectors (chunk c in lane c % 4 of half c / 4), 4 elements of each chunk loaded
/// and transposed at a time. Per lane the same operations on the same operands in the same order
/// as the scalar loop (d = double(x) - m, a = g or d, s0 += a, s1 += a * d; mul and add apart:
/// the target has no FMA), so the same bits, at about 2 instructions per element instead of 5.
template <bool kHasG>
__attribute__((target("avx2"))) void norm_partial8_avx2(const float* const* xs, const float* const* gs, const double* m,
                                                       double* s0, double* s1) {
  __m256d mv[2] = {_mm256_loadu_pd(m), _mm256_loadu_pd(m + 4)};
  __m256d a0[2] = {_mm256_setzero_pd(), _mm256_setzero_pd()}, a1[2] = {_mm256_setzero_pd(), _mm256_setzero_pd()};
  for (int64_t j = 0; j < kNormChunk; j += 4)
    for (int h = 0; h < 2; ++h) {
      __m128 x0 = _mm_loadu_ps(xs[4 * h] + j), x1 = _mm_loadu_ps(xs[4 * h + 1] + j);
      __m128 x2 = _mm_loadu_ps(xs[4 * h + 2] + j), x3 = _mm_loadu_ps(xs[4 * h + 3] + j);
      _MM_TRANSPOSE4_PS(x0, x1, x2, x3);  // xk: element j + k of the 4 chunks
      __m128 g0 = x0, g1 = x1, g2 = x2, g3 = x3;
      if constexpr (kHasG) {
        g0 = _mm_loadu_ps(gs[4 * h] + j), g1 = _mm_loadu_ps(gs[4 * h + 1] + j);
        g2 = _mm_loadu_ps(gs[4 * h + 2] + j), g3 = _mm_loadu_ps(gs[4 * h + 3] + j);
        _MM_TRANSPOSE4_PS(g0, g1, g2, g3);
      }
      const __m128 xk[4] = {x0, x1, x2, x3}, gk[4] = {g0, g1, g2, g3};
      for (int k = 0; k < 4; ++k) {
        const __m256d d = _mm256_sub_pd(_mm256_cvtps_pd(xk[k]), mv[h]);
        const __m256d a = kHasG ? _mm256_cvtps_pd(gk[k]) : d;
        a0[h] = _mm256_add_pd(a0[h], a);
        a1[h] = _mm256_add_pd(a1[h], _mm256_mul_pd(a, d));
      }
    }
  for (int h = 0; h < 2; ++h) {
    _mm256_storeu_pd(s0 + 4 * h, a0[h]);
    _mm256_storeu_pd(s1 + 4 * h, a1[h]);
  }
}
#endif

/// The norms' chunk partial sums (NormPartialBody: per chunk of kNormChunk elements, serial
/// double sums of a and a * d) for kW consecutive full chunks at once, their elements
/// interleaved: each chunk's two sums still add its elements in order with the body's
/// operations, so every partial is the body's bit for bit, but the kW chains of dependent
/// double adds overlap instead of running one after the other (the add latency bound them).
/// Short chunks and a group's remainder run the body itself. float32 chunks inside one run of
/// their segment (GN) take norm_partial8_avx2 where the CPU has AVX2.
template <typename T, bool kHasG>
void norm_partial_group(const detail::NormPartialBody<T>& b, int64_t i0, int64_t count) {
  constexpr int64_t kW = kNormGroup;
  int64_t base[kW], outer[kW], in[kW];
  double m[kW], s0[kW], s1[kW];
  bool full = count == kW;
  for (int64_t c = 0; c < count && full; ++c) {
    const int64_t i = i0 + c, q = i / b.K, j0 = (i % b.K) * kNormChunk;
    full = j0 + kNormChunk <= b.L;
    base[c] = q * b.seg_stride;
    outer[c] = j0 / b.seg_inner;
    in[c] = j0 % b.seg_inner;
    m[c] = b.M ? double(b.M[q / b.m_div]) : 0.0;
    s0[c] = 0;
    s1[c] = 0;
  }
  if (!full) {
    for (int64_t c = 0; c < count; ++c) b(i0 + c);
    return;
  }
  bool contiguous = true;  // every chunk inside one run of its segment (GN; BN with HW >= 1024)
  for (int64_t c = 0; c < kW; ++c) contiguous = contiguous && in[c] + kNormChunk <= b.seg_inner;
  if (contiguous) {
    const T* xs[kW];
    const T* gs[kW];
    for (int64_t c = 0; c < kW; ++c) {
      const int64_t o = base[c] + outer[c] * b.outer_stride + in[c];
      xs[c] = b.x + o;
      gs[c] = kHasG ? b.g + o : nullptr;
    }
#if DRCNN_NN_AVX2
    if constexpr (std::is_same_v<T, float>)
      if (cpu_supports_avx2()) {
        norm_partial8_avx2<kHasG>(xs, gs, m, s0, s1);
        for (int64_t c = 0; c < kW; ++c) {
          b.p0[i0 + c] = s0[c];
          b.p1[i0 + c] = s1[c];
        }
        return;
      }
#endif
    for (int64_t j = 0; j < kNormChunk; ++j)
      for (int64_t c = 0; c < kW; ++c) {
        const double d = double(xs[c][j]) - m[c];
        const double a = kHasG ? double(gs[c][j]) : d;
        s0[c] += a;
        s1[c] += a * d;
      }
  } else {
    for (int64_t j = 0; j < kNormChunk; ++j)
      for (int64_t c = 0; c < kW; ++c) {
        const int64_t o = base[c] + outer[c] * b.outer_stride + in[c];
        const double d = double(b.x[o]) - m[c];
        const double a = kHasG ? double(b.g[o]) : d;
        s0[c] += a;
        s1[c] += a * d;
        if (++in[c] == b.seg_inner) in[c] = 0, ++outer[c];
      }
  }
  for (int64_t c = 0; c < kW; ++c) {
    b.p0[i0 + c] = s0[c];
    b.p1[i0 + c] = s1[c];
  }
}

template <typename T>
void norm_partial(const NnLaunch& l) {
  const detail::NormPartialBody<T> b{static_cast<const T*>(l.x), static_cast<const T*>(l.g), static_cast<const T*>(l.M),
                                     l.p0, l.p1, l.K, l.L, l.seg_stride, l.seg_inner, l.outer_stride, l.m_div};
  constexpr int64_t kW = kNormGroup;
  const int64_t groups = (l.n + kW - 1) / kW;
  parallel_for_cpu(
      groups,
      [&](int64_t gi) {
        const int64_t i0 = gi * kW, count = std::min(kW, l.n - i0);
        if (b.g) norm_partial_group<T, true>(b, i0, count);
        else norm_partial_group<T, false>(b, i0, count);
      },
      kParallelGrain / (kW * kNormChunk) + 1);
}

/// Nearest-upsampling backward for an exact 2x on both axes (the FPN's top-down path): input
/// (h, w) gathers outputs (2h, 2w), (2h, 2w + 1), (2h + 1, 2w), (2h + 1, 2w + 1), which is what
/// UpsampleBackwardBody's ranges are then (nearest_source_index is dst >> 1), added from 0 in the
/// body's order (rows, then columns): the same bits, without the two range searches per input.
template <typename T>
void upsample2x_backward(const NnLaunch& l) {
  const PoolGeometry& p = l.geo;
  const T* g = static_cast<const T*>(l.g);
  T* dx = static_cast<T*>(l.y);
  parallel_for_cpu(
      l.n / p.W,
      [&](int64_t r) {
        const int64_t h = r % p.H, plane = r / p.H;
        const T* g0 = g + (plane * p.OH + 2 * h) * p.OW;
        const T* g1 = g0 + p.OW;
        T* d = dx + r * p.W;
        for (int64_t w = 0; w < p.W; ++w) {
          T acc = T(0);
          acc += g0[2 * w];
          acc += g0[2 * w + 1];
          acc += g1[2 * w];
          acc += g1[2 * w + 1];
          d[w] = acc;
        }
      },
      kParallelGrain / (4 * p.W) + 1);
}

/// Max-pool backward as a scatter, one (n, c) plane per invocation: zero the plane, then add
/// each output's gradient at its recorded index, outputs in order. MaxPoolBackwardBody (the
/// CUDA form) gathers instead: every input sums, from 0 and in output order, the gradients of
/// the outputs whose window covers it and whose index names it. The scatter adds the same
/// gradients to each input in the same order, starting from the same +0, so the sums are the
/// same bit for bit; an index outside its output's window (or outside the plane) is skipped,
/// as the gather never matches it. One output's index is read once instead of once per input
/// of its window, and no input computes its window range (four int64 divisions).
template <typename T>
void max_pool_backward_scatter(const NnLaunch& l) {
  const PoolGeometry& p = l.geo;
  const int64_t in = p.H * p.W, out = p.OH * p.OW;
  if (in == 0) return;
  const T* g = static_cast<const T*>(l.g);
  T* dx = static_cast<T*>(l.y);
  const int64_t* idx = l.cidx;
  parallel_for_cpu(
      l.n / in,
      [&](int64_t q) {
        T* d = dx + q * in;
        std::fill(d, d + in, T(0));
        const T* gq = g + q * out;
        const int64_t* iq = idx + q * out;
        for (int64_t oh = 0; oh < p.OH; ++oh) {
          const int64_t r0 = oh * p.sh - p.ph, r1 = r0 + (p.kh - 1) * p.dh;
          for (int64_t ow = 0; ow < p.OW; ++ow) {
            const int64_t o = oh * p.OW + ow, t = iq[o];
            if (t < 0 || t >= in) continue;
            const int64_t th = t / p.W, tw = t - th * p.W, c0 = ow * p.sw - p.pw;
            if (th < r0 || th > r1 || tw < c0 || tw > c0 + (p.kw - 1) * p.dw) continue;
            d[t] += gq[o];
          }
        }
      },
      kParallelGrain / (in + out) + 1);
}
}  // namespace

void nn_op(NnKind kind, DType dtype, const NnLaunch& l) {
  if (kind == NnKind::UpsampleBackward && l.geo.OH == 2 * l.geo.H && l.geo.OW == 2 * l.geo.W && l.geo.W > 0)
    return dispatch_floating(dtype, "nn_op", [&](auto tag) { upsample2x_backward<typename decltype(tag)::type>(l); });
  if (kind == NnKind::NormPartial)
    return dispatch_floating(dtype, "nn_op", [&](auto tag) { norm_partial<typename decltype(tag)::type>(l); });
  if (kind == NnKind::MaxPoolForward)
    return dispatch_floating(dtype, "nn_op", [&](auto tag) { max_pool_forward<typename decltype(tag)::type>(l); });
  if (kind == NnKind::MaxPoolBackward)
    return dispatch_floating(dtype, "nn_op", [&](auto tag) { max_pool_backward_scatter<typename decltype(tag)::type>(l); });
  detail::run_nn(kind, dtype, l, CpuNnLaunch{});
}
}  // namespace drcnn::ops::cpu
