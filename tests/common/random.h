// Seeded random test inputs, made with std::mt19937_64 (independent of drcnn's Philox, so a
// bug in the library's generator cannot hide a bug in the op under test).
#pragma once
#include <cstdint>
#include <cmath>
#include <random>
#include <string>
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
/// A tensor of logical shape `shape` in one of several memory layouts, for testing that ops
/// read strides correctly. Each layout has its own random values (references read the actual
/// tensor through its strides, so values need not agree across layouts).
struct Layout {
  std::string name;
  Tensor t;
};

/// contiguous; transposed (all dims reversed in memory); strided (every other element along
/// the last dim, the skipped ones NaN or a sentinel so a wrong read shows); offset (a narrow
/// of a bigger tensor, garbage before it); expanded (dim 0 broadcast from extent 1, stride 0).
inline std::vector<Layout> layouts(const Shape& shape, uint64_t seed, DType dtype, double lo = -1.0,
                                   double hi = 1.0) {
  std::vector<Layout> out;
  out.push_back({"contiguous", random_tensor(shape, seed, dtype, lo, hi)});
  const int nd = shape.ndim();
  if (nd >= 2) {
    std::vector<int> rev(static_cast<size_t>(nd));
    Shape rshape;
    for (int d = 0; d < nd; ++d) {
      rev[size_t(d)] = nd - 1 - d;
      rshape.push_back(shape[nd - 1 - d]);
    }
    out.push_back({"transposed", random_tensor(rshape, seed + 1, dtype, lo, hi).permute(rev)});
  }
  const double junk = (dtype == DType::Float32 || dtype == DType::Float64) ? NAN : 12345.0;
  if (nd >= 1) {
    Shape wide = shape;
    wide[nd - 1] = 2 * shape[nd - 1];
    Tensor w = random_tensor(wide, seed + 2, dtype, lo, hi);
    w.slice(nd - 1, 1, wide[nd - 1], 2).fill_(junk);
    out.push_back({"strided", w.slice(nd - 1, 0, wide[nd - 1], 2)});
    Shape taller = shape;
    taller[0] = shape[0] + 2;
    Tensor t = random_tensor(taller, seed + 3, dtype, lo, hi);
    t.narrow(0, 0, 2).fill_(junk);
    out.push_back({"offset", t.narrow(0, 2, shape[0])});
  }
  if (nd >= 1 && shape[0] != 1) {
    Shape one = shape;
    one[0] = 1;
    out.push_back({"expanded", random_tensor(one, seed + 4, dtype, lo, hi).expand(shape)});
  }
  return out;
}
}  // namespace drcnn::test
