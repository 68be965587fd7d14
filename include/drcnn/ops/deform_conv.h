// Deformable convolution, DCNv1 and modulated DCNv2 (Dai et al. 2017, Zhu et al. 2019), with the
// semantics and argument order of torchvision.ops.deform_conv2d: every kernel tap of every output
// pixel samples the input bilinearly at its regular position plus a learned offset, and (DCNv2)
// scales the sample by a mask before the weights apply. The exact formula, the border rules and
// the column layout: ops/detail/deform_conv_body.h. Steps: deformable im2col, then the GEMM of
// conv2d (ops::matmul: Eigen on the CPU, cuBLAS on CUDA); backward: the GEMMs, then col2im for the
// input and one body for the offset and mask gradients. float32 and float64, CPU and CUDA.
// Errors vs torchvision, speed: docs/kernels/deform-conv.md. Tests: tests/ops/test_deform_conv.cpp.
#pragma once
#include <array>
#include <cstdint>

#include "drcnn/core/tensor.h"

namespace drcnn::ops {

/// Hyper-parameters of a deformable convolution; pairs are (height, width).
struct DeformConv2dParams {
  std::array<int64_t, 2> stride{1, 1};    // >= 1
  std::array<int64_t, 2> padding{0, 0};   // >= 0
  std::array<int64_t, 2> dilation{1, 1};  // >= 1
  int64_t groups = 1;                     // weight groups: divides Cin and Cout
  int64_t offset_groups = 1;              // divides Cin; channel c uses offset group c / (Cin / offset_groups)
};

/// input [N, Cin, H, W]; offset [N, 2 * offset_groups * kh * kw, Ho, Wo] ((dy, dx) pairs per tap,
/// torchvision's layout); mask [N, offset_groups * kh * kw, Ho, Wo] or undefined (DCNv1: every
/// mask 1); weight [Cout, Cin / groups, kh, kw]; bias [Cout] or undefined. Ho, Wo are conv2d's.
/// One dtype (float32/float64) and one device for all; any strides. Result: contiguous
/// [N, Cout, Ho, Wo]. A bad shape throws drcnn::Error naming deform_conv2d and the shapes.
/// CPU results are independent of the thread count.
Tensor deform_conv2d(const Tensor& input, const Tensor& offset, const Tensor& mask, const Tensor& weight,
                     const Tensor& bias = Tensor(), std::array<int64_t, 2> stride = {1, 1},
                     std::array<int64_t, 2> padding = {0, 0}, std::array<int64_t, 2> dilation = {1, 1},
                     int64_t groups = 1, int64_t offset_groups = 1);
Tensor deform_conv2d(const Tensor& input, const Tensor& offset, const Tensor& mask, const Tensor& weight,
                     const Tensor& bias, const DeformConv2dParams& p);

/// Which gradients deform_conv2d_backward computes (mask: only when a mask was given).
struct DeformConv2dGradMask {
  bool input = true, offset = true, mask = true, weight = true, bias = true;
};
/// Gradients of deform_conv2d; a member is undefined when not requested (or no mask).
struct DeformConv2dGrads {
  Tensor input, offset, mask, weight, bias;
};

/// Backward of deform_conv2d for grad_out [N, Cout, Ho, Wo] (the output's shape, dtype and
/// device). The offset gradient is that of torchvision (the bilinear form's derivative on the
/// cell floor(y), floor(x); zero for a sample outside (-1, H) x (-1, W)). CPU: deterministic;
/// CUDA: the input gradient is accumulated with float atomics.
DeformConv2dGrads deform_conv2d_backward(const Tensor& grad_out, const Tensor& input, const Tensor& offset,
                                         const Tensor& mask, const Tensor& weight, const DeformConv2dParams& p,
                                         DeformConv2dGradMask which = {});
}  // namespace drcnn::ops
