// Device queries, guards and errors of the CUDA runtime layer (kernels/cuda/device.cpp).
#include <catch2/catch.hpp>

#include "drcnn/config.h"
#include "drcnn/core/tensor.h"

TEST_CASE("cuda/device: queries, guard and out-of-range device errors", "[cuda]") {
  REQUIRE(DRCNN_WITH_CUDA == 1);
  const int n = drcnn::cuda::device_count();
  REQUIRE(n > 0);
  { drcnn::DeviceGuard guard(drcnn::Device::cuda(n - 1)); }
  REQUIRE_THROWS_WITH(drcnn::Tensor::empty({2}, drcnn::DType::Float32, drcnn::Device::cuda(n)),
                      Catch::Contains("cuda:" + std::to_string(n)));
  const auto v = drcnn::cuda::runtime_versions();
  REQUIRE(v.runtime > 0);
  REQUIRE(v.cudnn >= 90000);
  drcnn::cuda::synchronize(drcnn::Device::cuda(0));
}
