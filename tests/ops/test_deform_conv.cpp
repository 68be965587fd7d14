// deform_conv2d (include/drcnn/ops/deform_conv.h) on the CPU:
// - against torchvision 0.29 (tests/data/deform_conv/deform_conv2d.safetensors, written by
//   tools/golden_deform_conv.py): forward and every gradient for 12 cases (masks random, zero
//   and partly zero, DCNv1, offsets pushing samples outside the map, weight groups and offset
//   groups, stride, dilation, a 3x2 kernel, 1x1), float64 and float32;
// - hand cases proven apart from the kernel: zero offsets and mask 1 are conv2d, a constant
//   mask m scales the product by m, an integer offset (dy, dx) is conv2d of the shifted input;
// - the CUDA col2im body (atomic, one column element per invocation) run on the host equals the
//   CPU plane body; the shape errors.
// Finite differences: tests/autograd/test_autograd_deform_conv.cpp.
#include <catch2/catch.hpp>

#include <sstream>
#include <string>
#include <vector>

#include <fmt/core.h>

#include "common/allclose.h"
#include "common/golden.h"
#include "common/random.h"
#include "drcnn/autograd/deform_conv.h"
#include "drcnn/core/parallel_cpu.h"
#include "drcnn/ops/conv.h"
#include "drcnn/ops/deform_conv.h"
#include "drcnn/ops/detail/deform_conv_body.h"
#include "drcnn/ops/elementwise.h"

using namespace drcnn;
using Catch::Matchers::Contains;

namespace {
ops::DeformConv2dParams params_of(const std::vector<int64_t>& p) {
  ops::DeformConv2dParams dp;
  dp.stride = {p[0], p[1]};
  dp.padding = {p[2], p[3]};
  dp.dilation = {p[4], p[5]};
  dp.groups = p[6];
  dp.offset_groups = p[7];
  return dp;
}
}  // namespace

TEST_CASE("golden/torchvision: deform_conv2d forward and every gradient", "[golden][ops][cpu][deform_conv]") {
  const auto g = test::load_golden("deform_conv/deform_conv2d");
  std::vector<std::string> cases;
  std::stringstream ss(g.meta("cases"));
  for (std::string c; std::getline(ss, c, ',');) cases.push_back(c);
  REQUIRE(cases.size() == 12);
  for (const auto& c : cases) {
    INFO("case " << c);
    const std::vector<int64_t> p = g[c + ".params"].to_vector<int64_t>();
    const ops::DeformConv2dParams dp = params_of(p);
    const bool has_mask = p[8] != 0, has_bias = p[9] != 0;
    for (DType dt : {DType::Float64, DType::Float32}) {
      const bool f64 = dt == DType::Float64;
      // float64: the same products as torchvision's, summed in another order (GEMM blocking):
      // ~1e-15 relative; 1e-11 is far below any wrong tap or corner (O(0.01)).
      // float32: the sample coordinates (up to ~20) rounded to float32 move the bilinear weights
      // by ~1e-6, and the sums have <= 72 terms of O(1): 2e-4 absolute and relative.
      const double tol = f64 ? 1e-11 : 2e-4;
      const std::string tag = fmt::format("deform_conv2d {} {}", c, f64 ? "f64" : "f32");
      Variable x(g[c + ".input"].to(dt), true), off(g[c + ".offset"].to(dt), true), w(g[c + ".weight"].to(dt), true);
      Variable m = has_mask ? Variable(g[c + ".mask"].to(dt), true) : Variable();
      Variable b = has_bias ? Variable(g[c + ".bias"].to(dt), true) : Variable();
      Variable y = deform_conv2d(x, off, m, w, b, dp);
      y.backward(g[c + ".grad_output"].to(dt));
      test::expect_golden_close(tag + " output", y.data(), g[c + ".output"], tol, tol);
      test::expect_golden_close(tag + " grad_input", x.grad(), g[c + ".grad_input"], tol, tol);
      test::expect_golden_close(tag + " grad_offset", off.grad(), g[c + ".grad_offset"], tol, tol);
      test::expect_golden_close(tag + " grad_weight", w.grad(), g[c + ".grad_weight"], tol, tol);
      if (has_mask) test::expect_golden_close(tag + " grad_mask", m.grad(), g[c + ".grad_mask"], tol, tol);
      if (has_bias) test::expect_golden_close(tag + " grad_bias", b.grad(), g[c + ".grad_bias"], tol, tol);
    }
  }
}

