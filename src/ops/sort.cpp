// Dispatchers of sort / argsort / topk: move `dim` last, make rows contiguous, sort rows.
#include "drcnn/ops/sort.h"

#include "dispatch.h"

namespace drcnn::ops {

namespace {
// Shared by sort and topk, so each error names the op the caller used.
void check_sortable(const char* op, const Tensor& x) {
  runtime::check_defined(op, x, "input");
  DRCNN_CHECK(x.dtype() == DType::Float32 || x.dtype() == DType::Float64 || x.dtype() == DType::Int32 ||
                  x.dtype() == DType::Int64,
              op, ": expected float32, float64, int32 or int64, got ", x.dtype());
}
}  // namespace

std::pair<Tensor, Tensor> sort(const Tensor& x, int dim, bool descending) {
  check_sortable("sort", x);
  if (x.ndim() == 0) return {x.clone(), Tensor::zeros({}, DType::Int64, x.device())};
  const int d = wrap_dim(dim, x.ndim(), "sort");
  const Tensor rows = x.transpose(d, -1).contiguous();
  Tensor values = Tensor::empty(rows.shape(), x.dtype(), x.device());
  Tensor indices = Tensor::empty(rows.shape(), DType::Int64, x.device());
  if (rows.numel() > 0) {
    SortLaunch l;
    l.len = rows.size(-1);
    l.rows = rows.numel() / l.len;
    l.descending = descending;
    l.keys = rows.data_ptr();
    l.values = values.data_ptr();
    l.indices = static_cast<int64_t*>(indices.data_ptr());
    runtime::on_device(
        x.device(), "sort", [&] { cpu::sort(x.dtype(), l); }, [&](auto s) { cuda::sort(s, x.dtype(), l); });
  }
  return {values.transpose(d, -1), indices.transpose(d, -1)};
}

Tensor argsort(const Tensor& x, int dim, bool descending) { return sort(x, dim, descending).second; }

std::pair<Tensor, Tensor> topk(const Tensor& x, int64_t k, int dim, bool largest) {
  check_sortable("topk", x);
  const int d = wrap_dim(dim, std::max(x.ndim(), 1), "topk");
  const int64_t n = x.ndim() == 0 ? 1 : x.size(d);
  DRCNN_CHECK(k >= 0 && k <= n, "topk: k = ", k, " is out of range for dimension ", d, " of extent ", n);
  auto [values, indices] = sort(x, d, largest);
  if (x.ndim() == 0) return {values, indices};
  return {values.narrow(d, 0, k), indices.narrow(d, 0, k)};
}
}  // namespace drcnn::ops
