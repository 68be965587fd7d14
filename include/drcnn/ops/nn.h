// Layer ops of the ResNet-FPN backbone (spec B.2-B.3) on Tensors, forward and backward, with
// PyTorch 1.13 semantics: max pooling with indices, nearest upsampling to an exact size,
// frozen batch norm, batch norm (train/eval) and group norm. float32 and float64, CPU and
// CUDA from the same bodies (ops/detail/nn_body.h). Inputs are NCHW; strided inputs are made
// contiguous first; outputs are contiguous. Bad inputs throw drcnn::Error naming the op.
// Every backward is deterministic (gather forms and fixed-order reductions; no atomics).
// relu, linear and flatten live in elementwise.h, matmul.h and Tensor::flatten.
// Differentiable versions: include/drcnn/autograd/nn.h. Semantics vs PyTorch:
// docs/kernels/nn-ops.md. Tests: tests/ops/test_nn.cpp, tests/ops/test_nn_golden.cpp.
#pragma once
#include <array>
#include <cstdint>

#include "drcnn/core/tensor.h"

namespace drcnn::ops {

// ================================================================================ max pool
/// Parameters of max_pool2d, as torch.nn.functional.max_pool2d ({height, width} pairs).
struct MaxPool2dOptions {
  std::array<int64_t, 2> kernel_size{1, 1};
  /// {0, 0} (the default) means stride = kernel_size, like PyTorch's stride=None.
  std::array<int64_t, 2> stride{0, 0};
  std::array<int64_t, 2> padding{0, 0};
  std::array<int64_t, 2> dilation{1, 1};
  bool ceil_mode = false;

  /// The same value for height and width, as torch's integer arguments:
  /// MaxPool2dOptions::square(3, 2, 1) is the ResNet stem pool, square(1, 2) the FPN's P6.
  static MaxPool2dOptions square(int64_t kernel, int64_t stride = 0, int64_t padding = 0, int64_t dilation = 1,
                                 bool ceil_mode = false) {
    return {{kernel, kernel}, {stride, stride}, {padding, padding}, {dilation, dilation}, ceil_mode};
  }
};

struct MaxPool2dResult {
  Tensor output;   // [N, C, OH, OW], dtype of the input
  Tensor indices;  // [N, C, OH, OW] int64: h * W + w of the max within its input plane
};

/// Max pooling over [N, C, H, W]. Padding acts as -inf; a NaN in a window makes the output NaN
/// (its index is the last NaN in scan order, as aten); ties keep the first index in row-major
/// scan order. OH = floor_or_ceil((H + 2 ph - dh (kh - 1) - 1) / sh) + 1, and with ceil_mode
/// a last window that would start in the bottom padding is dropped (PyTorch's rule).
/// Requires: float32/float64, 4-D; kernel, stride (after the default), dilation > 0;
/// 0 <= padding <= kernel / 2; OH, OW >= 1.
MaxPool2dResult max_pool2d_with_indices(const Tensor& x, const MaxPool2dOptions& o);
/// The output of max_pool2d_with_indices only.
Tensor max_pool2d(const Tensor& x, const MaxPool2dOptions& o);
/// dL/dx [N, C, H, W] (input_shape) from dL/dy and the forward's indices: each input element
/// sums the gradients of the outputs whose index names it (gather form, deterministic on both
/// backends). Requires: the indices and options of the forward that produced grad_output.
Tensor max_pool2d_backward(const Tensor& grad_output, const Tensor& indices, const Shape& input_shape,
                           const MaxPool2dOptions& o);

// ================================================================================ upsample
/// Nearest upsampling (or downsampling) of [N, C, H, W] to [N, C, out_h, out_w], exactly as
/// F.interpolate(x, size=(out_h, out_w), mode='nearest') in PyTorch 1.13: source row
/// min(floor(oh * float(H) / out_h), H - 1) computed in float (identity for equal sizes,
/// oh >> 1 for an exact 2x). Requires: float32/float64, 4-D, H, W, out_h, out_w >= 1.
Tensor upsample_nearest2d(const Tensor& x, int64_t out_h, int64_t out_w);
/// dL/dx [N, C, H, W] (input_shape): each input element sums the gradients of the outputs
/// copied from it (gather form, deterministic).
Tensor upsample_nearest2d_backward(const Tensor& grad_output, const Shape& input_shape);

// ================================================================================ norms
/// torchvision's FrozenBatchNorm2d: y = x * scale + shift per channel with
/// scale = weight / sqrt(running_var + eps) and shift = bias - running_mean * scale.
/// x [N, C, *] (2-D and more); weight, bias, running_mean, running_var [C], same dtype and
/// device. eps: torchvision uses 1e-5 (its default); the original Dynamic R-CNN / Detectron
/// FrozenBN uses none (pass 0; a zero variance then gives inf). Requires eps >= 0.
Tensor frozen_batch_norm2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                           const Tensor& running_var, double eps = 1e-5);
/// dL/dx = dL/dy * scale (frozen BN has no other gradient).
Tensor frozen_batch_norm2d_backward(const Tensor& grad_output, const Tensor& weight, const Tensor& running_var,
                                    double eps = 1e-5);

