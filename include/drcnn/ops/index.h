// Indexing: gather / index_select and their adjoints scatter_add / index_add.
// Indices are int64 and must lie in [0, size of the indexed dim); anything else is an error
// naming the op (checked by the kernel itself, so no index ever reads or writes out of bounds).
#pragma once
#include "drcnn/core/tensor.h"

namespace drcnn::ops {

/// out[..., j, ...] = x[..., index[j], ...] along `dim`. index: 1-D int64.
Tensor index_select(const Tensor& x, int dim, const Tensor& index);
/// torch.gather: out[i][j][k] = x[i][index[i][j][k]][k] (dim = 1). index has x's rank and
/// extents <= x's outside `dim`; out has index's shape.
Tensor gather(const Tensor& x, int dim, const Tensor& index);
/// Adjoint of index_select, in place: self[..., index[j], ...] += src[..., j, ...].
/// Deterministic on the CPU; CUDA accumulates with atomics (order not fixed).
Tensor& index_add_(Tensor& self, int dim, const Tensor& index, const Tensor& src);
/// torch.scatter_add_: self[i][index[i][j][k]][k] += src[i][j][k] (dim = 1).
Tensor& scatter_add_(Tensor& self, int dim, const Tensor& index, const Tensor& src);
/// Out-of-place forms (start from a copy of self).
Tensor index_add(const Tensor& self, int dim, const Tensor& index, const Tensor& src);
Tensor scatter_add(const Tensor& self, int dim, const Tensor& index, const Tensor& src);
}  // namespace drcnn::ops
