// NVTX ranges (include/drcnn/core/profile.h). NVTX 3 is header-only and ships with the CUDA
// toolkit: without an attached profiler each call is one check of a null function pointer.
#include "drcnn/core/profile.h"

#include "drcnn/config.h"
#if DRCNN_WITH_CUDA
#include <nvtx3/nvToolsExt.h>
#endif

namespace drcnn::profile {
void range_push(const char* name) {
#if DRCNN_WITH_CUDA
  nvtxRangePushA(name);
#else
  (void)name;
#endif
}
void range_pop() {
#if DRCNN_WITH_CUDA
  nvtxRangePop();
#endif
}
}  // namespace drcnn::profile
