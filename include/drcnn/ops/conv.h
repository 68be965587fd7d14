// 2-D convolution (cross-correlation, as torch.nn.functional.conv2d): forward and the three
// gradients. CPU: im2col (ops/detail/conv_body.h) + the Eigen GEMM of kernels/cpu/gemm.cpp
// (kernels/cpu/conv.cpp); CUDA: cuDNN 9 (kernels/cudnn/conv.cpp). float32 and float64 on both.
// Layout NCHW; Conv2dParams::layout is where NHWC will be selected once a backend supports it.
// Algorithm, determinism and speed: docs/kernels/conv2d.md. Tests: tests/ops/test_conv.cpp.
#pragma once
#include <array>
#include <cstdint>
#include <memory>

#include "drcnn/core/tensor.h"
#include "drcnn/ops/detail/conv_body.h"

namespace drcnn::ops {

/// Memory layout of input, output (and, for NHWC, the weight as [Cout, kh, kw, Cin/groups]).
/// Only NCHW is implemented; NHWC is rejected with an error naming conv2d.
enum class ConvLayout { NCHW, NHWC };

/// Hyper-parameters of a 2-D convolution; pairs are (height, width).
struct Conv2dParams {
  std::array<int64_t, 2> stride{1, 1};    // >= 1
  std::array<int64_t, 2> padding{0, 0};   // >= 0, zero padding on both sides
  std::array<int64_t, 2> dilation{1, 1};  // >= 1
  int64_t groups = 1;                     // >= 1, divides Cin and Cout
  ConvLayout layout = ConvLayout::NCHW;
};

// Conv2dGeometry (every extent of one convolution) is defined in ops/detail/conv_body.h.

/// Output extent along one axis (PyTorch's formula); may be <= 0 for a too-small input.
int64_t conv2d_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t padding, int64_t dilation);

/// Validates shapes and parameters (ranks, channels, groups, stride/dilation >= 1,
/// padding >= 0, output size >= 1, layout) and returns the geometry. Throws drcnn::Error
/// naming `op` (e.g. "conv2d") otherwise.
Conv2dGeometry conv2d_geometry(const Shape& input, const Shape& weight, const Conv2dParams& p,
                               const char* op = "conv2d");

/// out[n, co, y, x] = bias[co] + sum_{ci in group(co), i, j} w[co, ci, i, j] *
///   in[n, g * cin_g + ci, y * sh - ph + i * dh, x * sw - pw + j * dw] (zero outside the image).
/// input [N, Cin, H, W], weight [Cout, Cin / groups, kh, kw], bias [Cout] or undefined.
/// Requires: float32/float64, one dtype and one device for all operands; any strides (strided
/// operands are made contiguous first). Result: contiguous [N, Cout, Ho, Wo].
/// CPU results are bitwise identical for every thread count (both implementations, CpuConvImpl).
Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias = Tensor(), const Conv2dParams& p = {});

/// What a forward can hand to the backward of the same call (opaque; empty when nothing): the
/// CPU's oneDNN path keeps the input already converted to backward-weights' layout (bf16 or
/// float32 nChw16c) when that is the layout its forward made, so conv2d_backward does not
/// convert it again. Valid only for the same input values, shape, precision and thread count;
/// anything else is detected and ignored (the backward converts as without it).
using Conv2dSaved = std::shared_ptr<const void>;
/// conv2d, also filling *saved (for autograd: the input will be read again for grad_weight).
Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias, const Conv2dParams& p,
              Conv2dSaved* saved);

/// Which gradients conv2d_backward computes.
struct Conv2dGradMask {
  bool input = true, weight = true, bias = true;
};
/// Gradients of conv2d; a member is undefined when not requested.
struct Conv2dGrads {
  Tensor input;   // [N, Cin, H, W]
  Tensor weight;  // [Cout, Cin / groups, kh, kw]
  Tensor bias;    // [Cout]
};

/// Backward of conv2d for the loss gradient grad_out [N, Cout, Ho, Wo]:
/// grad_input = the transposed convolution of grad_out with weight, grad_weight = the
/// correlation of input with grad_out summed over the batch, grad_bias = grad_out summed over
/// N, Ho, Wo. The same checks as conv2d, and grad_out must have the output's shape, dtype and
/// device. CPU: deterministic, independent of the thread count.
Conv2dGrads conv2d_backward(const Tensor& grad_out, const Tensor& input, const Tensor& weight, const Conv2dParams& p,
                            Conv2dGradMask which = {}, const Conv2dSaved& saved = nullptr);

/// Which implementation runs float32 conv2d / conv2d_backward on the CPU (float64 always uses
/// im2col). OneDnn (the default when drcnn was built with oneDNN): oneDNN's blocked direct
/// convolutions, ~1.2x im2col's speed on ResNet-50. Im2col: im2col + the Eigen GEMM. Both give
/// the same bits for every thread count; they differ from each other by float32 rounding. The
/// environment variable DRCNN_CPU_CONV=im2col|onednn sets it at start-up.
enum class CpuConvImpl { Im2col, OneDnn };
/// Selects the implementation (process-wide). OneDnn without oneDNN in the build throws.
void set_cpu_conv_impl(CpuConvImpl impl);
CpuConvImpl cpu_conv_impl();
/// Whether this build has the oneDNN implementation.
bool cpu_conv_has_onednn();
}  // namespace drcnn::ops
