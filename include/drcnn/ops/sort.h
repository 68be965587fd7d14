// Sorting along a dimension. Stable (equal values keep their order) on both backends; NaN is
// treated as greater than every number (first when descending), as torch.sort.
// CPU: std::stable_sort per row. CUDA: CUB segmented radix sort (stable).
#pragma once
#include <utility>

#include "drcnn/core/tensor.h"

namespace drcnn::ops {
/// (values, int64 indices) sorted along `dim`. Arithmetic dtypes.
std::pair<Tensor, Tensor> sort(const Tensor& x, int dim = -1, bool descending = false);
/// int64 positions that sort `x` along `dim`.
Tensor argsort(const Tensor& x, int dim = -1, bool descending = false);
/// The k largest (largest = true) or smallest along `dim`, in sorted order, ties by position.
/// Requires: 0 <= k <= extent of dim.
std::pair<Tensor, Tensor> topk(const Tensor& x, int64_t k, int dim = -1, bool largest = true);
}  // namespace drcnn::ops
