// CPU conv2d (include/drcnn/ops/conv.h): im2col (ops/detail/conv_body.h) + the Eigen GEMM of
// kernels/cpu/gemm.cpp, called tile by tile. Design (docs/kernels/conv2d.md):
// - The batch is processed in chunks of images whose column matrix fits kColBudget elements
//   (at least one image per chunk); buffers come from the caching allocator (ScratchBuffer).
// - 1x1 stride-1 unpadded convolutions use the input itself as the column matrix.
// - Work is split into GEMM tiles of at most kTileRows rows and a column width computed from
//   the shape alone, so every output element's summation order (Eigen's blocking of its tile)
//   is the same for every thread count: results are bitwise reproducible across threads.
// - grad_weight sums over images in order; when its output is too small to give every thread a
//   tile, the pixel (reduction) axis is split into a shape-determined number of slices whose
//   partial sums are added in slice order at the end. grad_bias sums each channel in order.
// - col2im is the gather form (each input cell written once).
// float32 goes to oneDNN first when the build has it and it is selected (conv_onednn.cpp), in
// bfloat16 when ops::set_cpu_precision selected it (the im2col fallback stays float32).
// Tests: tests/ops/test_conv.cpp. Benchmark: benchmarks/bench_conv.cpp.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <type_traits>

#include "drcnn/core/error.h"
#include "drcnn/ops/conv.h"
#include "drcnn/ops/cpu_precision.h"
#if DRCNN_HAVE_ONEDNN
#include "conv_onednn.h"
#endif

#include "drcnn/core/parallel_cpu.h"
#include "drcnn/core/storage.h"
#include "drcnn/ops/detail/conv_body.h"
#include "drcnn/ops/launch.h"
#include "cpu_features.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define DRCNN_CONV_BIAS_AVX2 1
#else
#define DRCNN_CONV_BIAS_AVX2 0
#endif

