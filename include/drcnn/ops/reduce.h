// Reductions over one dimension or over all elements.
// Float sums are compensated (Neumaier) and deterministic: the same result on every run and
// thread count (the partition into chunks is fixed). max/min/argmax/argmin are identical on
// CPU and CUDA; sums too, except where CUDA reduces few long outputs by blocks (R >= 1024, at
// most 16384 outputs; ops/detail/reduce_body.h): another fixed order, last-bit differences.
#pragma once
#include "drcnn/core/tensor.h"

namespace drcnn::ops {

/// Sum over `dim` (keepdim keeps it with extent 1). Arithmetic dtypes.
Tensor sum(const Tensor& x, int dim, bool keepdim = false);
/// Sum of all elements as a 0-d tensor (0 for an empty tensor).
Tensor sum(const Tensor& x);
/// Mean over `dim` / over all; float32/float64. Requires a non-empty reduced extent.
Tensor mean(const Tensor& x, int dim, bool keepdim = false);
Tensor mean(const Tensor& x);
/// Max / min over `dim` (NaN propagates) / over all. Requires a non-empty reduced extent.
Tensor max(const Tensor& x, int dim, bool keepdim = false);
Tensor min(const Tensor& x, int dim, bool keepdim = false);
Tensor max(const Tensor& x);
Tensor min(const Tensor& x);
/// int64 position of the max / min along `dim` (first occurrence; a NaN counts as the max).
Tensor argmax(const Tensor& x, int dim, bool keepdim = false);
Tensor argmin(const Tensor& x, int dim, bool keepdim = false);

/// Number of elements the first stage of a full reduction gives each invocation. Fixed, so
/// results do not depend on the thread count or the backend.
inline constexpr int64_t kReduceChunk = 4096;
}  // namespace drcnn::ops
