// Linear index -> per-operand element offsets for strided, broadcast iteration.
#pragma once
#include <cstdint>

#include "drcnn/core/macros.h"
#include "drcnn/core/tensor_view.h"

namespace drcnn::ops::detail {

/// Iteration shape shared by up to kOps operands, each with its own strides (0 = broadcast).
/// The host collapses mergeable dims first. ndim == 0 marks the flat case (every operand
/// contiguous, unit stride, nothing broadcast): offsets are i itself, a loop compilers vectorise.
template <int kOps>
struct OffsetCalc {
  int ndim;
  int64_t size[kMaxDims];
  int64_t stride[kOps][kMaxDims];

  /// Writes the element offset of linear index `i` (row-major over size) for each operand.
  DRCNN_HD void offsets(int64_t i, int64_t (&off)[kOps]) const {
    if (ndim == 0) {  // flat: every operand contiguous with unit stride
      for (int k = 0; k < kOps; ++k) off[k] = i;
      return;
    }
    if (ndim == 1) {  // the collapsed common case: no division at all
      for (int k = 0; k < kOps; ++k) off[k] = i * stride[k][0];
      return;
    }
    for (int k = 0; k < kOps; ++k) off[k] = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      const int64_t idx = i % size[d];
      i /= size[d];
      for (int k = 0; k < kOps; ++k) off[k] += idx * stride[k][d];
    }
  }
};
}  // namespace drcnn::ops::detail
