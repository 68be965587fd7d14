// Differentiable deform_conv2d on Variables (ops/deform_conv.h): the forward is
// ops::deform_conv2d (same shapes, checks and errors); the backward is one
// ops::deform_conv2d_backward call computing only the gradients whose inputs require them.
// Implementation: src/autograd/deform_conv.cpp; tests: tests/autograd/test_autograd_deform_conv.cpp.
#pragma once
#include "drcnn/autograd/variable.h"
#include "drcnn/ops/deform_conv.h"

namespace drcnn {

/// input [N, Cin, H, W], offset [N, 2 * offset_groups * kh * kw, Ho, Wo], mask
/// [N, offset_groups * kh * kw, Ho, Wo] or an undefined Variable (DCNv1), weight
/// [Cout, Cin / groups, kh, kw], bias [Cout] or undefined; gradients flow to each that requires one.
Variable deform_conv2d(const Variable& input, const Variable& offset, const Variable& mask, const Variable& weight,
                       const Variable& bias, const ops::DeformConv2dParams& p = {});
}  // namespace drcnn
