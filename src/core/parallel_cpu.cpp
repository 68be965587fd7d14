#include "drcnn/core/parallel_cpu.h"

#if DRCNN_WITH_OPENMP
#include <omp.h>
#endif

namespace drcnn {
namespace {
int g_default_threads = 0;
}
int cpu_threads() {
#if DRCNN_WITH_OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}
void set_cpu_threads(int n) {
#if DRCNN_WITH_OPENMP
  if (g_default_threads == 0) g_default_threads = omp_get_max_threads();
  omp_set_num_threads(n > 0 ? n : g_default_threads);
#else
  (void)n;
  (void)g_default_threads;
#endif
}
}  // namespace drcnn
