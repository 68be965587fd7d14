#include "dispatch.h"

#include <vector>

namespace drcnn::runtime {

void check_defined(const char* op, const Tensor& t, const char* name) {
  DRCNN_CHECK(t.defined(), op, ": ", name, " is an undefined tensor");
}

void check_same_device(const char* op, std::initializer_list<const Tensor*> tensors) {
  const Tensor* first = *tensors.begin();
  int i = 0;
  for (const Tensor* t : tensors) {
    DRCNN_CHECK(t->defined(), op, ": operand ", i, " is an undefined tensor");
    DRCNN_CHECK(t->device() == first->device(), op, ": operands must be on one device, but operand 0 is on ",
                first->device(), " and operand ", i, " is on ", t->device());
    ++i;
  }
}

void check_same_dtype(const char* op, const Tensor& a, const Tensor& b) {
  DRCNN_CHECK(a.dtype() == b.dtype(), op, ": operands must have the same dtype, got ", a.dtype(), " and ",
              b.dtype(), " (convert one with .to(dtype))");
}

Strides broadcast_strides(const Tensor& t, const Shape& shape) {
  Strides s;
  const int off = shape.ndim() - t.ndim();
  DRCNN_ASSERT(off >= 0, "broadcast target has fewer dims");
  for (int d = 0; d < shape.ndim(); ++d) {
    const int td = d - off;
    if (td < 0 || t.shape()[td] == 1) {
      s.push_back(0);
    } else {
      DRCNN_ASSERT(t.shape()[td] == shape[d], "broadcast extent mismatch");
      s.push_back(t.strides()[td]);
    }
  }
  return s;
}

ops::ElementwiseLaunch make_elementwise_launch(const Tensor& out, std::initializer_list<const Tensor*> inputs) {
  const Shape& shape = out.shape();
  const int nops = 1 + int(inputs.size());
  DRCNN_ASSERT(nops <= 4, "at most 3 inputs");
  std::vector<Strides> strides;
  strides.push_back(out.strides());
  for (const Tensor* t : inputs) strides.push_back(broadcast_strides(*t, shape));

  // Collapse from the innermost dim outwards: dims d-1 and d merge when, for every operand,
  // stride[d-1] == stride[d] * size[d]. Size-1 dims are dropped.
  std::vector<int64_t> sizes;                 // innermost first while building
  std::vector<std::vector<int64_t>> st(static_cast<size_t>(nops));
  for (int d = shape.ndim() - 1; d >= 0; --d) {
    if (shape[d] == 1) continue;
    bool merge = !sizes.empty();
    for (int k = 0; merge && k < nops; ++k) merge = strides[size_t(k)][d] == st[size_t(k)].back() * sizes.back();
    if (merge) {
      sizes.back() *= shape[d];
    } else {
      sizes.push_back(shape[d]);
      for (int k = 0; k < nops; ++k) st[size_t(k)].push_back(strides[size_t(k)][d]);
    }
  }
  ops::ElementwiseLaunch l;
  l.n = out.numel();
  l.oc.ndim = int(sizes.size());
  if (l.oc.ndim == 0) {  // a single element (or all dims 1)
    l.oc.ndim = 1;
    l.oc.size[0] = 1;
    for (int k = 0; k < 4; ++k) l.oc.stride[k][0] = 0;
  }
  for (int i = 0; i < int(sizes.size()); ++i) {
    const int d = int(sizes.size()) - 1 - i;  // back to outermost-first
    l.oc.size[d] = sizes[size_t(i)];
    for (int k = 0; k < nops; ++k) l.oc.stride[k][d] = st[size_t(k)][size_t(i)];
  }
  // The flat case: one collapsed dim with unit stride everywhere (see OffsetCalc).
  bool flat = sizes.size() == 1;
  for (int k = 0; flat && k < nops; ++k) flat = l.oc.stride[k][0] == 1;
  if (flat) l.oc.ndim = 0;
  l.ptr[0] = out.data_ptr();
  int k = 1;
  for (const Tensor* t : inputs) l.ptr[k++] = t->data_ptr();
  return l;
}
}  // namespace drcnn::runtime
