// Differentiable conv2d on Variables. The forward is ops::conv2d (same shapes, checks and
// errors); the backward is one ops::conv2d_backward call computing only the gradients whose
// inputs require them. The graph keeps the input only when the weight needs a gradient and the
// weight only when the input needs one. Implementation: src/autograd/conv.cpp;
// tests: tests/autograd/test_autograd_conv.cpp.
#pragma once
#include "drcnn/autograd/variable.h"
#include "drcnn/ops/conv.h"

namespace drcnn {

/// input [N, Cin, H, W], weight [Cout, Cin / groups, kh, kw], bias [Cout] or an undefined
/// Variable; gradients flow to each of them that requires one.
Variable conv2d(const Variable& input, const Variable& weight, const Variable& bias = Variable(),
                const ops::Conv2dParams& p = {});
}  // namespace drcnn
