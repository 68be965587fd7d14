// Finite-difference checks of the differentiable deform_conv2d (include/drcnn/autograd/deform_conv.h),
// float64 on the CPU, gradcheck's default tolerances (eps 1e-6, rtol 1e-4, atol 1e-6), for every
// input: input, offset, mask, weight, bias. The output is piecewise smooth in the offsets (the
// bilinear cell changes at integer sample coordinates), so the offsets are integers plus a
// fraction in [0.15, 0.85]: no sample lies within 1e-6 of a cell border. Some reach past the
// map's border (|offset| up to 3.85 on a 5x6 map).
#include <catch2/catch.hpp>

#include <cmath>

#include "common/gradcheck.h"
#include "common/random.h"
#include "drcnn/autograd/deform_conv.h"

using namespace drcnn;
using drcnn::test::gradcheck;
using In = std::vector<Variable>;

namespace {
Tensor fractional_offsets(const Shape& s, uint64_t seed) {
  std::vector<double> v = test::random_values(s.numel(), seed, -3.0, 3.0);
  const std::vector<double> f = test::random_values(s.numel(), seed + 100, 0.15, 0.85);
  for (size_t i = 0; i < v.size(); ++i) v[i] = std::floor(v[i]) + f[i];
  return Tensor::from_vector<double>(v, s);
}
}  // namespace

TEST_CASE("autograd/deform_conv2d: gradcheck of every input, DCNv2 and DCNv1, groups, stride", "[autograd][deform_conv]") {
  struct Case {
    ops::DeformConv2dParams p;
    int64_t cin, cout, ho, wo;
    bool mask;
  };
  ops::DeformConv2dParams a;
  a.padding = {1, 1};
  ops::DeformConv2dParams b = a;
  b.groups = 2;
  b.offset_groups = 2;
  ops::DeformConv2dParams c;
  c.stride = {2, 1};
  c.padding = {1, 0};
  c.dilation = {1, 2};
  for (const Case& k : {Case{a, 2, 3, 5, 6, true}, Case{b, 4, 2, 5, 6, true}, Case{a, 2, 2, 5, 6, false},
                        Case{c, 2, 2, 3, 2, true}}) {
    const int64_t og = k.p.offset_groups;
    const Variable x(test::random_tensor(Shape{2, k.cin, 5, 6}, 1, DType::Float64), true);
    const Variable off(fractional_offsets(Shape{2, 2 * og * 9, k.ho, k.wo}, 2), true);
    const Variable m = k.mask ? Variable(test::random_tensor(Shape{2, og * 9, k.ho, k.wo}, 3, DType::Float64, 0.0, 1.0), true)
                              : Variable();
    const Variable w(test::random_tensor(Shape{k.cout, k.cin / k.p.groups, 3, 3}, 4, DType::Float64), true);
    const Variable bias(test::random_tensor(Shape{k.cout}, 5, DType::Float64), true);
    In ins{x, off, w, bias};
    if (k.mask) ins.push_back(m);
    const auto res = gradcheck(
        [&](In in) { return deform_conv2d(in[0], in[1], k.mask ? in[4] : Variable(), in[2], in[3], k.p); }, ins);
    INFO("groups " << k.p.groups << " offset_groups " << og << " mask " << k.mask << " stride " << k.p.stride[0]);
    INFO(res.report);
    REQUIRE(res.ok);
    CHECK(res.checked > 100);
  }
}

TEST_CASE("autograd/deform_conv2d: only the inputs that require a gradient get one", "[autograd][deform_conv]") {
  const Variable x(test::random_tensor(Shape{1, 2, 4, 4}, 1, DType::Float64));
  const Variable off(fractional_offsets(Shape{1, 18, 4, 4}, 2), true);
  const Variable m(test::random_tensor(Shape{1, 9, 4, 4}, 3, DType::Float64, 0.0, 1.0));
  const Variable w(test::random_tensor(Shape{2, 2, 3, 3}, 4, DType::Float64));
  ops::DeformConv2dParams p;
  p.padding = {1, 1};
  sum(deform_conv2d(x, off, m, w, Variable(), p)).backward();
  CHECK(off.has_grad());
  CHECK_FALSE(x.has_grad());
  CHECK_FALSE(m.has_grad());
  CHECK_FALSE(w.has_grad());
}
