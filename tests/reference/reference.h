// Naive float64 references for the tensor core's ops, written from the definitions.
// They share NO code with include/drcnn/ops/detail: shapes are plain vectors, every op walks
// multi-indices by explicit index math, and sums accumulate in long double. Inputs are read
// from drcnn Tensors through strides and data_ptr() only (test::strided_values).
#pragma once
#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "common/allclose.h"
#include "drcnn/core/tensor.h"

namespace drcnn::ref {

/// A dense row-major float64 array (integers and bools are stored exactly as doubles).
struct RefTensor {
  std::vector<int64_t> shape;
  std::vector<double> data;

  RefTensor() = default;
  RefTensor(std::vector<int64_t> s, std::vector<double> d);
  explicit RefTensor(std::vector<int64_t> s, double fill = 0.0);
  int64_t numel() const;
  int ndim() const { return int(shape.size()); }
  /// Element at a full multi-index.
  double& at(const std::vector<int64_t>& idx);
  double at(const std::vector<int64_t>& idx) const;
};

/// Reads any CPU tensor (any strides, any dtype).
RefTensor from_tensor(const Tensor& t);
/// Shape of t as a vector.
std::vector<int64_t> shape_of(const Tensor& t);

/// Row-major multi-index of linear index i, and back.
std::vector<int64_t> unravel(int64_t i, const std::vector<int64_t>& shape);
int64_t ravel(const std::vector<int64_t>& idx, const std::vector<int64_t>& shape);

// ---------------------------------------------------------------- elementwise
RefTensor unary(const RefTensor& x, const std::function<double(double)>& f);
/// numpy broadcasting, written out: align right, extents equal or 1.
std::vector<int64_t> broadcast_shape(const std::vector<int64_t>& a, const std::vector<int64_t>& b);
RefTensor binary(const RefTensor& a, const RefTensor& b, const std::function<double(double, double)>& f);
RefTensor where(const RefTensor& cond, const RefTensor& a, const RefTensor& b);
/// The adjoint of broadcasting: sums x down to `shape`.
RefTensor sum_to(const RefTensor& x, const std::vector<int64_t>& shape);

// ---------------------------------------------------------------- reductions
/// Sums accumulate in long double.
RefTensor sum(const RefTensor& x, int dim, bool keepdim);
long double sum_all(const RefTensor& x);
RefTensor mean(const RefTensor& x, int dim, bool keepdim);
/// Max/min: NaN propagates (the result is NaN if any element is). Arg versions: the index of
/// the first NaN if there is one, else the first index holding the extreme value.
RefTensor max(const RefTensor& x, int dim, bool keepdim);
RefTensor min(const RefTensor& x, int dim, bool keepdim);
RefTensor argmax(const RefTensor& x, int dim, bool keepdim);
RefTensor argmin(const RefTensor& x, int dim, bool keepdim);

// ---------------------------------------------------------------- matmul
/// a [M, K] @ b [K, N], or [B|1, M, K] @ [B|1, K, N] (batch 1 broadcasts). Triple loop.
RefTensor matmul(const RefTensor& a, const RefTensor& b);

// ---------------------------------------------------------------- indexing
/// out[i..., j, k...] = x[i..., index[i..., j, k...], k...] along dim (torch.gather).
RefTensor gather(const RefTensor& x, int dim, const RefTensor& index);
/// out[..., j, ...] = x[..., index[j], ...].
RefTensor index_select(const RefTensor& x, int dim, const std::vector<int64_t>& index);
/// self[i..., index[i..., j, k...], k...] += src[i..., j, k...] for every element of index.
RefTensor scatter_add(const RefTensor& self, int dim, const RefTensor& index, const RefTensor& src);
/// self[..., index[j], ...] += src[..., j, ...].
RefTensor index_add(const RefTensor& self, int dim, const std::vector<int64_t>& index, const RefTensor& src);

// ---------------------------------------------------------------- sorting
/// Insertion sort along dim: stable (ties keep their order), NaN greater than every number
/// (last ascending, first descending). Returns (values, indices).
std::pair<RefTensor, RefTensor> sort(const RefTensor& x, int dim, bool descending);
/// The first k of sort(x, dim, largest).
std::pair<RefTensor, RefTensor> topk(const RefTensor& x, int64_t k, int dim, bool largest);

// ---------------------------------------------------------------- shape
RefTensor concat(const std::vector<RefTensor>& xs, int dim);
RefTensor stack(const std::vector<RefTensor>& xs, int dim);
/// out dim i = x dim perm[i].
RefTensor permute(const RefTensor& x, const std::vector<int>& perm);
}  // namespace drcnn::ref

namespace drcnn::test {
/// Tensor vs reference: equal shapes, then expect_allclose on the values.
inline void expect_allclose(const Tensor& actual, const ref::RefTensor& expected, double rtol, double atol,
                            std::source_location loc = std::source_location::current()) {
  INFO("expect_allclose called at " << loc.file_name() << ":" << loc.line());
  INFO("actual shape " << fmt::format("{}", actual.shape()) << ", expected shape "
                       << fmt::format("{}", Shape(expected.shape)));
  REQUIRE(actual.shape().vec() == expected.shape);
  expect_allclose(strided_values(actual), expected.data, rtol, atol, loc);
}
}  // namespace drcnn::test
