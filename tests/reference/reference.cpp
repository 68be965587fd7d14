// Naive float64 references (see reference.h). Written for obviousness, not speed.
#include "reference/reference.h"

#include <cmath>
#include <stdexcept>

#include "common/allclose.h"

namespace drcnn::ref {

namespace {
void require(bool cond, const char* what) {
  if (!cond) throw std::logic_error(std::string("reference: ") + what);
}
int wrap(int dim, int ndim) { return dim < 0 ? dim + ndim : dim; }
int64_t product(const std::vector<int64_t>& s) {
  int64_t n = 1;
  for (int64_t v : s) n *= v;
  return n;
}
}  // namespace

RefTensor::RefTensor(std::vector<int64_t> s, std::vector<double> d) : shape(std::move(s)), data(std::move(d)) {
  require(int64_t(data.size()) == product(shape), "data size does not match shape");
}
RefTensor::RefTensor(std::vector<int64_t> s, double fill) : shape(std::move(s)) {
  data.assign(size_t(product(shape)), fill);
}
int64_t RefTensor::numel() const { return product(shape); }
double& RefTensor::at(const std::vector<int64_t>& idx) { return data[size_t(ravel(idx, shape))]; }
double RefTensor::at(const std::vector<int64_t>& idx) const { return data[size_t(ravel(idx, shape))]; }

std::vector<int64_t> shape_of(const Tensor& t) { return t.shape().vec(); }

RefTensor from_tensor(const Tensor& t) { return RefTensor(shape_of(t), test::strided_values(t)); }

std::vector<int64_t> unravel(int64_t i, const std::vector<int64_t>& shape) {
  std::vector<int64_t> idx(shape.size());
  for (int d = int(shape.size()) - 1; d >= 0; --d) {
    idx[size_t(d)] = i % shape[size_t(d)];
    i /= shape[size_t(d)];
  }
  return idx;
}

int64_t ravel(const std::vector<int64_t>& idx, const std::vector<int64_t>& shape) {
  require(idx.size() == shape.size(), "index rank");
  int64_t off = 0;
  for (size_t d = 0; d < shape.size(); ++d) {
    require(idx[d] >= 0 && idx[d] < shape[d], "index out of range");
    off = off * shape[d] + idx[d];
  }
  return off;
}

// ---------------------------------------------------------------- elementwise
RefTensor unary(const RefTensor& x, const std::function<double(double)>& f) {
  RefTensor out(x.shape);
  for (size_t i = 0; i < x.data.size(); ++i) out.data[i] = f(x.data[i]);
  return out;
}

std::vector<int64_t> broadcast_shape(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  const size_t n = std::max(a.size(), b.size());
  std::vector<int64_t> out(n);
  for (size_t i = 0; i < n; ++i) {
    // Position i counted from the right end of each shape.
    const size_t r = n - 1 - i;
    const int64_t da = r < a.size() ? a[a.size() - 1 - r] : 1;
    const int64_t db = r < b.size() ? b[b.size() - 1 - r] : 1;
    require(da == db || da == 1 || db == 1, "shapes do not broadcast");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

namespace {
// Element of x addressed by a multi-index of the broadcast shape `out_shape`.
double broadcast_at(const RefTensor& x, const std::vector<int64_t>& out_idx) {
  const size_t lead = out_idx.size() - x.shape.size();
  std::vector<int64_t> idx(x.shape.size());
  for (size_t d = 0; d < x.shape.size(); ++d) idx[d] = x.shape[d] == 1 ? 0 : out_idx[lead + d];
  return x.at(idx);
}
}  // namespace

RefTensor binary(const RefTensor& a, const RefTensor& b, const std::function<double(double, double)>& f) {
  RefTensor out(broadcast_shape(a.shape, b.shape));
  for (int64_t i = 0; i < out.numel(); ++i) {
    const auto idx = unravel(i, out.shape);
    out.data[size_t(i)] = f(broadcast_at(a, idx), broadcast_at(b, idx));
  }
  return out;
}

RefTensor where(const RefTensor& cond, const RefTensor& a, const RefTensor& b) {
  RefTensor out(broadcast_shape(broadcast_shape(cond.shape, a.shape), b.shape));
  for (int64_t i = 0; i < out.numel(); ++i) {
    const auto idx = unravel(i, out.shape);
    out.data[size_t(i)] = broadcast_at(cond, idx) != 0 ? broadcast_at(a, idx) : broadcast_at(b, idx);
  }
  return out;
}

RefTensor sum_to(const RefTensor& x, const std::vector<int64_t>& shape) {
  std::vector<long double> acc(size_t(product(shape)), 0.0L);
  const size_t lead = x.shape.size() - shape.size();
  for (int64_t i = 0; i < x.numel(); ++i) {
    const auto idx = unravel(i, x.shape);
    std::vector<int64_t> t(shape.size());
    for (size_t d = 0; d < shape.size(); ++d) t[d] = shape[d] == 1 ? 0 : idx[lead + d];
    acc[size_t(ravel(t, shape))] += x.data[size_t(i)];
  }
  RefTensor out(shape);
  for (size_t i = 0; i < acc.size(); ++i) out.data[i] = double(acc[i]);
  return out;
}

// ---------------------------------------------------------------- reductions
namespace {
// Calls visit(out_linear_index, values along dim in order) for every output element.
template <typename Visit>
RefTensor reduce_along(const RefTensor& x_in, int dim, bool keepdim, Visit visit) {
  RefTensor x = x_in;
  if (x.shape.empty()) x.shape = {1};  // a 0-d tensor reduces as [1]
  const int d = wrap(dim, x.ndim());
  require(d >= 0 && d < x.ndim(), "dim out of range");
  std::vector<int64_t> kept = x.shape;
  kept[size_t(d)] = 1;
  RefTensor out(kept);
  for (int64_t o = 0; o < out.numel(); ++o) {
    auto idx = unravel(o, kept);
    std::vector<double> vals;
    for (int64_t r = 0; r < x.shape[size_t(d)]; ++r) {
      idx[size_t(d)] = r;
      vals.push_back(x.at(idx));
    }
    out.data[size_t(o)] = visit(vals);
  }
  if (!keepdim) out.shape.erase(out.shape.begin() + d);
  if (x_in.shape.empty()) out.shape.clear();
  return out;
}

// Extreme value and its first index: NaN wins (first NaN); otherwise strictly better replaces.
std::pair<double, int64_t> extreme(const std::vector<double>& v, bool want_max) {
  require(!v.empty(), "empty reduction");
  for (size_t i = 0; i < v.size(); ++i)
    if (std::isnan(v[i])) return {v[i], int64_t(i)};
  double best = v[0];
  int64_t at = 0;
  for (size_t i = 1; i < v.size(); ++i) {
    if (want_max ? v[i] > best : v[i] < best) {
      best = v[i];
      at = int64_t(i);
    }
  }
  return {best, at};
}
}  // namespace

RefTensor sum(const RefTensor& x, int dim, bool keepdim) {
  return reduce_along(x, dim, keepdim, [](const std::vector<double>& v) {
    long double s = 0;
    for (double e : v) s += e;
    return double(s);
  });
}
long double sum_all(const RefTensor& x) {
  long double s = 0;
  for (double e : x.data) s += e;
  return s;
}
RefTensor mean(const RefTensor& x, int dim, bool keepdim) {
  return reduce_along(x, dim, keepdim, [](const std::vector<double>& v) {
    require(!v.empty(), "mean of nothing");
    long double s = 0;
    for (double e : v) s += e;
    return double(s / (long double)v.size());
  });
}
RefTensor max(const RefTensor& x, int dim, bool keepdim) {
  return reduce_along(x, dim, keepdim, [](const std::vector<double>& v) { return extreme(v, true).first; });
}
RefTensor min(const RefTensor& x, int dim, bool keepdim) {
  return reduce_along(x, dim, keepdim, [](const std::vector<double>& v) { return extreme(v, false).first; });
}
RefTensor argmax(const RefTensor& x, int dim, bool keepdim) {
  return reduce_along(x, dim, keepdim, [](const std::vector<double>& v) { return double(extreme(v, true).second); });
}
RefTensor argmin(const RefTensor& x, int dim, bool keepdim) {
  return reduce_along(x, dim, keepdim,
                      [](const std::vector<double>& v) { return double(extreme(v, false).second); });
}

// ---------------------------------------------------------------- matmul
RefTensor matmul(const RefTensor& a, const RefTensor& b) {
  require(a.ndim() == b.ndim() && (a.ndim() == 2 || a.ndim() == 3), "matmul ranks");
  const bool batched = a.ndim() == 3;
  const int64_t ba = batched ? a.shape[0] : 1, bb = batched ? b.shape[0] : 1;
  const int64_t M = a.shape[size_t(a.ndim() - 2)], K = a.shape[size_t(a.ndim() - 1)];
  const int64_t N = b.shape[size_t(b.ndim() - 1)];
  require(b.shape[size_t(b.ndim() - 2)] == K, "matmul inner extents");
  require(ba == bb || ba == 1 || bb == 1, "matmul batch");
  const int64_t B = std::max(ba, bb);
  RefTensor out(batched ? std::vector<int64_t>{B, M, N} : std::vector<int64_t>{M, N});
  for (int64_t p = 0; p < B; ++p)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        long double s = 0;
        for (int64_t l = 0; l < K; ++l) {
          const double av = a.data[size_t((ba == 1 ? 0 : p) * M * K + i * K + l)];
          const double bv = b.data[size_t((bb == 1 ? 0 : p) * K * N + l * N + j)];
          s += (long double)av * bv;
        }
        out.data[size_t(p * M * N + i * N + j)] = double(s);
      }
  return out;
}

// ---------------------------------------------------------------- indexing
RefTensor gather(const RefTensor& x, int dim, const RefTensor& index) {
  const int d = wrap(dim, x.ndim());
  RefTensor out(index.shape);
  for (int64_t i = 0; i < index.numel(); ++i) {
    auto idx = unravel(i, index.shape);
    idx[size_t(d)] = int64_t(index.data[size_t(i)]);
    out.data[size_t(i)] = x.at(idx);
  }
  return out;
}

RefTensor index_select(const RefTensor& x, int dim, const std::vector<int64_t>& index) {
  const int d = wrap(dim, x.ndim());
  std::vector<int64_t> shape = x.shape;
  shape[size_t(d)] = int64_t(index.size());
  RefTensor out(shape);
  for (int64_t i = 0; i < out.numel(); ++i) {
    auto idx = unravel(i, shape);
    idx[size_t(d)] = index[size_t(idx[size_t(d)])];
    out.data[size_t(i)] = x.at(idx);
  }
  return out;
}

RefTensor scatter_add(const RefTensor& self, int dim, const RefTensor& index, const RefTensor& src) {
  const int d = wrap(dim, self.ndim());
  RefTensor out = self;
  for (int64_t i = 0; i < index.numel(); ++i) {
    const auto src_idx = unravel(i, index.shape);
    auto dst_idx = src_idx;
    dst_idx[size_t(d)] = int64_t(index.data[size_t(i)]);
    out.at(dst_idx) += src.at(src_idx);
  }
  return out;
}

RefTensor index_add(const RefTensor& self, int dim, const std::vector<int64_t>& index, const RefTensor& src) {
  const int d = wrap(dim, self.ndim());
  RefTensor out = self;
  for (int64_t i = 0; i < src.numel(); ++i) {
    const auto src_idx = unravel(i, src.shape);
    auto dst_idx = src_idx;
    dst_idx[size_t(d)] = index[size_t(src_idx[size_t(d)])];
    out.at(dst_idx) += src.data[size_t(i)];
  }
  return out;
}

// ---------------------------------------------------------------- sorting
std::pair<RefTensor, RefTensor> sort(const RefTensor& x_in, int dim, bool descending) {
  RefTensor x = x_in;
  if (x.shape.empty()) x.shape = {1};
  const int d = wrap(dim, x.ndim());
  RefTensor values(x.shape), indices(x.shape);
  // "a comes strictly before b": ascending a < b, descending a > b; NaN is the greatest value.
  auto before = [descending](double a, double b) {
    const bool an = std::isnan(a), bn = std::isnan(b);
    if (descending) {
      if (an) return !bn;
      if (bn) return false;
      return a > b;
    }
    if (an) return false;
    if (bn) return true;
    return a < b;
  };
  std::vector<int64_t> lines = x.shape;
  lines[size_t(d)] = 1;
  const int64_t len = x.shape[size_t(d)];
  for (int64_t o = 0; o < product(lines); ++o) {
    auto idx = unravel(o, lines);
    std::vector<double> v;
    std::vector<int64_t> pos;
    for (int64_t r = 0; r < len; ++r) {
      idx[size_t(d)] = r;
      const double e = x.at(idx);
      // Insertion: move left only past elements the new one strictly precedes (stable).
      size_t j = v.size();
      v.push_back(e);
      pos.push_back(r);
      while (j > 0 && before(e, v[j - 1])) {
        v[j] = v[j - 1];
        pos[j] = pos[j - 1];
        --j;
      }
      v[j] = e;
      pos[j] = r;
    }
    for (int64_t r = 0; r < len; ++r) {
      idx[size_t(d)] = r;
      values.at(idx) = v[size_t(r)];
      indices.at(idx) = double(pos[size_t(r)]);
    }
  }
  if (x_in.shape.empty()) values.shape.clear(), indices.shape.clear();
  return {values, indices};
}

std::pair<RefTensor, RefTensor> topk(const RefTensor& x, int64_t k, int dim, bool largest) {
  auto [v, i] = sort(x, dim, largest);
  if (x.shape.empty()) return {v, i};
  const int d = wrap(dim, x.ndim());
  std::vector<int64_t> shape = x.shape;
  shape[size_t(d)] = k;
  RefTensor tv(shape), ti(shape);
  for (int64_t e = 0; e < tv.numel(); ++e) {
    const auto idx = unravel(e, shape);
    tv.data[size_t(e)] = v.at(idx);
    ti.data[size_t(e)] = i.at(idx);
  }
  return {tv, ti};
}

// ---------------------------------------------------------------- shape
RefTensor concat(const std::vector<RefTensor>& xs, int dim) {
  require(!xs.empty(), "concat of nothing");
  const int d = wrap(dim, xs[0].ndim());
  std::vector<int64_t> shape = xs[0].shape;
  shape[size_t(d)] = 0;
  for (const auto& x : xs) shape[size_t(d)] += x.shape[size_t(d)];
  RefTensor out(shape);
  int64_t at = 0;
  for (const auto& x : xs) {
    for (int64_t i = 0; i < x.numel(); ++i) {
      auto idx = unravel(i, x.shape);
      const double v = x.data[size_t(i)];
      idx[size_t(d)] += at;
      out.at(idx) = v;
    }
    at += x.shape[size_t(d)];
  }
  return out;
}

RefTensor stack(const std::vector<RefTensor>& xs, int dim) {
  require(!xs.empty(), "stack of nothing");
  const int d = dim < 0 ? dim + xs[0].ndim() + 1 : dim;
  std::vector<int64_t> shape = xs[0].shape;
  shape.insert(shape.begin() + d, int64_t(xs.size()));
  RefTensor out(shape);
  for (int64_t i = 0; i < out.numel(); ++i) {
    auto idx = unravel(i, shape);
    const int64_t which = idx[size_t(d)];
    idx.erase(idx.begin() + d);
    out.data[size_t(i)] = xs[size_t(which)].at(idx);
  }
  return out;
}

RefTensor permute(const RefTensor& x, const std::vector<int>& perm) {
  std::vector<int64_t> shape(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) shape[i] = x.shape[size_t(perm[i])];
  RefTensor out(shape);
  for (int64_t i = 0; i < out.numel(); ++i) {
    const auto oidx = unravel(i, shape);
    std::vector<int64_t> xidx(perm.size());
    for (size_t k = 0; k < perm.size(); ++k) xidx[size_t(perm[k])] = oidx[k];
    out.data[size_t(i)] = x.at(xidx);
  }
  return out;
}
}  // namespace drcnn::ref
