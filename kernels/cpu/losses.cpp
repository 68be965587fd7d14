// CPU launchers of the loss bodies (include/drcnn/ops/detail/loss_body.h).
// Tests: tests/ops/test_losses.cpp.
//
// Work is split into fixed chunks (kElemChunk elements, kRowChunk cross-entropy rows). When the
// launch asks for the sum of the losses, each chunk sums its own losses in double right after
// writing them (still in L1) and the partials are added in chunk order: the sum depends only on
// n, never on the number of threads or on which thread ran which chunk.
#include <algorithm>
#include <vector>

#include "drcnn/core/parallel_cpu.h"
#include "drcnn/ops/detail/loss_body.h"

// `omp simd` on the elementwise loops: every i writes only its own loss[i] / grad[i] (no
// loop-carried dependence), which GCC cannot prove for the body's pointers by itself (its alias
// versioning fell back to the scalar, branchy loop). Vector IEEE add/mul/compare round exactly
// as the scalar ones, so the results do not change.
#if DRCNN_WITH_OPENMP
#define DRCNN_LOSS_SIMD _Pragma("omp simd")
#else
#define DRCNN_LOSS_SIMD
#endif

namespace drcnn::ops::cpu {
namespace {
constexpr int64_t kElemChunk = 4096;  // elements per chunk (16-32 KiB of losses)
constexpr int64_t kRowChunk = 32;     // cross-entropy rows per chunk

/// Runs body(i) for i in [0, n) in chunks of `chunk`; in parallel when n * work (the elements
/// an invocation touches) reaches kParallelGrain. With sum != null, *sum = the losses' sum.
template <bool kSimd, typename Body, typename T>
void run_chunked(int64_t n, int64_t chunk, int64_t work, const Body& body, const T* loss, double* sum) {
  const int64_t chunks = (n + chunk - 1) / chunk;
  std::vector<double> part(sum ? size_t(chunks) : 0);
  const auto one = [&](int64_t k) {
    const Body b = body;  // a local copy: its pointers are then visibly loop-invariant
    const int64_t lo = k * chunk, hi = std::min(n, lo + chunk);
    // Unswitched on grad: in each copy the compiler knows whether grad is null, so the body's
    // `if (grad)` disappears and the elementwise loops vectorise.
    if constexpr (kSimd) {
      if (b.grad) {
        DRCNN_LOSS_SIMD
        for (int64_t i = lo; i < hi; ++i) b(i);
      } else {
        DRCNN_LOSS_SIMD
        for (int64_t i = lo; i < hi; ++i) b(i);
      }
    } else {
      if (b.grad)
        for (int64_t i = lo; i < hi; ++i) b(i);
      else
        for (int64_t i = lo; i < hi; ++i) b(i);
    }
    if (sum) {
      // 8 interleaved accumulators (a fixed pattern, so still deterministic) instead of one
      // serial chain of dependent adds; combined in a fixed order.
      double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      int64_t i = lo;
      for (; i + 8 <= hi; i += 8)
        for (int j = 0; j < 8; ++j) acc[j] += double(loss[i + j]);
      for (int j = 0; i < hi; ++i, ++j) acc[j] += double(loss[i]);
      part[size_t(k)] = ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
    }
  };
  const bool parallel = n * work >= kParallelGrain;
  parallel_for_cpu(chunks, one, parallel ? 1 : chunks + 1);
  if (sum) {
    double s = 0;
    for (double p : part) s += p;
    *sum = s;
  }
}

struct CpuLossLaunch {
  double* sum;
  template <typename T>
  void operator()(int64_t n, const detail::CrossEntropyRowBody<T>& body) const {
    run_chunked<false>(n, kRowChunk, body.C, body, body.loss, sum);
  }
  template <typename Body>
  void operator()(int64_t n, const Body& body) const {
    run_chunked<true>(n, kElemChunk, 1, body, body.loss, sum);
  }
};
}  // namespace

void loss(detail::LossKind kind, DType dtype, const detail::LossLaunch& l) {
  detail::run_loss(kind, dtype, l, CpuLossLaunch{l.sum});
}
void cross_entropy(DType dtype, const detail::CrossEntropyLaunch& l) {
  detail::run_cross_entropy(dtype, l, CpuLossLaunch{l.sum});
}
}  // namespace drcnn::ops::cpu