TEST_CASE("deform_conv2d: zero offsets are conv2d, a constant mask scales it, integer offsets shift it",
          "[ops][cpu][deform_conv]") {
  const Tensor x = test::random_tensor(Shape{2, 4, 6, 7}, 1, DType::Float64);
  const Tensor w = test::random_tensor(Shape{6, 2, 3, 3}, 2, DType::Float64);
  const Tensor b = test::random_tensor(Shape{6}, 3, DType::Float64);
  ops::Conv2dParams cp;
  cp.padding = {1, 1};
  cp.groups = 2;
  const Tensor ref = ops::conv2d(x, w, b, cp);                      // [2, 6, 6, 7]
  const Tensor ref_nobias = ops::conv2d(x, w, Tensor(), cp);
  const Tensor zero_off = Tensor::zeros({2, 2 * 2 * 9, 6, 7}, DType::Float64);
  const Tensor ones = Tensor::ones({2, 2 * 9, 6, 7}, DType::Float64);
  // Without a mask (DCNv1) and with mask 1: exactly the sampled values, so equal to conv2d up
  // to the GEMM's summation order.
  test::expect_allclose(ops::deform_conv2d(x, zero_off, Tensor(), w, b, {1, 1}, {1, 1}, {1, 1}, 2, 2), ref, 1e-13,
                        1e-13);
  test::expect_allclose(ops::deform_conv2d(x, zero_off, ones, w, b, {1, 1}, {1, 1}, {1, 1}, 2, 2), ref, 1e-13, 1e-13);
  // mask 0.5 everywhere: out = 0.5 * conv(x, w) + bias.
  const Tensor half = ops::mul(ones, 0.5);
  test::expect_allclose(ops::deform_conv2d(x, zero_off, half, w, Tensor(), {1, 1}, {1, 1}, {1, 1}, 2, 2),
                        ops::mul(ref_nobias, 0.5), 1e-13, 1e-13);
  // Offset (dy, dx) = (1, -2) on every tap: tap (i, j) of output (oy, ox) reads
  // in[oy - 1 + i + 1, ox - 1 + j - 2] (0 outside the map). That is conv2d without padding of the
  // [8, 9] image S[u, v] = in[u, v - 3] (0 outside): tap (i, j) reads S[oy + i, ox + j].
  std::vector<double> off(2 * 2 * 9 * 6 * 7 * 2);
  for (size_t i = 0; i < off.size(); ++i) off[i] = ((i / (6 * 7)) % 2 == 0) ? 1.0 : -2.0;
  const Tensor shift_off = Tensor::from_vector<double>(off, Shape{2, 36, 6, 7});
  const std::vector<double> xv = x.to_vector<double>();
  std::vector<double> sv(size_t(8 * 8 * 9), 0.0);
  for (int64_t nc = 0; nc < 8; ++nc)
    for (int64_t u = 0; u < 6; ++u)
      for (int64_t v = 3; v < 9 && v - 3 < 7; ++v) sv[size_t((nc * 8 + u) * 9 + v)] = xv[size_t((nc * 6 + u) * 7 + v - 3)];
  const Tensor shifted = Tensor::from_vector<double>(sv, Shape{2, 4, 8, 9});
  ops::Conv2dParams unpadded = cp;
  unpadded.padding = {0, 0};
  test::expect_allclose(ops::deform_conv2d(x, shift_off, Tensor(), w, b, {1, 1}, {1, 1}, {1, 1}, 2, 2),
                        ops::conv2d(shifted, w, b, unpadded), 1e-13, 1e-13);
}

