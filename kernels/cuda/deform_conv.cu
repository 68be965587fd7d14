// CUDA launchers of the deformable convolution steps (include/drcnn/ops/detail/deform_conv_body.h):
// one thread per column element (im2col; col2im with atomic adds) or per sample (offset and mask
// gradients). The bodies are the ones the CPU tests run; GPU parity: tests/cuda/test_cuda_deform_conv.cpp.
#include "cuda/launch.cuh"
#include "drcnn/ops/detail/deform_conv_body.h"

namespace drcnn::ops::cuda {

template <typename T>
void deform_im2col(Stream s, const DeformConvLaunch<T>& l) {
  cuda_detail::parallel_for_cuda(cuda_detail::to_cuda(s), l.batch * l.g.k_all() * l.g.p(),
                                 detail::DeformIm2ColBody<T>{l});
}

template <typename T>
void deform_col2im(Stream s, const DeformConvLaunch<T>& l) {
  cuda_detail::parallel_for_cuda(cuda_detail::to_cuda(s), l.batch * l.g.k_all() * l.g.p(),
                                 detail::DeformCol2ImAtomicBody<T>{l});
}

template <typename T>
void deform_col2im_coord(Stream s, const DeformConvLaunch<T>& l) {
  cuda_detail::parallel_for_cuda(cuda_detail::to_cuda(s), l.batch * l.offset_groups * l.g.kh * l.g.kw * l.g.p(),
                                 detail::DeformCoordBody<T>{l});
}

#define DRCNN_DEFORM_INSTANTIATE(T)                                          \
  template void deform_im2col<T>(Stream, const DeformConvLaunch<T>&);        \
  template void deform_col2im<T>(Stream, const DeformConvLaunch<T>&);        \
  template void deform_col2im_coord<T>(Stream, const DeformConvLaunch<T>&);
DRCNN_DEFORM_INSTANTIATE(float)
DRCNN_DEFORM_INSTANTIATE(double)
#undef DRCNN_DEFORM_INSTANTIATE
}  // namespace drcnn::ops::cuda
