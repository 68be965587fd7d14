// The C++ twin of tools/golden_models.py's deterministic_fill: fills parameters and buffers
// with a formula of their name, so model goldens need no committed weights.
// value[k] = amplitude * sin(0.7 k + phase) (+ offset); phase = 2 pi (fnv1a(name) % 10007) / 10007;
// by role (the last name component and the rank): running_mean 0.1 s; running_var 1 + 0.2 s;
// rank >= 2 weights sqrt(2 / fan_in) s (std sqrt(1 / fan_in)); 1-D "weight" 1 + 0.1 s; else 0.1 s.
// Integer tensors (num_batches_tracked) are left alone.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "drcnn/core/tensor.h"

namespace drcnn::test {

inline uint32_t fnv1a(const std::string& s) {
  uint32_t h = 0x811C9DC5u;
  for (unsigned char c : s) h = (h ^ c) * 0x01000193u;
  return h;
}

inline std::vector<double> deterministic_values(const std::string& name, const Shape& shape) {
  const int64_t n = shape.numel();
  const double phase = double(fnv1a(name) % 10007u) / 10007.0 * 2.0 * M_PI;
  const std::string leaf = name.substr(name.rfind('.') == std::string::npos ? 0 : name.rfind('.') + 1);
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k) {
    const double s = std::sin(0.7 * double(k) + phase);
    double x;
    if (leaf == "running_mean") x = 0.1 * s;
    else if (leaf == "running_var") x = 1.0 + 0.2 * s;
    else if (shape.ndim() >= 2) x = std::sqrt(2.0 / double(n / shape[0])) * s;
    else if (leaf == "weight") x = 1.0 + 0.1 * s;
    else x = 0.1 * s;
    v[static_cast<size_t>(k)] = x;
  }
  return v;
}

/// Fills `t` (any floating dtype, CPU or CUDA) in place with the formula for `name`.
inline void deterministic_fill(Tensor& t, const std::string& name) {
  if (!is_floating(t.dtype())) return;
  t.copy_(Tensor::from_vector(deterministic_values(name, t.shape()), t.shape()));
}

/// x[k] = 2 sin(0.013 k) (golden_models.py: input_values), float64.
inline Tensor deterministic_input(const Shape& shape) {
  std::vector<double> v(static_cast<size_t>(shape.numel()));
  for (size_t k = 0; k < v.size(); ++k) v[k] = 2.0 * std::sin(0.013 * double(k));
  return Tensor::from_vector(v, shape);
}

/// w[k] = cos(0.011 k) (golden_models.py: output_weights), float64: the upstream gradient.
inline Tensor deterministic_output_weights(const Shape& shape) {
  std::vector<double> v(static_cast<size_t>(shape.numel()));
  for (size_t k = 0; k < v.size(); ++k) v[k] = std::cos(0.011 * double(k));
  return Tensor::from_vector(v, shape);
}
}  // namespace drcnn::test