TEST_CASE("deform_conv2d: a sample at (0.25, 0.5) of a 2x2 map, by hand", "[ops][cpu][deform_conv]") {
  // 1x1 kernel, one pixel, offset (0.25, 0.5), mask 0.8, weight 2, bias 1:
  // bilinear = 0.75*0.5*1 + 0.75*0.5*2 + 0.25*0.5*3 + 0.25*0.5*4 = 0.375 + 0.75 + 0.375 + 0.5 = 2.0
  // out = 2 * 0.8 * 2.0 + 1 = 4.2.
  const Tensor x = Tensor::from_vector<double>({1, 2, 3, 4}, Shape{1, 1, 2, 2});
  const Tensor off = Tensor::from_vector<double>({0.25, 0, 0, 0, 0.5, 0, 0, 0}, Shape{1, 2, 2, 2});
  const Tensor m = Tensor::from_vector<double>({0.8, 1, 1, 1}, Shape{1, 1, 2, 2});
  const Tensor w = Tensor::from_vector<double>({2}, Shape{1, 1, 1, 1});
  const Tensor b = Tensor::from_vector<double>({1}, Shape{1});
  const Tensor y = ops::deform_conv2d(x, off, m, w, b);
  // Pixels (0,1), (1,0), (1,1) have zero offsets: 2 * x + 1.
  test::expect_allclose(y, std::vector<double>{4.2, 5, 7, 9}, 1e-15, 1e-15);
  // d out / d mask at (0, 0) = w * bilinear = 4; d out / d offset_y = w * m * d bilinear / dy
  // = 2 * 0.8 * (0.5 * (4 - 2) + 0.5 * (3 - 1)) = 3.2; offset_x: 2 * 0.8 * (0.75 * 1 + 0.25 * 1) = 1.6.
  const Tensor go = Tensor::from_vector<double>({1, 0, 0, 0}, Shape{1, 1, 2, 2});
  const ops::DeformConv2dGrads r = ops::deform_conv2d_backward(go, x, off, m, w, {});
  test::expect_allclose(r.mask, std::vector<double>{4, 0, 0, 0}, 1e-15, 1e-15);
  test::expect_allclose(r.offset, std::vector<double>{3.2, 0, 0, 0, 1.6, 0, 0, 0}, 1e-15, 1e-15);
  // grad_input: the bilinear weights times w * m = 1.6: (0.375, 0.375, 0.125, 0.125) * 1.6.
  test::expect_allclose(r.input, std::vector<double>{0.6, 0.6, 0.2, 0.2}, 1e-15, 1e-15);
  test::expect_allclose(r.weight, std::vector<double>{0.8 * 2.0}, 1e-15, 1e-15);
  test::expect_allclose(r.bias, std::vector<double>{1}, 1e-15, 1e-15);
}

TEST_CASE("deform_conv2d: the CUDA bodies (per element, atomic col2im) equal the CPU forms (rows, planes)",
          "[ops][cpu][deform_conv]") {
  ops::Conv2dGeometry g;
  g.n = 2;
  g.c_in = 4;
  g.h = 5;
  g.w = 6;
  g.c_out = 3;
  g.kh = g.kw = 3;
  g.ph = g.pw = 1;
  g.sh = 2;
  g.ho = 3;
  g.wo = 6;
  const int64_t K = g.k_all(), P = g.p();
  const std::vector<double> off = test::random_values(2 * 2 * 2 * 9 * P, 4, -3.0, 3.0);
  const std::vector<double> mask = test::random_values(2 * 2 * 9 * P, 5, 0.0, 1.0);
  const std::vector<double> gcol = test::random_values(2 * K * P, 6);
  std::vector<double> plane(size_t(2 * 4 * 5 * 6), 0.0), atomic(plane.size(), 0.0);
  ops::DeformConvLaunch<double> l;
  l.g = g;
  l.batch = 2;
  l.offset_groups = 2;
  l.offset = off.data();
  l.mask = mask.data();
  l.grad_col = gcol.data();
  l.grad_input = plane.data();
  ops::cpu::deform_col2im<double>(l);
  l.grad_input = atomic.data();
  const ops::detail::DeformCol2ImAtomicBody<double> body{l};
  for (int64_t i = 0; i < 2 * K * P; ++i) body(i);
  test::expect_allclose(plane, atomic, 1e-13, 1e-13);
  // im2col: the CPU row form and the CUDA per-element form give the same bits.
  const std::vector<double> in = test::random_values(2 * 4 * 5 * 6, 7);
  std::vector<double> by_row(size_t(2 * K * P)), by_element(by_row.size());
  l.input = in.data();
  l.col = by_row.data();
  ops::cpu::deform_im2col<double>(l);
  l.col = by_element.data();
  const ops::detail::DeformIm2ColBody<double> im2col{l};
  for (int64_t i = 0; i < 2 * K * P; ++i) im2col(i);
  CHECK(by_row == by_element);
  double norm = 0;
  for (double v : plane) norm += v * v;
  CHECK(norm > 1.0);  // the offsets keep most samples on the map
}

