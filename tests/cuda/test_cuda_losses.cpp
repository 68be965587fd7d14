// CPU vs CUDA parity of the losses (include/drcnn/ops/losses.h): the same fused bodies run on
// both sides. Runs only where a CUDA device exists; elsewhere the test main exits with 77 and
// ctest reports it skipped. Tolerances: nvcc may contract a*b+c into FMAs and uses its own
// exp/log, so 1e-5 relative for float32 and 1e-12 for float64.
#include <catch2/catch.hpp>

#include <cmath>

#include "common/random.h"
#include "common/device_compare.h"
#include "drcnn/core/tensor.h"
#include "drcnn/ops/elementwise.h"
#include "drcnn/ops/losses.h"

using drcnn::Device;
using drcnn::DType;
using drcnn::Shape;
using drcnn::Tensor;
namespace ops = drcnn::ops;
using drcnn::test::require_device_close;
using drcnn::test::require_device_equal;
namespace test = drcnn::test;

namespace {
const Device kGpu = Device::cuda(0);

}  // namespace

TEST_CASE("cuda/losses: elementwise losses and gradients match the CPU", "[cuda]") {
  for (DType dt : {DType::Float32, DType::Float64}) {
    const double rtol = dt == DType::Float32 ? 1e-5 : 1e-12, atol = dt == DType::Float32 ? 1e-6 : 1e-14;
    const Tensor p = test::random_tensor(Shape{37, 5}, 1, dt, -3, 3), t = test::random_tensor(Shape{37, 5}, 2, dt, -3, 3);
    const Tensor y = test::random_tensor(Shape{37, 5}, 3, dt, 0, 1);
    const Tensor pg = p.to(kGpu), tg = t.to(kGpu), yg = y.to(kGpu);
    for (double beta : {1.0, 1.0 / 9, 0.0}) {
      const auto c = ops::smooth_l1_loss_fused(p, t, beta, true), g = ops::smooth_l1_loss_fused(pg, tg, beta, true);
      require_device_close(g.loss, c.loss, rtol, atol);
      require_device_close(g.grad, c.grad, rtol, atol);
    }
    const auto c1 = ops::l1_loss_fused(p, t, true), g1 = ops::l1_loss_fused(pg, tg, true);
    require_device_close(g1.loss, c1.loss, rtol, atol);
    require_device_close(g1.grad, c1.grad, rtol, atol);
    const Tensor x = ops::mul(p, 1000.0), xg = x.to(kGpu);  // large logits too
    const auto cb = ops::binary_cross_entropy_with_logits_fused(x, y, true);
    const auto gb = ops::binary_cross_entropy_with_logits_fused(xg, yg, true);
    require_device_close(gb.loss, cb.loss, rtol, atol);
    require_device_close(gb.grad, cb.grad, rtol, atol);
    require_device_close(ops::smooth_l1_loss(pg, tg, 0.5, {ops::Reduction::Mean, 7.0}),
                  ops::smooth_l1_loss(p, t, 0.5, {ops::Reduction::Mean, 7.0}), rtol, atol);
  }
}

TEST_CASE("cuda/losses: cross_entropy matches the CPU", "[cuda]") {
  for (DType dt : {DType::Float32, DType::Float64}) {
    const double rtol = dt == DType::Float32 ? 1e-5 : 1e-12, atol = dt == DType::Float32 ? 1e-6 : 1e-14;
    const int64_t N = 300, C = 81;
    const Tensor x = test::random_tensor(Shape{N, C}, 4, dt, -20, 20);
    auto lv = test::random_ints(N, 5, 0, C - 1);
    lv[0] = -100;
    lv[7] = -100;
    const Tensor labels = Tensor::from_vector<int64_t>(lv);
    const Tensor w = test::random_tensor(Shape{N}, 6, dt, 0.5, 2);
    const auto c = ops::cross_entropy_fused(x, labels, w, -100, true);
    const auto g = ops::cross_entropy_fused(x.to(kGpu), labels.to(kGpu), w.to(kGpu), -100, true);
    require_device_close(g.loss, c.loss, rtol, atol);
    require_device_close(g.grad, c.grad, rtol, atol);
    CHECK(g.denom == c.denom);
    REQUIRE_THROWS(ops::cross_entropy(x.to(kGpu), Tensor::full({N}, double(C), DType::Int64, kGpu)));
  }
}
