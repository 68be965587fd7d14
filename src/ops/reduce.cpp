// Dispatchers of the reductions. A reduction over `dim` runs on x made contiguous and seen as
// [outer, R, inner]. A full reduction runs in two fixed stages (chunks of kReduceChunk, then
// the partials), so its result is independent of threads and backend.
#include "drcnn/ops/reduce.h"

#include "dispatch.h"

namespace drcnn::ops {

using runtime::on_device;

namespace {
const char* reduce_name(ReduceKind k) {
  switch (k) {
    case ReduceKind::Sum: return "sum";
    case ReduceKind::Mean: return "mean";
    case ReduceKind::Max: return "max";
    case ReduceKind::Min: return "min";
    case ReduceKind::ArgMax: return "argmax";
    case ReduceKind::ArgMin: return "argmin";
  }
  return "reduce";
}
bool is_arg(ReduceKind k) { return k == ReduceKind::ArgMax || k == ReduceKind::ArgMin; }

void launch_reduce(ReduceKind kind, DType dtype, Device device, const ReduceLaunch& l) {
  on_device(
      device, reduce_name(kind), [&] { cpu::reduce(kind, dtype, l); },
      [&](auto s) { cuda::reduce(s, kind, dtype, l); });
}

void check_input(ReduceKind kind, const Tensor& x) {
  const char* op = reduce_name(kind);
  runtime::check_defined(op, x, "input");
  if (kind == ReduceKind::Mean) {
    DRCNN_CHECK(x.dtype() == DType::Float32 || x.dtype() == DType::Float64, op,
                ": expected a float32 or float64 tensor, got ", x.dtype());
  } else {
    DRCNN_CHECK(x.dtype() == DType::Float32 || x.dtype() == DType::Float64 || x.dtype() == DType::Int32 ||
                    x.dtype() == DType::Int64,
                op, ": expected float32, float64, int32 or int64, got ", x.dtype());
  }
}

Tensor reduce_dim(ReduceKind kind, const Tensor& x_in, int dim, bool keepdim) {
  const char* op = reduce_name(kind);
  check_input(kind, x_in);
  if (x_in.ndim() == 0) {
    // A 0-d tensor accepts dim 0 or -1 (as torch) and reduces to a 0-d result, keepdim or not.
    DRCNN_CHECK(dim == 0 || dim == -1, op, ": dimension ", dim, " is out of range for a 0-d tensor (expected -1..0)");
    return reduce_dim(kind, x_in.reshape({1}), 0, false).reshape({});
  }
  const int d = wrap_dim(dim, x_in.ndim(), op);
  const int64_t R = x_in.shape()[d];
  DRCNN_CHECK(R > 0 || kind == ReduceKind::Sum, op, ": cannot reduce dimension ", d, " of extent 0 (shape ",
              x_in.shape(), ")");
  Shape out_shape = x_in.shape();
  out_shape[d] = 1;
  Tensor out = Tensor::empty(out_shape, is_arg(kind) ? DType::Int64 : x_in.dtype(), x_in.device());
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < d; ++i) outer *= x_in.shape()[i];
  for (int i = d + 1; i < x_in.ndim(); ++i) inner *= x_in.shape()[i];
  if (out.numel() > 0) {
    if (R == 0) {
      out.zero_();
    } else {
      const Tensor x = x_in.contiguous();
      ReduceLaunch l;
      l.outer = outer;
      l.R = R;
      l.last_R = R;
      l.inner = inner;
      l.in = x.data_ptr();
      l.out = out.data_ptr();
      l.scale = kind == ReduceKind::Mean ? 1.0 / double(R) : 1.0;
      launch_reduce(kind, x.dtype(), x.device(), l);
    }
  }
  return keepdim ? out : out.squeeze(d);
}

Tensor reduce_all(ReduceKind kind, const Tensor& x_in) {
  const char* op = reduce_name(kind);
  check_input(kind, x_in);
  const int64_t n = x_in.numel();
  DRCNN_CHECK(n > 0 || kind == ReduceKind::Sum, op, ": cannot reduce an empty tensor (shape ", x_in.shape(), ")");
  if (n == 0) return Tensor::zeros({}, x_in.dtype(), x_in.device());
  const Tensor x = x_in.contiguous();
  // Stage 1: chunks of kReduceChunk -> partials. Stage 2: partials -> result.
  const int64_t chunks = (n + kReduceChunk - 1) / kReduceChunk;
  const ReduceKind stage1 = kind == ReduceKind::Mean ? ReduceKind::Sum : kind;
  Tensor partial = Tensor::empty({chunks}, x.dtype(), x.device());
  ReduceLaunch l1;
  l1.outer = chunks;
  l1.R = std::min(n, kReduceChunk);
  l1.last_R = n - (chunks - 1) * l1.R;
  l1.inner = 1;
  l1.in = x.data_ptr();
  l1.out = partial.data_ptr();
  launch_reduce(stage1 == ReduceKind::Mean ? ReduceKind::Sum : stage1, x.dtype(), x.device(), l1);
  if (chunks == 1 && kind != ReduceKind::Mean) return partial.reshape({});
  Tensor out = Tensor::empty({}, x.dtype(), x.device());
  ReduceLaunch l2;
  l2.outer = 1;
  l2.R = chunks;
  l2.last_R = chunks;
  l2.inner = 1;
  l2.in = partial.data_ptr();
  l2.out = out.data_ptr();
  l2.scale = kind == ReduceKind::Mean ? 1.0 / double(n) : 1.0;
  launch_reduce(kind == ReduceKind::Mean ? ReduceKind::Sum : kind, x.dtype(), x.device(), l2);
  return out;
}
}  // namespace

Tensor sum(const Tensor& x, int dim, bool keepdim) { return reduce_dim(ReduceKind::Sum, x, dim, keepdim); }
Tensor sum(const Tensor& x) { return reduce_all(ReduceKind::Sum, x); }
Tensor mean(const Tensor& x, int dim, bool keepdim) { return reduce_dim(ReduceKind::Mean, x, dim, keepdim); }
Tensor mean(const Tensor& x) { return reduce_all(ReduceKind::Mean, x); }
Tensor max(const Tensor& x, int dim, bool keepdim) { return reduce_dim(ReduceKind::Max, x, dim, keepdim); }
Tensor min(const Tensor& x, int dim, bool keepdim) { return reduce_dim(ReduceKind::Min, x, dim, keepdim); }
Tensor max(const Tensor& x) { return reduce_all(ReduceKind::Max, x); }
Tensor min(const Tensor& x) { return reduce_all(ReduceKind::Min, x); }
Tensor argmax(const Tensor& x, int dim, bool keepdim) { return reduce_dim(ReduceKind::ArgMax, x, dim, keepdim); }
Tensor argmin(const Tensor& x, int dim, bool keepdim) { return reduce_dim(ReduceKind::ArgMin, x, dim, keepdim); }
}  // namespace drcnn::ops
