// Seeded random test inputs, made with std::mt19937_64 (independent of drcnn's Philox, so a
// bug in the library's generator cannot hide a bug in the op under test).
#pragma once
#include <cstdint>
#include <random>
#include <vector>

#include "drcnn/core/tensor.h"

namespace drcnn::test {

/// n doubles uniform in [lo, hi) from `seed`.
inline std::vector<double> random_values(int64_t n, uint64_t seed, double lo = -1.0, double hi = 1.0) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<double> v(static_cast<size_t>(n));
  for (auto& x : v) x = dist(rng);
  return v;
}

/// n integers uniform in [lo, hi] from `seed`.
inline std::vector<int64_t> random_ints(int64_t n, uint64_t seed, int64_t lo, int64_t hi) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> dist(lo, hi);
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (auto& x : v) x = dist(rng);
  return v;
}

/// A contiguous tensor of `shape` with values uniform in [lo, hi), converted to T.
template <typename T>
Tensor random_tensor(const Shape& shape, uint64_t seed, double lo = -1.0, double hi = 1.0) {
  const std::vector<double> v = random_values(shape.numel(), seed, lo, hi);
  std::vector<T> typed(v.size());
  for (size_t i = 0; i < v.size(); ++i) typed[i] = static_cast<T>(v[i]);
  return Tensor::from_vector<T>(typed, shape);
}

/// Same, with the dtype chosen at run time (f32/f64 uniform; integer dtypes get integers in
/// [lo, hi]).
inline Tensor random_tensor(const Shape& shape, uint64_t seed, DType dtype, double lo = -1.0, double hi = 1.0) {
  switch (dtype) {
    case DType::Float32: return random_tensor<float>(shape, seed, lo, hi);
    case DType::Float64: return random_tensor<double>(shape, seed, lo, hi);
    case DType::Int32: {
      const auto v = random_ints(shape.numel(), seed, int64_t(lo), int64_t(hi));
      return Tensor::from_vector<int32_t>(std::vector<int32_t>(v.begin(), v.end()), shape);
    }
    case DType::Int64: return Tensor::from_vector<int64_t>(random_ints(shape.numel(), seed, int64_t(lo), int64_t(hi)), shape);
    default: break;
  }
  DRCNN_FAIL("random_tensor: unsupported test dtype ", dtype);
}

/// An int64 index tensor of `shape` with values in [0, hi).
inline Tensor random_index(const Shape& shape, uint64_t seed, int64_t hi) {
  return Tensor::from_vector<int64_t>(random_ints(shape.numel(), seed, 0, hi - 1), shape);
}
}  // namespace drcnn::test
