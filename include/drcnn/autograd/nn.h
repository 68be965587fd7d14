// Differentiable layer ops on Variables: the Tensor ops of include/drcnn/ops/nn.h (same
// shapes, dtypes, semantics and errors) with their backward passes recorded. Arguments that
// get no gradient are Tensors: frozen BN's parameters and statistics, and BN's running stats
// (updated in place in training mode, never differentiated). relu, linear and flatten are in
// autograd/functions.h. Implementation: src/autograd/nn.cpp;
// tests: tests/autograd/test_autograd_nn.cpp.
#pragma once
#include <cstdint>

#include "drcnn/autograd/variable.h"
#include "drcnn/ops/nn.h"

namespace drcnn {

/// Max pooling; the gradient goes to the recorded index of each window (first on ties).
Variable max_pool2d(const Variable& x, const ops::MaxPool2dOptions& o);
/// Nearest resize of [N, C, H, W] to [N, C, out_h, out_w] (PyTorch's mode='nearest', size=...).
Variable upsample_nearest2d(const Variable& x, int64_t out_h, int64_t out_w);
/// torchvision FrozenBatchNorm2d (eps 1e-5; pass 0 for the original Detectron/Dynamic R-CNN
/// weights). Gradient w.r.t. x only.
Variable frozen_batch_norm2d(const Variable& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                             const Tensor& running_var, double eps = 1e-5);
/// Batch norm: training uses batch statistics and updates the running stats in place (when
/// defined); eval uses the running stats. Gradients for x, weight and bias (weight and bias may
/// be undefined Variables: affine=False).
Variable batch_norm2d(const Variable& x, const Variable& weight, const Variable& bias, const Tensor& running_mean,
                      const Tensor& running_var, bool training, double momentum = 0.1, double eps = 1e-5);
/// Group norm; gradients for x, weight and bias (weight and bias may be undefined).
Variable group_norm(const Variable& x, int64_t groups, const Variable& weight = Variable(),
                    const Variable& bias = Variable(), double eps = 1e-5);
}  // namespace drcnn
