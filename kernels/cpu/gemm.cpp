// CPU GEMM through Eigen (the only translation unit that includes Eigen; compiled with
// DRCNN_CPU_GEMM_FLAGS, AVX2+FMA by default). Row-major operands mapped without copies.
// float32 runs oneDNN's sgemm instead when the build has oneDNN (AVX-512 kernels: ~100 GFLOP/s
// of CPU time on one Zen 4 core against Eigen's ~72 on the RoI head's 512 x 12544 x 1024
// products), in the same fixed row blocks, each single-threaded: still bitwise the same for
// every thread count.
// GemmLaunch::bf16 (float32, oneDNN builds): A and B are rounded to bfloat16 once, then each
// block runs oneDNN's bf16 matmul primitive on one thread (kernels/cpu/gemm_bf16.cpp).
// Tests: tests/ops/test_matmul.cpp. Benchmark: benchmarks/bench_core.cpp.
#include <Eigen/Core>

#include <algorithm>
#include <type_traits>

#if DRCNN_HAVE_ONEDNN
#include <oneapi/dnnl/dnnl.h>

#include "gemm_bf16.h"
#if DRCNN_WITH_OPENMP
#include <omp.h>
#endif
#endif

#include "drcnn/core/error.h"
#include "drcnn/core/parallel_cpu.h"
#include "drcnn/core/storage.h"
#include "drcnn/ops/launch.h"

namespace drcnn::ops::cpu {

namespace {
// Rows of C computed by one task. Fixed, so every element's summation order (Eigen's blocking
// of one block-sized product) is the same whatever the thread count: results are bitwise
// reproducible across OMP_NUM_THREADS. (Eigen's own parallel GEMM picks its blocking from
// the thread count, so 1 and 2 threads gave different bits.)
constexpr int64_t kRowBlock = 256;
// Below this many multiply-adds a task's thread start-up costs more than it saves.
constexpr int64_t kParallelMacs = int64_t(1) << 22;

const bool g_eigen_single_threaded = [] {
  Eigen::setNbThreads(1);  // parallelism comes from the fixed row blocks below
  return true;
}();
}  // namespace

template <typename T>
void gemm(const GemmLaunch<T>& l) {
  (void)g_eigen_single_threaded;
  using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using ConstMap = Eigen::Map<const Mat, Eigen::Unaligned, Eigen::OuterStride<>>;
  using MutMap = Eigen::Map<Mat, Eigen::Unaligned, Eigen::OuterStride<>>;
  const int64_t blocks = (l.m + kRowBlock - 1) / kRowBlock;
  const int64_t tasks = l.batch * blocks;
  const int64_t macs_per_task = std::min(l.m, kRowBlock) * l.n * std::max<int64_t>(l.k, 1);
#if DRCNN_HAVE_ONEDNN
  // bf16: both operands converted once (their stored spans, each batch that is not broadcast).
  ScratchBuffer<uint16_t> a16, b16;
  int64_t span_a = 0, span_b = 0;
  if constexpr (std::is_same_v<T, float>) {
    if (l.bf16 && l.k > 0) {
      span_a = ((l.trans_a ? l.k : l.m) - 1) * l.lda + (l.trans_a ? l.m : l.k);
      span_b = ((l.trans_b ? l.n : l.k) - 1) * l.ldb + (l.trans_b ? l.k : l.n);
      const int64_t na = l.stride_a ? l.batch : 1, nb = l.stride_b ? l.batch : 1;
      a16 = ScratchBuffer<uint16_t>(na * span_a, Device::cpu());
      b16 = ScratchBuffer<uint16_t>(nb * span_b, Device::cpu());
      parallel_for_cpu(na + nb, [&](int64_t i) {
        if (i < na) onednn::to_bf16(l.a + i * l.stride_a, a16.data() + i * span_a, span_a);
        else onednn::to_bf16(l.b + (i - na) * l.stride_b, b16.data() + (i - na) * span_b, span_b);
      }, 1);
    }
  }
#endif
  // Task t: batch t / blocks, rows [r0, r0 + rows) of C.
  auto task = [&](int64_t t) {
    const int64_t b = t / blocks, r0 = (t % blocks) * kRowBlock;
    const Eigen::Index rows = std::min(kRowBlock, l.m - r0), n = l.n, k = l.k;
    // Stored shapes: A is (trans_a ? K x M : M x K), B is (trans_b ? N x K : K x N). Rows r0.. of
    // op(A) are rows of A, or columns of A when transposed.
    const T* a = l.a + b * l.stride_a + (l.trans_a ? r0 : r0 * l.lda);
    ConstMap A(a, l.trans_a ? k : rows, l.trans_a ? rows : k, Eigen::OuterStride<>(l.lda));
    ConstMap B(l.b + b * l.stride_b, l.trans_b ? n : k, l.trans_b ? k : n, Eigen::OuterStride<>(l.ldb));
    MutMap C(l.c + b * l.stride_c + r0 * l.ldc, rows, n, Eigen::OuterStride<>(l.ldc));
    if (l.beta == T(0)) C.setZero();  // beta 0 clears even NaN, as BLAS does
#if DRCNN_HAVE_ONEDNN
    if constexpr (std::is_same_v<T, float>) {
      if (k == 0) {  // empty inner dimension: C = beta * C
        if (l.beta != T(0) && l.beta != T(1)) C *= l.beta;
        return;
      }
      if (l.bf16) {
        const uint16_t* a_b = a16.data() + (l.stride_a ? b * span_a : 0) + (l.trans_a ? r0 : r0 * l.lda);
        const uint16_t* b_b = b16.data() + (l.stride_b ? b * span_b : 0);
        onednn::gemm_bf16_block(l.trans_a, l.trans_b, rows, n, k, l.alpha, a_b, l.lda, b_b, l.ldb, l.beta, C.data(),
                                l.ldc);
        return;
      }
      // One thread inside the block whatever the caller's count (oneDNN reads OpenMP's max
      // threads): the block's summation order then depends on its shape only.
#if DRCNN_WITH_OPENMP
      const int saved = omp_get_max_threads();
      omp_set_num_threads(1);
#endif
      const dnnl_status_t st =
          dnnl_sgemm(l.trans_a ? 'T' : 'N', l.trans_b ? 'T' : 'N', rows, n, k, l.alpha, a, l.lda,
                     l.b + b * l.stride_b, l.ldb, l.beta, C.data(), l.ldc);
#if DRCNN_WITH_OPENMP
      omp_set_num_threads(saved);
#endif
      DRCNN_CHECK(st == dnnl_success, "matmul: oneDNN sgemm failed with status ", int(st), " for ", rows, "x", n,
                  "x", k);
      return;
    }
#endif
    if (l.beta != T(0) && l.beta != T(1)) C *= l.beta;
    if (k == 0) return;  // empty inner dimension: C = beta * C
    if (!l.trans_a && !l.trans_b) C.noalias() += l.alpha * A * B;
    else if (l.trans_a && !l.trans_b) C.noalias() += l.alpha * A.transpose() * B;
    else if (!l.trans_a && l.trans_b) C.noalias() += l.alpha * A * B.transpose();
    else C.noalias() += l.alpha * A.transpose() * B.transpose();
  };
  parallel_for_cpu(tasks, task, macs_per_task >= kParallelMacs ? 2 : tasks + 1);
}

template void gemm<float>(const GemmLaunch<float>&);
template void gemm<double>(const GemmLaunch<double>&);
}  // namespace drcnn::ops::cpu
