// Shape and strides: small fixed-capacity arrays of int64 (no heap, trivially copyable).
#pragma once
#include "drcnn/core/error.h"  // DRCNN_HAVE_FMT
#if DRCNN_HAVE_FMT
#include <fmt/format.h>
#endif

#include <array>
#include <cstdint>
#include <initializer_list>
#include <vector>

#include "drcnn/core/error.h"
#include "drcnn/core/tensor_view.h"

namespace drcnn {

/// An ordered list of up to kMaxDims extents (or strides). Negative dims are not stored.
class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims) { assign(dims.begin(), dims.end()); }
  explicit Shape(const std::vector<int64_t>& dims) { assign(dims.begin(), dims.end()); }

  int ndim() const { return m_ndim; }
  int64_t operator[](int i) const { return m_d[size_t(i)]; }
  int64_t& operator[](int i) { return m_d[size_t(i)]; }
  const int64_t* data() const { return m_d.data(); }
  const int64_t* begin() const { return m_d.data(); }
  const int64_t* end() const { return m_d.data() + m_ndim; }
  /// Product of the extents (1 for a 0-d shape).
  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < m_ndim; ++i) n *= m_d[size_t(i)];
    return n;
  }
  void push_back(int64_t v) {
    DRCNN_CHECK(m_ndim < kMaxDims, "Shape: more than ", kMaxDims, " dimensions");
    m_d[size_t(m_ndim++)] = v;
  }
  void insert(int pos, int64_t v) {
    DRCNN_CHECK(m_ndim < kMaxDims, "Shape: more than ", kMaxDims, " dimensions");
    for (int i = m_ndim; i > pos; --i) m_d[size_t(i)] = m_d[size_t(i - 1)];
    m_d[size_t(pos)] = v;
    ++m_ndim;
  }
  void erase(int pos) {
    for (int i = pos; i + 1 < m_ndim; ++i) m_d[size_t(i)] = m_d[size_t(i + 1)];
    --m_ndim;
  }
  std::vector<int64_t> vec() const { return {begin(), end()}; }
  friend bool operator==(const Shape& a, const Shape& b) {
    if (a.m_ndim != b.m_ndim) return false;
    for (int i = 0; i < a.m_ndim; ++i)
      if (a.m_d[size_t(i)] != b.m_d[size_t(i)]) return false;
    return true;
  }

 private:
  template <typename It>
  void assign(It first, It last) {
    for (; first != last; ++first) push_back(int64_t(*first));
  }
  std::array<int64_t, kMaxDims> m_d{};
  int m_ndim = 0;
};
using Strides = Shape;

/// Row-major (C-order) strides for `shape`, in elements.
inline Strides contiguous_strides(const Shape& shape) {
  Strides s = shape;
  int64_t acc = 1;
  for (int i = shape.ndim() - 1; i >= 0; --i) {
    s[i] = acc;
    acc *= shape[i] > 0 ? shape[i] : 1;
  }
  return s;
}

/// Wraps a possibly negative dimension index into [0, ndim); errors name `op`.
inline int wrap_dim(int dim, int ndim, const char* op) {
  const int d = dim < 0 ? dim + ndim : dim;
  DRCNN_CHECK(d >= 0 && d < ndim, op, ": dimension ", dim, " is out of range for a tensor with ",
              ndim, " dimensions (expected ", -ndim, "..", ndim - 1, ")");
  return d;
}

/// The shape both operands broadcast to (numpy rules); errors name `op` and both shapes.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
}  // namespace drcnn

#if DRCNN_HAVE_FMT
template <>
struct fmt::formatter<drcnn::Shape> : fmt::formatter<std::string_view> {
  template <typename Ctx>
  auto format(const drcnn::Shape& s, Ctx& ctx) const {
    auto out = fmt::format_to(ctx.out(), "[");
    for (int i = 0; i < s.ndim(); ++i) out = i ? fmt::format_to(out, ", {}", s[i]) : fmt::format_to(out, "{}", s[i]);
    return fmt::format_to(out, "]");
  }
};
#else
namespace drcnn {
inline std::ostream& operator<<(std::ostream& os, const Shape& s) {
  os << '[';
  for (int i = 0; i < s.ndim(); ++i) os << (i ? ", " : "") << s[i];
  return os << ']';
}
}  // namespace drcnn
#endif
