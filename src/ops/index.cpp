// Dispatchers of gather / index_select / scatter_add / index_add. The kernels flag an
// out-of-range index in a device int, checked at once on the CPU and lazily on CUDA
// (ops/device_checks.h), so a CUDA call does not synchronise.
#include "drcnn/ops/index.h"

#include "dispatch.h"
#include "drcnn/ops/device_checks.h"

namespace drcnn::ops {

namespace {
// Builds the [slices, J] description. `self` is the tensor indexed by index values (x for
// gather, the destination for scatter); `other` is iterated along J (out for gather, src
// for scatter); `index` is 1-D (index_select/index_add) or has other's shape (gather/scatter).
IndexLaunch make_index_launch(const Tensor& self, const Tensor& other, const Tensor& index, int dim, bool index_1d) {
  IndexLaunch l;
  const Shape& shape = other.shape();  // iteration shape: [..., J, ...]
  l.J = shape[dim];
  l.dim_size = self.shape()[dim];
  l.slices = l.J > 0 ? shape.numel() / l.J : 0;
  // Slice space: all dims but `dim`, with each operand's strides.
  int nd = 0;
  for (int d = 0; d < shape.ndim(); ++d) {
    if (d == dim) continue;
    l.slice_oc.size[nd] = shape[d];
    l.slice_oc.stride[0][nd] = self.strides()[d];
    l.slice_oc.stride[1][nd] = other.strides()[d];
    l.slice_oc.stride[2][nd] = index_1d ? 0 : index.strides()[d];
    ++nd;
  }
  if (nd == 0) {
    l.slice_oc.size[0] = 1;
    l.slice_oc.stride[0][0] = l.slice_oc.stride[1][0] = l.slice_oc.stride[2][0] = 0;
    nd = 1;
  }
  l.slice_oc.ndim = nd;
  l.j_stride[0] = 0;
  l.j_stride[1] = other.strides()[dim];
  l.j_stride[2] = index_1d ? index.strides()[0] : index.strides()[dim];
  l.self_dim_stride = self.strides()[dim];
  return l;
}

void check_index(const char* op, const Tensor& x, const Tensor& index) {
  runtime::check_same_device(op, {&x, &index});
  DRCNN_CHECK(index.dtype() == DType::Int64, op, ": index must be int64, got ", index.dtype());
}

// After a launch: the kernel's flag becomes an error naming the first bad index, at once on the
// CPU, lazily on CUDA (ops/device_checks.h).
void raise_if_flagged(const char* op, const Tensor& flag, const Tensor& index, int64_t dim_size) {
  detail::check_flag(flag, [op, index, dim_size] {
    const Tensor host = index.to(Device::cpu());
    for (int64_t v : host.to_vector<int64_t>())
      if (v < 0 || v >= dim_size)
        DRCNN_FAIL(op, ": index ", v, " is out of range for a dimension of extent ", dim_size,
                   " (expected 0 <= index < ", dim_size, ")");
    DRCNN_FAIL(op, ": an index was out of range for a dimension of extent ", dim_size,
               " (the index tensor changed before the deferred check could name it)");
  });
}

// Shared by gather and index_select: out takes the iteration shape.
Tensor gather_impl(const char* op, const Tensor& x, int d, const Tensor& index, const Shape& out_shape, bool index_1d) {
  Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
  if (out.numel() == 0) return out;
  DRCNN_CHECK(x.shape()[d] > 0, op, ": cannot index dimension ", d, " of extent 0 (shape ", x.shape(), ")");
  Tensor flag = Tensor::zeros({}, DType::Int32, x.device());
  IndexLaunch l = make_index_launch(x, out, index, d, index_1d);
  // For gather the destination is `out` (operand 0 walks out, operand 1 walks x's slice).
  for (int i = 0; i < l.slice_oc.ndim; ++i) std::swap(l.slice_oc.stride[0][i], l.slice_oc.stride[1][i]);
  l.j_stride[0] = out.strides()[d];
  l.j_stride[1] = 0;
  l.out = out.data_ptr();
  l.in = x.data_ptr();
  l.index = static_cast<const int64_t*>(index.data_ptr());
  l.error = static_cast<int*>(flag.data_ptr());
  runtime::on_device(
      x.device(), op, [&] { cpu::index_gather(x.dtype(), l); }, [&](auto s) { cuda::index_gather(s, x.dtype(), l); });
  raise_if_flagged(op, flag, index, x.shape()[d]);
  return out;
}

void scatter_impl(const char* op, Tensor& self, int d, const Tensor& index, const Tensor& src, bool index_1d) {
  // Checked here so the message names the op (the launcher's own dispatch would say
  // "index_scatter_add"), and before the empty-input shortcut so the answer never depends on it.
  DRCNN_CHECK(self.dtype() == DType::Float32 || self.dtype() == DType::Float64 || self.dtype() == DType::Int32 ||
                  self.dtype() == DType::Int64,
              op, ": expected float32, float64, int32 or int64, got ", self.dtype());
  if (src.numel() == 0) return;
  DRCNN_CHECK(self.shape()[d] > 0, op, ": cannot index dimension ", d, " of extent 0 (shape ", self.shape(), ")");
  Tensor flag = Tensor::zeros({}, DType::Int32, self.device());
  IndexLaunch l = make_index_launch(self, src, index, d, index_1d);
  l.out = self.data_ptr();
  l.in = src.data_ptr();
  l.index = static_cast<const int64_t*>(index.data_ptr());
  l.error = static_cast<int*>(flag.data_ptr());
  runtime::on_device(
      self.device(), op, [&] { cpu::index_scatter_add(self.dtype(), l); },
      [&](auto s) { cuda::index_scatter_add(s, self.dtype(), l); });
  raise_if_flagged(op, flag, index, self.shape()[d]);
}
}  // namespace

Tensor index_select(const Tensor& x, int dim, const Tensor& index) {
  check_index("index_select", x, index);
  DRCNN_CHECK(index.ndim() == 1, "index_select: index must be 1-D, got shape ", index.shape());
  const int d = wrap_dim(dim, x.ndim(), "index_select");
  Shape out_shape = x.shape();
  out_shape[d] = index.size(0);
  return gather_impl("index_select", x, d, index, out_shape, true);
}

Tensor gather(const Tensor& x, int dim, const Tensor& index) {
  check_index("gather", x, index);
  const int d = wrap_dim(dim, x.ndim(), "gather");
  DRCNN_CHECK(index.ndim() == x.ndim(), "gather: index must have the input's rank ", x.ndim(), ", got shape ",
              index.shape());
  for (int i = 0; i < x.ndim(); ++i)
    DRCNN_CHECK(i == d || index.shape()[i] <= x.shape()[i], "gather: index shape ", index.shape(),
                " exceeds the input's shape ", x.shape(), " in dimension ", i);
  return gather_impl("gather", x, d, index, index.shape(), false);
}

Tensor& index_add_(Tensor& self, int dim, const Tensor& index, const Tensor& src) {
  check_index("index_add", self, index);
  runtime::check_same_device("index_add", {&self, &src});
  runtime::check_same_dtype("index_add", self, src);
  DRCNN_CHECK(index.ndim() == 1, "index_add: index must be 1-D, got shape ", index.shape());
  const int d = wrap_dim(dim, self.ndim(), "index_add");
  Shape expect = self.shape();
  expect[d] = index.size(0);
  DRCNN_CHECK(src.shape() == expect, "index_add: src must have shape ", expect, ", got ", src.shape());
  scatter_impl("index_add", self, d, index, src, true);
  return self;
}

Tensor& scatter_add_(Tensor& self, int dim, const Tensor& index, const Tensor& src) {
  check_index("scatter_add", self, index);
  runtime::check_same_device("scatter_add", {&self, &src});
  runtime::check_same_dtype("scatter_add", self, src);
  const int d = wrap_dim(dim, self.ndim(), "scatter_add");
  DRCNN_CHECK(index.ndim() == self.ndim(), "scatter_add: index must have self's rank ", self.ndim(),
              ", got shape ", index.shape());
  for (int i = 0; i < self.ndim(); ++i) {
    DRCNN_CHECK(index.shape()[i] <= src.shape()[i], "scatter_add: index shape ", index.shape(),
                " exceeds src's shape ", src.shape(), " in dimension ", i);
    DRCNN_CHECK(i == d || index.shape()[i] <= self.shape()[i], "scatter_add: index shape ", index.shape(),
                " exceeds self's shape ", self.shape(), " in dimension ", i);
  }
  // Iterate over index's shape: view src restricted to it.
  Tensor src_view = src;
  for (int i = 0; i < src.ndim(); ++i) src_view = src_view.narrow(i, 0, index.shape()[i]);
  scatter_impl("scatter_add", self, d, index, src_view, false);
  return self;
}

Tensor index_add(const Tensor& self, int dim, const Tensor& index, const Tensor& src) {
  Tensor out = self.clone();
  index_add_(out, dim, index, src);
  return out;
}
Tensor scatter_add(const Tensor& self, int dim, const Tensor& index, const Tensor& src) {
  Tensor out = self.clone();
  scatter_add_(out, dim, index, src);
  return out;
}
}  // namespace drcnn::ops
