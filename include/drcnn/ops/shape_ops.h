// Joining tensors: concat and stack (copies; see Tensor for the views).
#pragma once
#include <vector>

#include "drcnn/core/tensor.h"

namespace drcnn::ops {
/// Joins along an existing `dim`. Requires: at least one tensor; same dtype, device and rank;
/// equal extents outside `dim`.
Tensor concat(const std::vector<Tensor>& tensors, int dim);
/// Joins along a new `dim` (0..rank). Requires: equal shapes, dtypes and devices.
Tensor stack(const std::vector<Tensor>& tensors, int dim);
}  // namespace drcnn::ops
