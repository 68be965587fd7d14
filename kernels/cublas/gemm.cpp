// CUDA GEMM through cuBLAS (compiled as C++, not nvcc). Row-major operands are passed with
// ops::gemm_to_column_major (include/drcnn/ops/matmul.h), whose mapping is proven on the CPU
// by tests/ops/test_matmul.cpp against a column-major reference GEMM. FP32 runs in the default
// math mode (no TF32), so results stay true FP32. cuBLAS's own allocation failures
// (CUBLAS_STATUS_ALLOC_FAILED) are retried once after flushing the caching allocator. Covered on a GPU by tests/cuda/test_cuda_parity.cpp.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <climits>
#include <map>
#include <type_traits>

#include "cuda/cuda_check.h"
#include "drcnn/config.h"
#include "drcnn/core/allocator.h"
#include "drcnn/core/error.h"
#include "drcnn/ops/launch.h"
#include "drcnn/ops/matmul.h"

namespace drcnn::ops::cuda {
namespace {
// cuBLAS allocates device memory itself (handle, workspace); such failures are retried once
// after flushing drcnn's caching allocator, whose cached blocks may hold the memory.
bool cublas_out_of_memory(cublasStatus_t st) { return st == CUBLAS_STATUS_ALLOC_FAILED; }

// One handle per (thread, device): cuBLAS handles must not be shared by threads that set
// different streams. Destroyed with the thread.
struct HandleCache {
  std::map<int, cublasHandle_t> handles;
  ~HandleCache() {
    for (auto& [dev, h] : handles) cublasDestroy(h);
  }
};
cublasHandle_t handle_for_current_device() {
  thread_local HandleCache cache;
  int device = 0;
  DRCNN_CUDA_CHECK(cudaGetDevice(&device));
  auto it = cache.handles.find(device);
  if (it != cache.handles.end()) return it->second;
  cublasHandle_t h = nullptr;
  DRCNN_CUBLAS_CHECK(call_with_flush_retry(allocator_for(Device::cuda(device)), [&] { return cublasCreate(&h); },
                                           cublas_out_of_memory));
  cache.handles.emplace(device, h);
  return h;
}

int to_int(int64_t v, const char* what) {
  DRCNN_CHECK(v >= 0 && v <= INT_MAX, "matmul: ", what, " = ", v, " exceeds cuBLAS's int range");
  return int(v);
}
}  // namespace

template <typename T>
void gemm(Stream s, const GemmLaunch<T>& l) {
  if (l.m == 0 || l.n == 0 || l.batch == 0) return;  // no output element
  const auto stream = static_cast<cudaStream_t>(s.handle);
  cublasHandle_t h = handle_for_current_device();
  int device = 0;
  DRCNN_CUDA_CHECK(cudaGetDevice(&device));
  Allocator& alloc = allocator_for(Device::cuda(device));
  DRCNN_CUBLAS_CHECK(cublasSetStream(h, stream));
  if (l.k == 0) {
    // Empty inner dimension: C = beta * C, as BLAS (and the CPU path) define it. Not left to
    // cuBLAS: batched cuBLAS GEMMs have returned C unchanged for k == 0 (pytorch/pytorch#31421),
    // which for a freshly allocated C is garbage; PyTorch and ONNX Runtime special-case it too.
    const size_t row_bytes = size_t(l.n) * sizeof(T), pitch = size_t(l.ldc) * sizeof(T);
    for (int64_t b = 0; b < l.batch; ++b) {
      T* cb = l.c + b * l.stride_c;
      if (l.beta == T(0)) {  // all-zero bits are +0.0; never reads C, so NaN garbage is cleared
        DRCNN_CUDA_CHECK(cudaMemset2DAsync(cb, pitch, 0, row_bytes, size_t(l.m), stream));
      } else if (l.beta != T(1)) {  // C *= beta, with cublas<t>scal (documented in place)
        const bool packed = l.ldc == l.n;  // rows back to back: one call for the whole batch entry
        const int len = to_int(packed ? l.m * l.n : l.n, "m * n");
        for (int64_t r = 0; r < (packed ? 1 : l.m); ++r) {
          if constexpr (std::is_same_v<T, float>) DRCNN_CUBLAS_CHECK(cublasSscal(h, len, &l.beta, cb + r * l.ldc, 1));
          else DRCNN_CUBLAS_CHECK(cublasDscal(h, len, &l.beta, cb + r * l.ldc, 1));
        }
      }
    }
    return;
  }
  const ColumnMajorGemm c = gemm_to_column_major(l.trans_a, l.trans_b, l.m, l.n, l.k, l.lda, l.ldb, l.ldc);
  const cublasOperation_t op1 = c.trans_first ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op2 = c.trans_second ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int m = to_int(c.m, "n"), n = to_int(c.n, "m"), k = to_int(c.k, "k");
  const int ld1 = to_int(c.ld_first, "ldb"), ld2 = to_int(c.ld_second, "lda"), ldc = to_int(c.ldc, "ldc");
  const int batch = to_int(l.batch, "batch");
  // cuBLAS's first operand is our B, its second our A.
  if constexpr (std::is_same_v<T, float>) {
    DRCNN_CUBLAS_CHECK(call_with_flush_retry(
        alloc,
        [&] {
          return cublasSgemmStridedBatched(h, op1, op2, m, n, k, &l.alpha, l.b, ld1, l.stride_b, l.a, ld2, l.stride_a,
                                           &l.beta, l.c, ldc, l.stride_c, batch);
        },
        cublas_out_of_memory));
  } else {
    DRCNN_CUBLAS_CHECK(call_with_flush_retry(
        alloc,
        [&] {
          return cublasDgemmStridedBatched(h, op1, op2, m, n, k, &l.alpha, l.b, ld1, l.stride_b, l.a, ld2, l.stride_a,
                                           &l.beta, l.c, ldc, l.stride_c, batch);
        },
        cublas_out_of_memory));
  }
#if DRCNN_SYNC_DEBUG
  DRCNN_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(s.handle)));
#endif
}

template void gemm<float>(Stream, const GemmLaunch<float>&);
template void gemm<double>(Stream, const GemmLaunch<double>&);
}  // namespace drcnn::ops::cuda
