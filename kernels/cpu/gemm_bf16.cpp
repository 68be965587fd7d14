// The bfloat16 GEMM block (kernels/cpu/gemm_bf16.h): oneDNN's matmul primitive with bf16 src and
// weights and an f32 dst (f32 accumulation), created for one thread and cached per shape, so a
// block's summation order depends on its shape only (kernels/cpu/gemm.cpp's fixed row blocks
// keep the whole product thread-count independent). alpha is the primitive's output scale, beta
// a sum post-op. Scratchpads are user-provided (blocks run concurrently).
#include "gemm_bf16.h"

#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <unordered_map>

#include <oneapi/dnnl/dnnl.hpp>

#include "drcnn/config.h"
#if DRCNN_WITH_OPENMP
#include <omp.h>
#endif

#include "drcnn/core/error.h"
#include "drcnn/core/parallel_cpu.h"
#include "drcnn/core/storage.h"
#include "drcnn/ops/cpu_precision.h"
#include "cpu_features.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace drcnn::ops::cpu::onednn {
namespace {
using dnnl::memory;
using dt = memory::data_type;

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

struct Plan {
  dnnl::matmul prim;
  memory::desc a, b, c;
  size_t scratch = 0;
};
using Key = std::tuple<bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, float, float>;
std::mutex g_mutex;
std::map<Key, std::shared_ptr<const Plan>>& plans() {
  static std::map<Key, std::shared_ptr<const Plan>> m;
  return m;
}
constexpr size_t kMaxPlans = 1024;

std::shared_ptr<const Plan> make_plan(const Key& k) {
  const auto [ta, tb, rows, n, kk, lda, ldb, ldc, alpha, beta] = k;
  auto p = std::make_shared<Plan>();
  p->a = memory::desc({rows, kk}, dt::bf16, ta ? memory::dims{1, lda} : memory::dims{lda, 1});
  p->b = memory::desc({kk, n}, dt::bf16, tb ? memory::dims{1, ldb} : memory::dims{ldb, 1});
  p->c = memory::desc({rows, n}, dt::f32, memory::dims{ldc, 1});
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (alpha != 1.0f) attr.set_output_scales(0, {alpha});
  if (beta != 0.0f) {
    dnnl::post_ops po;
    po.append_sum(beta);
    attr.set_post_ops(po);
  }
  const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(p->a, p->b, p->c), attr, engine());
  p->prim = dnnl::matmul(pd);
  p->scratch = pd.scratchpad_desc().get_size();
  return p;
}

/// oneDNN sizes a primitive's threads from OpenMP's setting at creation and execution: one here.
struct OneThread {
#if DRCNN_WITH_OPENMP
  int saved = omp_get_max_threads();
  OneThread() { omp_set_num_threads(1); }
  ~OneThread() { omp_set_num_threads(saved); }
#endif
  OneThread(const OneThread&) = delete;
  OneThread& operator=(const OneThread&) = delete;
};
}  // namespace

#if defined(__x86_64__)
// GCC 12's AVX-512 intrinsics pass an undefined merge operand, which -Wmaybe-uninitialized
// reports once inlined (a known false positive).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
/// to_bf16's integer rounding 16 lanes at a time (AVX-512F; bf16 mode implies it): the same
/// formula per element, so the same bits; the scalar loop below finishes the last < 16.
__attribute__((target("avx512f"))) int64_t to_bf16_avx512(const float* src, uint16_t* dst, int64_t n) {
  const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
  const __m512i bias = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1), quiet = _mm512_set1_epi32(0x40);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i bits = _mm512_loadu_si512(src + i);
    // |bits| > 0x7f800000 as signed 32-bit integers (both below 2^31): NaN.
    const __mmask16 nan = _mm512_cmpgt_epi32_mask(_mm512_and_si512(bits, abs_mask), inf);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), one);
    const __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(bits, _mm512_add_epi32(bias, lsb)), 16);
    const __m512i nan_bits = _mm512_or_si512(_mm512_srli_epi32(bits, 16), quiet);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i),
                        _mm512_cvtepi32_epi16(_mm512_mask_blend_epi32(nan, rounded, nan_bits)));
  }
  return i;
}
#pragma GCC diagnostic pop
#endif

void to_bf16(const float* src, uint16_t* dst, int64_t n) {
  int64_t start = 0;
#if defined(__x86_64__)
  if (cpu_supports_avx512f() && cpu_fast_copies()) start = to_bf16_avx512(src, dst, n);
#endif
  for (int64_t i = start; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, src + i, 4);
    if ((bits & 0x7fffffffu) > 0x7f800000u) {
      dst[i] = uint16_t((bits >> 16) | 0x40u);  // NaN: keep it a (quiet) NaN
    } else {
      bits += 0x7fffu + ((bits >> 16) & 1u);  // round to nearest, ties to even
      dst[i] = uint16_t(bits >> 16);
    }
  }
}

void gemm_bf16_block(bool ta, bool tb, int64_t rows, int64_t n, int64_t k, float alpha, const uint16_t* a,
                     int64_t lda, const uint16_t* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  const OneThread one;
  const Key key{ta, tb, rows, n, k, lda, ldb, ldc, alpha, beta};
  std::shared_ptr<const Plan> p;
  try {
    {
      std::lock_guard<std::mutex> lock(g_mutex);
      auto it = plans().find(key);
      if (it != plans().end()) p = it->second;
    }
    if (!p) {
      auto made = make_plan(key);
      std::lock_guard<std::mutex> lock(g_mutex);
      if (plans().size() >= kMaxPlans) plans().clear();
      p = plans().emplace(key, std::move(made)).first->second;
    }
    ScratchBuffer<unsigned char> scratch(int64_t(p->scratch) + 64, Device::cpu());
    dnnl::stream s(engine());
    std::unordered_map<int, memory> args = {
        {DNNL_ARG_SRC, memory(p->a, engine(), const_cast<uint16_t*>(a))},
        {DNNL_ARG_WEIGHTS, memory(p->b, engine(), const_cast<uint16_t*>(b))},
        {DNNL_ARG_DST, memory(p->c, engine(), c)}};
    if (p->scratch)
      args.emplace(DNNL_ARG_SCRATCHPAD, memory(memory::desc({int64_t(p->scratch)}, dt::u8, memory::format_tag::x),
                                               engine(), scratch.data()));
    p->prim.execute(s, args);
    s.wait();
  } catch (const dnnl::error& e) {
    DRCNN_FAIL("matmul (bf16): oneDNN failed: ", e.what(), " (status ", int(e.status), ") for ", rows, "x", n, "x",
               k);
  }
}
}  // namespace drcnn::ops::cpu::onednn
