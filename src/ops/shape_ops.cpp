// concat and stack: allocate the result, then copy each input into its slice.
#include "drcnn/ops/shape_ops.h"

#include "dispatch.h"

namespace drcnn::ops {

Tensor concat(const std::vector<Tensor>& tensors, int dim) {
  DRCNN_CHECK(!tensors.empty(), "concat: expected at least one tensor, got none");
  const Tensor& first = tensors[0];
  runtime::check_defined("concat", first, "tensor 0");
  const int d = wrap_dim(dim, first.ndim(), "concat");
  Shape shape = first.shape();
  int64_t total = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    DRCNN_CHECK(t.defined(), "concat: tensor ", i, " is undefined");
    DRCNN_CHECK(t.dtype() == first.dtype(), "concat: tensor ", i, " has dtype ", t.dtype(), ", tensor 0 has ",
                first.dtype());
    DRCNN_CHECK(t.device() == first.device(), "concat: tensor ", i, " is on ", t.device(), ", tensor 0 on ",
                first.device());
    DRCNN_CHECK(t.ndim() == first.ndim(), "concat: tensor ", i, " has shape ", t.shape(), ", tensor 0 has ",
                first.shape(), " (ranks differ)");
    for (int k = 0; k < t.ndim(); ++k)
      DRCNN_CHECK(k == d || t.shape()[k] == shape[k], "concat: tensor ", i, " has shape ", t.shape(),
                  " but tensor 0 has ", first.shape(), "; they may differ only in dimension ", d);
    total += t.shape()[d];
  }
  shape[d] = total;
  Tensor out = Tensor::empty(shape, first.dtype(), first.device());
  int64_t at = 0;
  for (const Tensor& t : tensors) {
    const int64_t n = t.shape()[d];
    if (n > 0) out.narrow(d, at, n).copy_(t);
    at += n;
  }
  return out;
}

Tensor stack(const std::vector<Tensor>& tensors, int dim) {
  DRCNN_CHECK(!tensors.empty(), "stack: expected at least one tensor, got none");
  runtime::check_defined("stack", tensors[0], "tensor 0");
  const int d = wrap_dim(dim, tensors[0].ndim() + 1, "stack");
  std::vector<Tensor> expanded;
  expanded.reserve(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    DRCNN_CHECK(tensors[i].defined(), "stack: tensor ", i, " is undefined");
    // dtype and device are checked again by concat, but the message should name stack.
    DRCNN_CHECK(tensors[i].dtype() == tensors[0].dtype(), "stack: tensor ", i, " has dtype ", tensors[i].dtype(),
                ", tensor 0 has ", tensors[0].dtype());
    DRCNN_CHECK(tensors[i].device() == tensors[0].device(), "stack: tensor ", i, " is on ", tensors[i].device(),
                ", tensor 0 on ", tensors[0].device());
    DRCNN_CHECK(tensors[i].shape() == tensors[0].shape(), "stack: tensor ", i, " has shape ", tensors[i].shape(),
                " but tensor 0 has ", tensors[0].shape(), " (stack needs equal shapes)");
    expanded.push_back(tensors[i].unsqueeze(d));
  }
  return concat(expanded, d);
}
}  // namespace drcnn::ops
