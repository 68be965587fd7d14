// Internal: the float32 oneDNN path of the CPU conv2d (kernels/cpu/conv_onednn.cpp), compiled
// only when CMake found oneDNN (DRCNN_HAVE_ONEDNN). Each call returns false when oneDNN has no
// implementation for the shape; kernels/cpu/conv.cpp then runs im2col + GEMM.
#pragma once
#include <cstddef>

#include "drcnn/ops/detail/conv_body.h"

namespace drcnn::ops::cpu::onednn {
/// bf16: read the operands as bfloat16 (f32 accumulation and outputs; ops/cpu_precision.h).
bool conv2d_forward(const Conv2dForwardLaunch<float>& l, bool bf16);
/// grad_input and grad_weight (grad_bias is left to the caller).
bool conv2d_backward(const Conv2dBackwardLaunch<float>& l, bool bf16);
/// Primitives in the per-shape cache (for tests and benchmarks).
size_t cached_plans();
}  // namespace drcnn::ops::cpu::onednn