struct BatchNormResult {
  Tensor output;       // x's shape
  Tensor save_mean;    // [C]: the batch mean (training) or a copy of running_mean (eval)
  Tensor save_invstd;  // [C]: 1 / sqrt(var + eps) of the variance used
};

/// Batch norm over [N, C, *] as torch.nn.functional.batch_norm. training: normalises with the
/// batch mean and BIASED variance (over N and the spatial dims; two-pass, summed in double in
/// fixed chunks) and, when running_mean/running_var are defined, updates them in place:
/// r = (1 - momentum) r + momentum s, with the UNBIASED variance. eval: normalises with the
/// running statistics (which must then be defined). weight/bias [C] may be undefined
/// (affine=False). Requires: more than one value per channel when training; eps >= 0,
/// 0 <= momentum <= 1; running stats contiguous [C] of x's dtype and device.
BatchNormResult batch_norm2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                             const Tensor& running_var, bool training, double momentum = 0.1, double eps = 1e-5);

struct NormGrads {
  Tensor grad_input;   // x's shape
  Tensor grad_weight;  // [C]; undefined when the weight was
  Tensor grad_bias;    // [C]; undefined when the weight was
};
/// Gradients of batch_norm2d from its saved statistics. training: through the batch
/// statistics, dx = w invstd (g - mean(g) - xhat mean(g xhat)); eval: dx = w invstd g.
/// dw = sum(g xhat), db = sum(g) in both modes (MMDetection trains gamma/beta of eval-mode BN).
NormGrads batch_norm2d_backward(const Tensor& grad_output, const Tensor& x, const Tensor& weight,
                                const Tensor& save_mean, const Tensor& save_invstd, bool training);

struct GroupNormResult {
  Tensor output;  // x's shape
  Tensor mean;    // [N, G]
  Tensor rstd;    // [N, G]: 1 / sqrt(biased var + eps)
};
/// Group norm over [N, C, *] as torch.nn.functional.group_norm: the C / G channels of each
/// group and the spatial dims share a mean and biased variance per sample, then the
/// per-channel affine (weight/bias [C], may be undefined). Requires: C % groups == 0, eps >= 0.
GroupNormResult group_norm(const Tensor& x, int64_t groups, const Tensor& weight, const Tensor& bias,
                           double eps = 1e-5);
/// Gradients of group_norm from its saved mean and rstd.
NormGrads group_norm_backward(const Tensor& grad_output, const Tensor& x, const Tensor& mean, const Tensor& rstd,
                              const Tensor& weight, int64_t groups);
}  // namespace drcnn::ops
