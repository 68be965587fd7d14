// expect_allclose: element-wise comparison with a report that says how many elements differ,
// which ones (first 5: index, actual, expected) and the largest absolute and relative error.
//
// Rule (numpy.isclose with equal_nan): |actual - expected| <= atol + rtol * |expected|;
// NaN matches NaN; infinities must match exactly. Tensors are read element by element through
// their strides and data_ptr() (strided_values), not through drcnn's copy kernels, so a broken
// copy/cast cannot make a wrong result look right.
#pragma once
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <source_location>
#include <string>
#include <vector>

#include "common/random.h"
#include "drcnn/core/tensor.h"

namespace drcnn::test {

/// IEEE half bits -> double, written from the format definition (not drcnn's half.h).
inline double decode_half(uint16_t h) {
  const int s = h >> 15, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  double v;
  if (e == 0x1f) v = m ? std::nan("") : INFINITY;
  else if (e == 0) v = std::ldexp(double(m), -24);
  else v = std::ldexp(double(1024 + m), e - 25);
  return s ? -v : v;
}
/// bfloat16 bits -> double: the upper half of an IEEE binary32.
inline double decode_bf16(uint16_t b) {
  const uint32_t u = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return double(f);
}

/// One element at byte address p of `dtype`, as double.
inline double read_element(const void* p, DType dtype) {
  switch (dtype) {
    case DType::Float32: { float v; std::memcpy(&v, p, 4); return v; }
    case DType::Float64: { double v; std::memcpy(&v, p, 8); return v; }
    case DType::Float16: { uint16_t v; std::memcpy(&v, p, 2); return decode_half(v); }
    case DType::BFloat16: { uint16_t v; std::memcpy(&v, p, 2); return decode_bf16(v); }
    case DType::Int32: { int32_t v; std::memcpy(&v, p, 4); return double(v); }
    case DType::Int64: { int64_t v; std::memcpy(&v, p, 8); return double(v); }
    case DType::UInt8: { uint8_t v; std::memcpy(&v, p, 1); return double(v); }
    case DType::Bool: { uint8_t v; std::memcpy(&v, p, 1); return v ? 1.0 : 0.0; }
  }
  return std::nan("");
}

/// All elements of a CPU tensor in row-major order, read through shape/strides/data_ptr().
inline std::vector<double> strided_values(const Tensor& t) {
  REQUIRE(t.defined());
  REQUIRE(t.device().is_cpu());
  const int64_t n = t.numel();
  std::vector<double> out(static_cast<size_t>(n));
  if (n == 0) return out;
  const char* base = static_cast<const char*>(t.data_ptr());
  const size_t es = dtype_size(t.dtype());
  for (int64_t i = 0; i < n; ++i) {
    int64_t rem = i, off = 0;
    for (int d = t.ndim() - 1; d >= 0; --d) {
      off += (rem % t.shape()[d]) * t.strides()[d];
      rem /= t.shape()[d];
    }
    out[size_t(i)] = read_element(base + off * int64_t(es), t.dtype());
  }
  return out;
}

struct CloseReport {
  int64_t mismatches = 0;
  std::string text;
};

inline CloseReport compare_close(const std::vector<double>& actual, const std::vector<double>& expected, double rtol,
                                 double atol) {
  CloseReport r;
  if (actual.size() != expected.size()) {
    r.mismatches = -1;
    r.text = fmt::format("size mismatch: actual has {} elements, expected {}", actual.size(), expected.size());
    return r;
  }
  double max_abs = 0, max_rel = 0;
  std::string first;
  for (size_t i = 0; i < actual.size(); ++i) {
    const double a = actual[i], e = expected[i];
    bool ok;
    if (std::isnan(a) || std::isnan(e)) ok = std::isnan(a) && std::isnan(e);
    else if (std::isinf(a) || std::isinf(e)) ok = a == e;
    else ok = std::abs(a - e) <= atol + rtol * std::abs(e);
    if (!std::isnan(a) && !std::isnan(e) && !std::isinf(a) && !std::isinf(e)) {
      const double ae = std::abs(a - e);
      max_abs = std::max(max_abs, ae);
      if (e != 0) max_rel = std::max(max_rel, ae / std::abs(e));
    }
    if (!ok) {
      if (r.mismatches < 5) first += fmt::format("\n  [{}] actual {:.17g}, expected {:.17g}", i, a, e);
      ++r.mismatches;
    }
  }
  r.text = fmt::format("{} of {} elements differ (rtol {:g}, atol {:g}); max abs error {:.6g}, max rel error {:.6g}",
                       r.mismatches, actual.size(), rtol, atol, max_abs, max_rel);
  if (r.mismatches > 0) r.text += "; first mismatches:" + first;
  return r;
}

inline void expect_allclose(const std::vector<double>& actual, const std::vector<double>& expected, double rtol,
                            double atol, std::source_location loc = std::source_location::current()) {
  const CloseReport r = compare_close(actual, expected, rtol, atol);
  INFO("expect_allclose called at " << loc.file_name() << ":" << loc.line());
  INFO(r.text);
  CHECK(r.mismatches == 0);
}

template <typename A, typename E>
void expect_allclose(const std::vector<A>& actual, const std::vector<E>& expected, double rtol, double atol,
                     std::source_location loc = std::source_location::current()) {
  expect_allclose(std::vector<double>(actual.begin(), actual.end()),
                  std::vector<double>(expected.begin(), expected.end()), rtol, atol, loc);
}

/// Tensor vs expected values in row-major order (the tensor may be strided).
inline void expect_allclose(const Tensor& actual, const std::vector<double>& expected, double rtol, double atol,
                            std::source_location loc = std::source_location::current()) {
  expect_allclose(strided_values(actual), expected, rtol, atol, loc);
}

/// Tensor vs tensor: shapes must be equal, then values are compared.
inline void expect_allclose(const Tensor& actual, const Tensor& expected, double rtol, double atol,
                            std::source_location loc = std::source_location::current()) {
  INFO("expect_allclose called at " << loc.file_name() << ":" << loc.line());
  INFO("actual shape " << fmt::format("{}", actual.shape()) << ", expected shape "
                       << fmt::format("{}", expected.shape()));
  REQUIRE(actual.shape() == expected.shape());
  expect_allclose(strided_values(actual), strided_values(expected), rtol, atol, loc);
}

/// Exact equality (NaN == NaN), element by element.
inline void expect_equal(const Tensor& actual, const std::vector<double>& expected,
                         std::source_location loc = std::source_location::current()) {
  expect_allclose(actual, expected, 0.0, 0.0, loc);
}

/// Raw bytes of two CPU tensors' elements are identical (for bitwise determinism checks).
inline bool bitwise_equal(const Tensor& a, const Tensor& b) {
  if (!(a.shape() == b.shape()) || a.dtype() != b.dtype()) return false;
  const Tensor ca = a.contiguous(), cb = b.contiguous();
  return std::memcmp(ca.data_ptr(), cb.data_ptr(), size_t(ca.numel()) * ca.element_size()) == 0;
}
}  // namespace drcnn::test
