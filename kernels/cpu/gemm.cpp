// CPU GEMM through Eigen (the only translation unit that includes Eigen; compiled with
// DRCNN_CPU_GEMM_FLAGS, AVX2+FMA by default). Row-major operands mapped without copies.
// Tests: tests/ops/test_matmul.cpp. Benchmark: benchmarks/bench_core.cpp.
#include <Eigen/Core>

#include "drcnn/core/parallel_cpu.h"
#include "drcnn/ops/launch.h"

namespace drcnn::ops::cpu {

template <typename T>
void gemm(const GemmLaunch<T>& l) {
  using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using ConstMap = Eigen::Map<const Mat, Eigen::Unaligned, Eigen::OuterStride<>>;
  using MutMap = Eigen::Map<Mat, Eigen::Unaligned, Eigen::OuterStride<>>;
  // Stored shapes: A is (trans_a ? K x M : M x K), B is (trans_b ? N x K : K x N).
  const Eigen::Index m = l.m, n = l.n, k = l.k;
  // Eigen parallelises one GEMM with OpenMP itself; batches then run one after another.
  for (int64_t b = 0; b < l.batch; ++b) {
    ConstMap A(l.a + b * l.stride_a, l.trans_a ? k : m, l.trans_a ? m : k, Eigen::OuterStride<>(l.lda));
    ConstMap B(l.b + b * l.stride_b, l.trans_b ? n : k, l.trans_b ? k : n, Eigen::OuterStride<>(l.ldb));
    MutMap C(l.c + b * l.stride_c, m, n, Eigen::OuterStride<>(l.ldc));
    if (k == 0) {  // empty inner dimension: C = beta * C (beta 0 clears even NaN)
      if (l.beta == T(0)) C.setZero();
      else C *= l.beta;
      continue;
    }
    if (l.beta == T(0)) C.setZero();
    else if (l.beta != T(1)) C *= l.beta;
    if (!l.trans_a && !l.trans_b) C.noalias() += l.alpha * A * B;
    else if (l.trans_a && !l.trans_b) C.noalias() += l.alpha * A.transpose() * B;
    else if (!l.trans_a && l.trans_b) C.noalias() += l.alpha * A * B.transpose();
    else C.noalias() += l.alpha * A.transpose() * B.transpose();
  }
}

template void gemm<float>(const GemmLaunch<float>&);
template void gemm<double>(const GemmLaunch<double>&);
}  // namespace drcnn::ops::cpu
