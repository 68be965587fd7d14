// CPU-vs-CUDA comparison for the tests in tests/cuda: the CUDA result must be on cuda:0 and
// match the CPU result element by element within atol + rtol * |cpu|. Equal values (equal
// infinities included, whose difference is NaN) and NaN pairs always match. On failure it
// reports the count, the worst error and the first 5 mismatches.
#pragma once
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

#include "drcnn/core/tensor.h"

namespace drcnn::test {

inline void require_device_close(const Tensor& gpu, const Tensor& cpu, double rtol, double atol) {
  REQUIRE(gpu.device() == Device::cuda(0));
  REQUIRE(gpu.shape() == cpu.shape());
  REQUIRE(gpu.dtype() == cpu.dtype());
  const auto a = gpu.to_vector<double>(), b = cpu.to_vector<double>();
  size_t bad = 0;
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const bool same = a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i]));
    const double err = std::abs(a[i] - b[i]);
    if (!same && !(err <= atol + rtol * std::abs(b[i]))) {
      ++bad;
      worst = std::max(worst, err);
      if (bad <= 5) UNSCOPED_INFO("index " << i << ": cuda " << a[i] << " vs cpu " << b[i]);
    }
  }
  INFO(bad << " of " << a.size() << " elements differ; worst abs error " << worst);
  REQUIRE(bad == 0);
}
inline void require_device_equal(const Tensor& gpu, const Tensor& cpu) { require_device_close(gpu, cpu, 0, 0); }
}  // namespace drcnn::test