namespace drcnn::ops::cpu {

namespace {
#if DRCNN_CONV_BIAS_AVX2
/// grad_bias of 8 float32 channels c0..c0+7 (rows of P floats, images `stride` floats apart):
/// each channel's double sum over images, then pixels, in order, as the scalar loop in
/// conv2d_backward, with the 8 channels as the lanes of two AVX2 double vectors (4 pixels of
/// each loaded and transposed at a time; a row's last P % 4 pixels added lane by lane). The
/// same adds in the same order per channel: the same bits, without one add latency per pixel.
__attribute__((target("avx2"))) void bias_sums8_avx2(const float* go, int64_t n, int64_t stride, int64_t P,
                                                    double* out) {
  alignas(32) double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t b = 0; b < n; ++b) {
    const float* row = go + b * stride;
    __m256d acc[2] = {_mm256_load_pd(s), _mm256_load_pd(s + 4)};
    int64_t x = 0;
    for (; x + 4 <= P; x += 4)
      for (int h = 0; h < 2; ++h) {
        __m128 r0 = _mm_loadu_ps(row + (4 * h) * P + x), r1 = _mm_loadu_ps(row + (4 * h + 1) * P + x);
        __m128 r2 = _mm_loadu_ps(row + (4 * h + 2) * P + x), r3 = _mm_loadu_ps(row + (4 * h + 3) * P + x);
        _MM_TRANSPOSE4_PS(r0, r1, r2, r3);  // rk: pixel x + k of the 4 channels
        acc[h] = _mm256_add_pd(acc[h], _mm256_cvtps_pd(r0));
        acc[h] = _mm256_add_pd(acc[h], _mm256_cvtps_pd(r1));
        acc[h] = _mm256_add_pd(acc[h], _mm256_cvtps_pd(r2));
        acc[h] = _mm256_add_pd(acc[h], _mm256_cvtps_pd(r3));
      }
    _mm256_store_pd(s, acc[0]);
    _mm256_store_pd(s + 4, acc[1]);
    for (int c = 0; c < 8; ++c)
      for (int64_t t = x; t < P; ++t) s[c] += double(row[c * P + t]);
  }
  for (int c = 0; c < 8; ++c) out[c] = s[c];
}
#endif

// Column-matrix elements per chunk of images (32 MiB in float32).
constexpr int64_t kColBudget = int64_t(1) << 23;
// Rows of a GEMM tile: cpu::gemm's own row block, so it never splits (or threads) a tile again.
constexpr int64_t kTileRows = 256;
// Tiles wanted per parallel step (enough to balance 2-4 threads; independent of the thread count).
constexpr int64_t kWantTiles = 8;
// Narrowest column tile worth a separate GEMM call (Eigen repacks the left operand per call).
constexpr int64_t kMinTileCols = 128;
// Below this many multiply-adds a parallel region costs more than it saves.
constexpr int64_t kParallelMacs = int64_t(1) << 20;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/// Column tiling of an [m, n] output computed `outer` times per step: tile width and count.
struct Tiling {
  int64_t row_tiles = 1, col_tiles = 1, width = 1;
};
Tiling plan(int64_t m, int64_t n, int64_t outer) {
  Tiling t;
  t.row_tiles = std::max<int64_t>(1, ceil_div(m, kTileRows));
  const int64_t have = std::max<int64_t>(1, outer * t.row_tiles);
  int64_t want = std::max<int64_t>(1, ceil_div(kWantTiles, have));
  want = std::min(want, std::max<int64_t>(1, n / kMinTileCols));
  t.width = std::max<int64_t>(1, ceil_div(std::max<int64_t>(n, 1), want));
  t.width = std::min(std::max<int64_t>(n, 1), ceil_div(t.width, 16) * 16);
  t.col_tiles = std::max<int64_t>(1, ceil_div(n, t.width));
  return t;
}

/// One task of a tiled GEMM over `outer` x groups x row tiles x column tiles: which outer
/// index (image or pixel slice), group, rows [r0, r0 + rows) and columns [c0, c0 + cols).
struct Tile {
  int64_t outer, grp, r0, rows, c0, cols;
};
Tile tile_of(int64_t task, const Tiling& t, int64_t groups, int64_t m, int64_t n) {
  const int64_t per_outer = groups * t.row_tiles * t.col_tiles, rest = task % per_outer;
  Tile r;
  r.outer = task / per_outer;
  r.grp = rest / (t.row_tiles * t.col_tiles);
  r.r0 = ((rest / t.col_tiles) % t.row_tiles) * kTileRows;
  r.rows = std::min(kTileRows, m - r.r0);
  r.c0 = (rest % t.col_tiles) * t.width;
  r.cols = std::min(t.width, n - r.c0);
  return r;
}

template <typename T>
void gemm_tile(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, const T* b, int64_t ldb,
               T* c, int64_t ldc, T beta) {
  GemmLaunch<T> l;
  l.trans_a = ta;
  l.trans_b = tb;
  l.m = m;
  l.n = n;
  l.k = k;
  l.a = a;
  l.lda = lda;
  l.b = b;
  l.ldb = ldb;
  l.c = c;
  l.ldc = ldc;
  l.beta = beta;
  gemm<T>(l);
}

template <typename F>
void run_tasks(int64_t tasks, int64_t macs, const F& f) {
  parallel_for_cpu(tasks, f, macs >= kParallelMacs ? 2 : tasks + 1);
}

/// Runs body.row(r) for r in [0, rows), each row `row_len` elements.
template <typename Body>
void run_rows(int64_t rows, int64_t row_len, const Body& body) {
  const int64_t grain = std::max<int64_t>(2, kParallelGrain / std::max<int64_t>(row_len, 1));
  parallel_for_cpu(rows, [&](int64_t r) { body.row(r); }, grain);
}

/// Images per chunk: the column matrix of the chunk stays within kColBudget elements.
int64_t chunk_images(const Conv2dGeometry& g) {
  const int64_t per_image = std::max<int64_t>(1, g.k_all() * g.p());
  return std::clamp<int64_t>(kColBudget / per_image, 1, std::max<int64_t>(g.n, 1));
}

template <typename T>
T* buffer(ScratchBuffer<T>& holder, int64_t elements) {
  holder = ScratchBuffer<T>(elements, Device::cpu());
  return holder.data();
}

CpuConvImpl initial_impl() {
  const char* env = std::getenv("DRCNN_CPU_CONV");
  const std::string_view v = env ? env : "";
  DRCNN_CHECK(v.empty() || v == "im2col" || v == "onednn",
              "DRCNN_CPU_CONV: expected 'im2col' or 'onednn', got '", v, "'");
  DRCNN_CHECK(v != "onednn" || DRCNN_HAVE_ONEDNN,
              "DRCNN_CPU_CONV=onednn: this drcnn was built without oneDNN (install libdnnl-dev and reconfigure)");
  if (v == "im2col") return CpuConvImpl::Im2col;
  return DRCNN_HAVE_ONEDNN ? CpuConvImpl::OneDnn : CpuConvImpl::Im2col;
}
std::atomic<CpuConvImpl>& impl_setting() {
  static std::atomic<CpuConvImpl> impl{initial_impl()};
  return impl;
}
}  // namespace
}  // namespace drcnn::ops::cpu

