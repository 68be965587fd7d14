// Conv2dParams shorthands shared by the conv2d tests (CPU, bf16, CUDA): square stride, padding,
// dilation and groups, and the same parameters for the float64 reference (tests/reference/conv_ref.h).
#pragma once
#include <cstdint>

#include "drcnn/ops/conv.h"
#include "reference/conv_ref.h"

namespace drcnn::test {
inline ops::Conv2dParams conv_params(int64_t s, int64_t p, int64_t d, int64_t g) {
  ops::Conv2dParams c;
  c.stride = {s, s};
  c.padding = {p, p};
  c.dilation = {d, d};
  c.groups = g;
  return c;
}
inline ref::ConvRefParams conv_ref_params(const ops::Conv2dParams& p) {
  return {p.stride[0], p.stride[1], p.padding[0], p.padding[1], p.dilation[0], p.dilation[1], p.groups};
}
}  // namespace drcnn::test
