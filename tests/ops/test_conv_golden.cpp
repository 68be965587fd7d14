// conv2d against PyTorch 1.13 (tests/data/conv/conv2d.safetensors, written by
// tools/golden_conv.py): forward and the three gradients for 10 stride / padding / dilation /
// groups / kernel combinations, in float64 and float32. Each comparison prints its max errors.
#include <catch2/catch.hpp>

#include <sstream>
#include <string>
#include <vector>

#include <fmt/core.h>

#include "common/golden.h"
#include "drcnn/autograd/conv.h"
#include "drcnn/ops/conv.h"

using namespace drcnn;

TEST_CASE("golden/torch: conv2d forward and gradients match torch.nn.functional.conv2d", "[golden][ops][cpu][conv]") {
  const auto g = test::load_golden("conv/conv2d");
  std::vector<std::string> cases;
  std::stringstream ss(g.meta("cases"));
  for (std::string c; std::getline(ss, c, ',');) cases.push_back(c);
  REQUIRE(cases.size() == 10);
  for (const auto& c : cases) {
    INFO("case " << c);
    const std::vector<int64_t> p = g[c + ".params"].to_vector<int64_t>();
    ops::Conv2dParams cp;
    cp.stride = {p[0], p[1]};
    cp.padding = {p[2], p[3]};
    cp.dilation = {p[4], p[5]};
    cp.groups = p[6];
    const bool has_bias = p[7] != 0;
    for (DType dt : {DType::Float64, DType::Float32}) {
      const bool f64 = dt == DType::Float64;
      // float64: the same products summed in another order (GEMM blocking vs oneDNN/native):
      // ~1e-15 relative; 1e-12 is 1000x that and far below a wrong tap (O(0.1)).
      // float32: inputs ~N(0,1), weights ~0.3 N(0,1), sums of <= 150 products: 1e-5 absolute
      // and relative cover the f32 rounding of the inputs and of the sums.
      const double tol = f64 ? 1e-12 : 1e-5;
      const std::string tag = fmt::format("conv2d {} {}", c, f64 ? "f64" : "f32");
      Variable x(g[c + ".input"].to(dt), true), w(g[c + ".weight"].to(dt), true);
      Variable b = has_bias ? Variable(g[c + ".bias"].to(dt), true) : Variable();
      Variable y = conv2d(x, w, b, cp);
      y.backward(g[c + ".grad_output"].to(dt));
      test::expect_golden_close(tag + " output", y.data(), g[c + ".output"], tol, tol);
      test::expect_golden_close(tag + " grad_input", x.grad(), g[c + ".grad_input"], tol, tol);
      test::expect_golden_close(tag + " grad_weight", w.grad(), g[c + ".grad_weight"], tol, tol);
      if (has_bias) test::expect_golden_close(tag + " grad_bias", b.grad(), g[c + ".grad_bias"], tol, tol);
    }
  }
}
