// Finite-difference checks of the differentiable RoIAlign (include/drcnn/autograd/roi_align.h),
// float64 on the CPU, gradcheck's default tolerances (eps 1e-6, rtol 1e-4, atol 1e-6).
// RoIAlign is linear in the features, so the central difference is exact up to rounding; the
// RoIs are still chosen so that no sample lands on an integer coordinate (where the bilinear
// cell changes), as the brief asks, and some reach past the map's border (the clamp rules).
#include <catch2/catch.hpp>

#include <cmath>

#include "common/gradcheck.h"
#include "common/random.h"
#include "drcnn/autograd/roi_align.h"

using namespace drcnn;
using drcnn::test::gradcheck;
using In = std::vector<Variable>;

namespace {
/// RoIs (in image pixels, scale 0.5 to the map) whose samples for 2x2 bins with 2x2 samples
/// fall at fractional coordinates: x1, y1 = odd offsets + 0.3/0.7 pixels, sizes not multiples
/// of the sample spacing.
Tensor rois_f64() {
  return Tensor::from_vector<double>({0, 1.3, 2.7, 9.9, 8.1,     // inside
                                      1, -1.7, 0.6, 6.3, 7.9,    // partly left of the map
                                      1, 6.6, 4.2, 15.4, 13.8,   // reaches past the bottom/right
                                      0, 2.2, 1.4, 3.1, 2.9},    // small (grid 1 when adaptive)
                                     Shape{4, 5});
}
}  // namespace

TEST_CASE("autograd/roi_align: gradcheck, aligned and not, sampling 0 and 2", "[autograd][roi_align]") {
  const Variable f(test::random_tensor(Shape{2, 3, 6, 7}, 1, DType::Float64), true);
  const Tensor rois = rois_f64();
  for (bool aligned : {true, false})
    for (int64_t sr : {int64_t(0), int64_t(2)}) {
      INFO("aligned " << aligned << " sampling " << sr);
      const auto res = gradcheck([&](In in) { return roi_align(in[0], rois, {2, 2}, 0.5, sr, aligned); }, {f});
      INFO(res.report);
      REQUIRE(res.ok);
    }
}

TEST_CASE("autograd/roi_align_multilevel: gradcheck, gradients reach each RoI's level only", "[autograd][roi_align]") {
  const Variable f0(test::random_tensor(Shape{2, 2, 8, 9}, 2, DType::Float64), true);
  const Variable f1(test::random_tensor(Shape{2, 2, 4, 5}, 3, DType::Float64), true);
  const Variable f2(test::random_tensor(Shape{2, 2, 3, 3}, 4, DType::Float64), true);  // no RoI: zero gradient
  const Tensor rois = rois_f64();
  const Tensor levels = Tensor::from_vector<int64_t>({0, 1, 1, 0});
  const auto res = gradcheck(
      [&](In in) { return roi_align_multilevel(in, rois, levels, {2, 3}, {0.5, 0.25, 0.125}, 0, true); },
      {f0, f1, f2});
  INFO(res.report);
  REQUIRE(res.ok);
  // Level 2 got an all-zero gradient.
  for (double g : f2.grad().to_vector<double>()) CHECK(g == 0.0);
  // Only f1 requiring a gradient: the others are left alone.
  const Variable a(f0.data()), b(f1.data(), true), c(f2.data());
  Variable y = roi_align_multilevel({a, b, c}, rois, levels, {2, 3}, {0.5, 0.25, 0.125}, 0, true);
  sum(y).backward();
  CHECK(b.has_grad());
  CHECK_FALSE(a.has_grad());
}
