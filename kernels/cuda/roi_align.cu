// CUDA launcher of RoIAlign (include/drcnn/ops/detail/roi_align_body.h): forward one thread
// per output element; backward one thread per grad_out element with atomic adds, or (the
// deterministic mode) one thread per (batch, channel) plane walking the RoIs in order. The
// bodies are the ones the CPU tests run (tests/ops/test_roi_align.cpp); GPU parity:
// tests/cuda/test_cuda_roi_align.cpp.
#include "cuda/launch.cuh"
#include "drcnn/ops/detail/roi_align_body.h"

namespace drcnn::ops::cuda {
void roi_align_forward(Stream s, DType dtype, const RoiAlignLaunch& l) {
  dispatch_floating(dtype, "roi_align", [&](auto tag) {
    using T = typename decltype(tag)::type;
    cuda_detail::parallel_for_cuda(cuda_detail::to_cuda(s), l.R * l.C * l.PH * l.PW, detail::RoiAlignForwardBody<T>{l});
  });
}

void roi_align_backward(Stream s, DType dtype, const RoiAlignLaunch& l, bool deterministic) {
  dispatch_floating(dtype, "roi_align_backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const cudaStream_t stream = cuda_detail::to_cuda(s);
    if (deterministic)
      cuda_detail::parallel_for_cuda(stream, l.N * l.C, detail::RoiAlignBackwardPlaneBody<T>{l});
    else
      cuda_detail::parallel_for_cuda(stream, l.R * l.C * l.PH * l.PW, detail::RoiAlignBackwardAtomicBody<T>{l});
  });
}
}  // namespace drcnn::ops::cuda
