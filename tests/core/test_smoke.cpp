#include <catch2/catch.hpp>

#include "drcnn/core/tensor.h"
#include "drcnn/ops/elementwise.h"

TEST_CASE("core/tensor: smoke add", "[core][cpu]") {
  using drcnn::Tensor;
  Tensor a = Tensor::from_vector<float>({1, 2, 3, 4}, {2, 2});
  Tensor b = Tensor::from_vector<float>({10, 20}, {2});
  const auto v = (a + b).to_vector<float>();
  REQUIRE(v == std::vector<float>{11, 22, 13, 24});
}
