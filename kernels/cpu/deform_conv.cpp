// CPU launchers of the deformable convolution steps (include/drcnn/ops/detail/deform_conv_body.h).
// im2col runs one column row per index (DeformIm2ColBody::row, the values of its per-element
// form), the offset/mask gradients one sample per index; col2im runs one input plane
// per index (DeformCol2ImPlaneBody), so no two threads add into one cell and the result is the
// same for every thread count. Tests: tests/ops/test_deform_conv.cpp.
#include <algorithm>

#include "drcnn/core/parallel_cpu.h"
#include "drcnn/ops/detail/deform_conv_body.h"

namespace drcnn::ops::cpu {

template <typename T>
void deform_im2col(const DeformConvLaunch<T>& l) {
  // One column row (b, c, k) per index: P samples without per-element index divisions.
  const detail::DeformIm2ColBody<T> body{l};
  parallel_for_cpu(l.batch * l.g.k_all(), [&](int64_t r) { body.row(r); },
                   std::max<int64_t>(1, kParallelGrain / (16 * std::max<int64_t>(l.g.p(), 1))));
}

template <typename T>
void deform_col2im(const DeformConvLaunch<T>& l) {
  // Each invocation walks kh * kw * P taps: a grain of 1 plane.
  parallel_for_cpu(l.batch * l.g.c_in, detail::DeformCol2ImPlaneBody<T>{l}, 1);
}

template <typename T>
void deform_col2im_coord(const DeformConvLaunch<T>& l) {
  const int64_t n = l.batch * l.offset_groups * l.g.kh * l.g.kw * l.g.p();
  const int64_t per = l.g.c_in / l.offset_groups;  // channels each invocation sums
  parallel_for_cpu(n, detail::DeformCoordBody<T>{l}, std::max<int64_t>(1, kParallelGrain / (4 * per)));
}

#define DRCNN_DEFORM_INSTANTIATE(T)                                  \
  template void deform_im2col<T>(const DeformConvLaunch<T>&);        \
  template void deform_col2im<T>(const DeformConvLaunch<T>&);        \
  template void deform_col2im_coord<T>(const DeformConvLaunch<T>&);
DRCNN_DEFORM_INSTANTIATE(float)
DRCNN_DEFORM_INSTANTIATE(double)
#undef DRCNN_DEFORM_INSTANTIATE
}  // namespace drcnn::ops::cpu
