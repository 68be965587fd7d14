// The CPU launcher every single-source kernel body runs under.
#pragma once
#include <cstdint>

#include "drcnn/config.h"

namespace drcnn {

/// Below this many invocations a loop runs on the calling thread (thread start-up dominates).
inline constexpr int64_t kParallelGrain = 32768;

/// Runs f(i) for i in [0, n). Static partition: which thread runs which i never changes the
/// result, because each i writes only its own outputs (the kernels guarantee this).
template <typename F>
void parallel_for_cpu(int64_t n, const F& f, int64_t grain = kParallelGrain) {
#if DRCNN_WITH_OPENMP
  if (n >= grain) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) f(i);
    return;
  }
#endif
  (void)grain;
  for (int64_t i = 0; i < n; ++i) f(i);
}

/// Number of threads parallel_for_cpu uses (1 without OpenMP).
int cpu_threads();
/// Sets that number (OpenMP's omp_set_num_threads); n <= 0 restores the default.
void set_cpu_threads(int n);
}  // namespace drcnn
