// Internal: the opt-in bfloat16 GEMM block of kernels/cpu/gemm.cpp (ops/cpu_precision.h), through
// oneDNN's matmul primitive; compiled only with oneDNN (DRCNN_HAVE_ONEDNN).
#pragma once
#include <cstdint>

namespace drcnn::ops::cpu::onednn {
/// dst[i] = src[i] rounded to bfloat16 (nearest, ties to even; NaN stays NaN), as raw bits.
void to_bf16(const float* src, uint16_t* dst, int64_t n);
/// C[rows x n] (row stride ldc) = alpha * op(A) op(B) + beta * C on the calling thread, op(A)
/// [rows x k] and op(B) [k x n] stored in bfloat16 as BLAS describes them (row-major, lda/ldb,
/// transposed when ta/tb); float32 accumulation and C. The primitive is cached per shape.
void gemm_bf16_block(bool ta, bool tb, int64_t rows, int64_t n, int64_t k, float alpha, const uint16_t* a,
                     int64_t lda, const uint16_t* b, int64_t ldb, float beta, float* c, int64_t ldc);
}  // namespace drcnn::ops::cpu::onednn
