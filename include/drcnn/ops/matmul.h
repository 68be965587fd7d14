// Matrix products. CPU: Eigen GEMM (kernels/cpu/gemm.cpp, AVX2+FMA). CUDA: cuBLAS, with the
// row-major -> column-major mapping of gemm_to_column_major() (tested on the CPU).
#pragma once
#include "drcnn/core/tensor.h"

namespace drcnn::ops {

/// a [M, K] @ b [K, N] -> [M, N]; or batched a [B, M, K] @ b [B, K, N] -> [B, M, N]
/// (a batch of 1 broadcasts). Transposed views are used without copying.
/// Requires: float32/float64, same dtype and device, inner extents equal.
Tensor matmul(const Tensor& a, const Tensor& b);

/// y = x [N, in] @ weight [out, in]^T + bias [out] (bias may be undefined), as torch's F.linear.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

/// cuBLAS (column-major) arguments equivalent to a row-major GEMM: C = op(A) op(B) with
/// C row-major [M, N] is, read column-major, C^T = op(B)^T op(A)^T. So cuBLAS receives the
/// operands swapped, with the same transpose flags, m and n swapped, and the same leading
/// dimensions. Pure host arithmetic, shared by the CUDA path and its CPU test.
struct ColumnMajorGemm {
  bool trans_first, trans_second;  // flags for cuBLAS's A and B
  int64_t m, n, k;
  bool first_is_b;                 // cuBLAS's A is our B (always true; kept explicit for tests)
  int64_t ld_first, ld_second, ldc;
};
/// Inline: the cuBLAS backend (below the Tensor library) and the CPU test both use it.
inline ColumnMajorGemm gemm_to_column_major(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                                            int64_t lda, int64_t ldb, int64_t ldc) {
  // Row-major X (r x c, row stride ld) is, read column-major, X^T with leading dim ld.
  // C = op(A) op(B)  <=>  C^T = op(B)^T op(A)^T, and op(B)^T read column-major is op(B_cm)
  // with the same flag. So cuBLAS computes (n x m) = op(B_cm) (n x k) * op(A_cm) (k x m).
  return ColumnMajorGemm{trans_b, trans_a, n, m, k, true, ldb, lda, ldc};
}
}  // namespace drcnn::ops