namespace drcnn::ops {
void set_cpu_conv_impl(CpuConvImpl impl) {
  DRCNN_CHECK(impl != CpuConvImpl::OneDnn || DRCNN_HAVE_ONEDNN,
              "set_cpu_conv_impl: this drcnn was built without oneDNN (install libdnnl-dev and reconfigure)");
  cpu::impl_setting().store(impl);
}
CpuConvImpl cpu_conv_impl() { return cpu::impl_setting().load(); }
bool cpu_conv_has_onednn() { return DRCNN_HAVE_ONEDNN; }
}  // namespace drcnn::ops

namespace drcnn::ops::cpu {
namespace {
template <typename T>
bool use_onednn() {
  return std::is_same_v<T, float> && DRCNN_HAVE_ONEDNN && impl_setting().load() == CpuConvImpl::OneDnn;
}
bool bf16_selected() { return cpu_precision() == CpuPrecision::BFloat16; }
}  // namespace

template <typename T>
void conv2d_forward(const Conv2dForwardLaunch<T>& l) {
#if DRCNN_HAVE_ONEDNN
  if constexpr (std::is_same_v<T, float>)
    if (use_onednn<T>() && onednn::conv2d_forward(l, bf16_selected())) return;
#endif
  const Conv2dGeometry& g = l.g;
  const int64_t P = g.p(), kg = g.k_g(), cog = g.cout_g(), K = g.k_all();
  if (g.n == 0 || P == 0) return;
  const int64_t chunk = chunk_images(g);
  ScratchBuffer<T> col_holder;
  T* col = g.is_pointwise() ? nullptr : buffer<T>(col_holder, chunk * K * P);
  for (int64_t n0 = 0; n0 < g.n; n0 += chunk) {
    const int64_t nb = std::min(chunk, g.n - n0);
    const T* cols = l.input + n0 * g.c_in * g.h * g.w;
    if (!g.is_pointwise()) {
      run_rows(nb * K * g.ho, g.wo, detail::Im2Col<T>{g, cols, col});
      cols = col;
    }
    const Tiling t = plan(cog, P, nb * g.groups);
    const int64_t per_image = g.groups * t.row_tiles * t.col_tiles;
    run_tasks(nb * per_image, nb * g.c_out * P * kg, [&](int64_t task) {
      const auto [b, grp, r0, rows, c0, cols_n] = tile_of(task, t, g.groups, cog, P);
      T* out = l.out + ((n0 + b) * g.c_out + grp * cog + r0) * P + c0;
      gemm_tile<T>(false, false, rows, cols_n, kg, l.weight + (grp * cog + r0) * kg, kg,
                   cols + (b * K + grp * kg) * P + c0, P, out, P, T(0));
      if (l.bias) {
        for (int64_t r = 0; r < rows; ++r) {
          const T bv = l.bias[grp * cog + r0 + r];
          T* row = out + r * P;
          for (int64_t x = 0; x < cols_n; ++x) row[x] += bv;
        }
      }
    });
  }
}

template <typename T>
void conv2d_backward(const Conv2dBackwardLaunch<T>& l) {
  const Conv2dGeometry& g = l.g;
  const int64_t P = g.p(), kg = g.k_g(), cog = g.cout_g(), K = g.k_all();
  const int64_t image_in = g.c_in * g.h * g.w;

  // grad_bias[c] = sum over images, then pixels, in order (accumulated in double).
  bool bias_done = !l.grad_bias;
#if DRCNN_CONV_BIAS_AVX2
  // float32, 8 channels per task where the CPU has AVX2 (bias_sums8_avx2: the same bits).
  if constexpr (std::is_same_v<T, float>)
    if (!bias_done && g.c_out % 8 == 0 && cpu_supports_avx2()) {
      run_tasks(g.c_out / 8, g.n * g.c_out * P, [&](int64_t t) {
        double s[8];
        bias_sums8_avx2(l.grad_out + t * 8 * P, g.n, g.c_out * P, P, s);
        for (int c = 0; c < 8; ++c) l.grad_bias[t * 8 + c] = T(s[c]);
      });
      bias_done = true;
    }
#endif
  if (!bias_done) {
    run_tasks(g.c_out, g.n * g.c_out * P, [&](int64_t c) {
      double s = 0;
      for (int64_t b = 0; b < g.n; ++b) {
        const T* src = l.grad_out + (b * g.c_out + c) * P;
        for (int64_t x = 0; x < P; ++x) s += double(src[x]);
      }
      l.grad_bias[c] = T(s);
    });
  }
  if (!l.grad_weight && !l.grad_input) return;
#if DRCNN_HAVE_ONEDNN
  if constexpr (std::is_same_v<T, float>)
    if (use_onednn<T>() && onednn::conv2d_backward(l, bf16_selected())) return;
#endif
  if (g.n == 0 || P == 0) {  // nothing flows: zero gradients
    if (l.grad_weight) std::fill(l.grad_weight, l.grad_weight + g.c_out * kg, T(0));
    if (l.grad_input) std::fill(l.grad_input, l.grad_input + g.n * image_in, T(0));
    return;
  }

  const int64_t chunk = chunk_images(g);
  ScratchBuffer<T> col_holder, partial_holder;
  T* col = g.is_pointwise() ? nullptr : buffer<T>(col_holder, chunk * K * P);

  // grad_weight tiling: [cog, kg] per group; split the pixel axis into `splits` slices when
  // that gives too few tiles. Shape-determined, so the summation order is thread-independent.
  const Tiling wt = plan(cog, kg, g.groups);
  const int64_t w_tiles = g.groups * wt.row_tiles * wt.col_tiles;
  int64_t splits = 1, split_w = P;
  if (w_tiles < kWantTiles) {
    splits = std::clamp<int64_t>(ceil_div(kWantTiles, w_tiles), 1, std::max<int64_t>(1, P / 256));
    split_w = std::min(P, ceil_div(ceil_div(P, splits), 16) * 16);
    splits = ceil_div(P, split_w);
  }
  T* partial = nullptr;  // [splits, c_out, kg] when splits > 1, else grad_weight itself
  if (l.grad_weight) partial = splits > 1 ? buffer<T>(partial_holder, splits * g.c_out * kg) : l.grad_weight;

  for (int64_t n0 = 0; n0 < g.n; n0 += chunk) {
    const int64_t nb = std::min(chunk, g.n - n0);
    const T* go = l.grad_out + n0 * g.c_out * P;
    if (l.grad_weight) {
      const T* cols = l.input + n0 * image_in;
      if (!g.is_pointwise()) {
        run_rows(nb * K * g.ho, g.wo, detail::Im2Col<T>{g, cols, col});
        cols = col;
      }
      // gw[grp] (+)= sum_b go[b, grp] [cog, P] @ col[b, grp]^T [P, kg], images in order.
      const int64_t per_split = w_tiles;
      run_tasks(splits * per_split, nb * g.c_out * P * kg, [&](int64_t task) {
        const auto [s, grp, r0, rows, c0, cols_n] = tile_of(task, wt, g.groups, cog, kg);
        const int64_t p0 = s * split_w, pn = std::min(split_w, P - p0);
        T* dst = partial + (s * g.c_out + grp * cog + r0) * kg + c0;
        for (int64_t b = 0; b < nb; ++b) {
          const T beta = (n0 == 0 && b == 0) ? T(0) : T(1);
          gemm_tile<T>(false, true, rows, cols_n, pn, go + (b * g.c_out + grp * cog + r0) * P + p0, P,
                       cols + (b * K + grp * kg + c0) * P + p0, P, dst, kg, beta);
        }
      });
    }
    if (l.grad_input) {
      // dcol[b, grp] [kg, P] = w[grp]^T [kg, cog] @ go[b, grp] [cog, P]; then col2im.
      T* dcol = g.is_pointwise() ? l.grad_input + n0 * image_in : col;
      const Tiling t = plan(kg, P, nb * g.groups);
      const int64_t per_image = g.groups * t.row_tiles * t.col_tiles;
      run_tasks(nb * per_image, nb * g.c_out * P * kg, [&](int64_t task) {
        const auto [b, grp, r0, rows, c0, cols_n] = tile_of(task, t, g.groups, kg, P);
        gemm_tile<T>(true, false, rows, cols_n, cog, l.weight + grp * cog * kg + r0, kg,
                     go + (b * g.c_out + grp * cog) * P + c0, P, dcol + (b * K + grp * kg + r0) * P + c0, P, T(0));
      });
      if (!g.is_pointwise()) run_rows(nb * g.c_in * g.h, g.w, detail::Col2Im<T>{g, dcol, l.grad_input + n0 * image_in});
    }
  }

  if (l.grad_weight && splits > 1) {
    // grad_weight = partial[0] + partial[1] + ... in slice order.
    const int64_t total = g.c_out * kg;
    parallel_for_cpu(total, [&](int64_t i) {
      T s = partial[i];
      for (int64_t k = 1; k < splits; ++k) s += partial[k * total + i];
      l.grad_weight[i] = s;
    });
  }
}

template void conv2d_forward<float>(const Conv2dForwardLaunch<float>&);
template void conv2d_forward<double>(const Conv2dForwardLaunch<double>&);
template void conv2d_backward<float>(const Conv2dBackwardLaunch<float>&);
template void conv2d_backward<double>(const Conv2dBackwardLaunch<double>&);
}  // namespace drcnn::ops::cpu