TEST_CASE("deform_conv2d: bad shapes are refused naming the op and the shapes", "[ops][cpu][deform_conv][errors]") {
  const Tensor x = Tensor::zeros({1, 4, 5, 5}, DType::Float32);
  const Tensor w = Tensor::zeros({2, 4, 3, 3}, DType::Float32);
  const Tensor off = Tensor::zeros({1, 18, 3, 3}, DType::Float32);
  const Tensor m = Tensor::zeros({1, 9, 3, 3}, DType::Float32);
  CHECK_NOTHROW(ops::deform_conv2d(x, off, m, w));
  REQUIRE_THROWS_WITH(ops::deform_conv2d(x, Tensor::zeros({1, 18, 5, 5}, DType::Float32), m, w),
                      Contains("deform_conv2d: offset must have shape [N, 2 * offset_groups * kh * kw, Ho, Wo] = "
                               "[1, 18, 3, 3]") &&
                          Contains("got [1, 18, 5, 5]"));
  REQUIRE_THROWS_WITH(ops::deform_conv2d(x, off, Tensor::zeros({1, 18, 3, 3}, DType::Float32), w),
                      Contains("deform_conv2d: mask must have shape [N, offset_groups * kh * kw, Ho, Wo] = [1, 9, 3, 3]"));
  REQUIRE_THROWS_WITH(ops::deform_conv2d(x, off, m, w, Tensor(), {1, 1}, {0, 0}, {1, 1}, 1, 3),
                      Contains("deform_conv2d: offset_groups (3) must be >= 1 and divide the input channels"));
  REQUIRE_THROWS_WITH(ops::deform_conv2d(x, off, m, w, Tensor(), {1, 1}, {0, 0}, {1, 1}, 1, 2),
                      Contains("deform_conv2d: offset must have shape") && Contains("[1, 36, 3, 3]"));
  REQUIRE_THROWS_WITH(ops::deform_conv2d(x, off.to(DType::Float64), m, w),
                      Contains("deform_conv2d: offset has dtype float64 but input has float32"));
  REQUIRE_THROWS_WITH(ops::deform_conv2d(x, off, m, Tensor::zeros({2, 3, 3, 3}, DType::Float32)),
                      Contains("deform_conv2d: weight [2, 3, 3, 3] expects 3 input channels"));
  REQUIRE_THROWS_WITH(ops::deform_conv2d(x, off, m, w, Tensor::zeros({3}, DType::Float32)),
                      Contains("deform_conv2d: bias must have shape [2]"));
  REQUIRE_THROWS_WITH(ops::deform_conv2d_backward(Tensor::zeros({1, 2, 4, 4}, DType::Float32), x, off, m, w, {}),
                      Contains("deform_conv2d_backward: grad_out must have the output's shape [1, 2, 3, 3]"));
}

TEST_CASE("deform_conv2d: CPU results are the same bits for 1 and 2 threads", "[ops][cpu][deform_conv]") {
  const Tensor x = test::random_tensor(Shape{2, 16, 20, 24}, 11, DType::Float32);
  const Tensor off = test::random_tensor(Shape{2, 2 * 2 * 9, 20, 24}, 12, DType::Float32, -3.0, 3.0);
  const Tensor m = test::random_tensor(Shape{2, 2 * 9, 20, 24}, 13, DType::Float32, 0.0, 1.0);
  const Tensor w = test::random_tensor(Shape{32, 8, 3, 3}, 14, DType::Float32);
  const Tensor go = test::random_tensor(Shape{2, 32, 20, 24}, 15, DType::Float32);
  ops::DeformConv2dParams p;
  p.padding = {1, 1};
  p.groups = 2;
  p.offset_groups = 2;
  std::vector<Tensor> results[2];
  for (int t : {1, 2}) {
    set_cpu_threads(t);
    const ops::DeformConv2dGrads g = ops::deform_conv2d_backward(go, x, off, m, w, p);
    results[t - 1] = {ops::deform_conv2d(x, off, m, w, Tensor(), p), g.input, g.offset, g.mask, g.weight, g.bias};
  }
  set_cpu_threads(0);
  for (size_t i = 0; i < results[0].size(); ++i) {
    INFO("result " << i);
    CHECK(test::bitwise_equal(results[0][i], results[1][i]));
  }
}
