// The autograd engine: leaves, accumulation, grad mode, detach, graph lifetime, deep graphs
// and error messages. Values are small integers or dyadic fractions, so every expected
// gradient is exact in floating point and compared with expect_equal.
#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <stdexcept>
#include <thread>

#include "common/allclose.h"
#include "drcnn/autograd/functions.h"
#include "drcnn/ops/elementwise.h"

using namespace drcnn;
using Catch::Matchers::Contains;

namespace {
Variable vec(const std::vector<double>& v, bool requires_grad = true) {
  return Variable(Tensor::from_vector<double>(v), requires_grad);
}
}  // namespace

TEST_CASE("autograd/leaf: a new variable is a leaf without gradient", "[autograd][cpu]") {
  Variable x = vec({1, 2});
  CHECK(x.defined());
  CHECK(x.is_leaf());
  CHECK(x.requires_grad());
  CHECK_FALSE(x.has_grad());
  CHECK(x.grad_fn_name() == "leaf");
  CHECK_FALSE(Variable(Tensor::zeros({2})).requires_grad());
  CHECK_FALSE(Variable().defined());
  SECTION("backward on a scalar leaf seeds its own gradient with 1") {
    Variable s = vec({4});
    s.backward();
    test::expect_equal(s.grad(), {1});
  }
}

TEST_CASE("autograd/engine: leaves accumulate across backward calls, zero_grad resets", "[autograd][cpu]") {
  Variable x = vec({1, -2, 3});
  sum(x * x).backward();
  test::expect_equal(x.grad(), {2, -4, 6});
  const Tensor first = x.grad();
  sum(x * x).backward();
  test::expect_equal(x.grad(), {4, -8, 12});
  test::expect_equal(first, {2, -4, 6});  // accumulation is out of place: an old handle is unchanged
  x.zero_grad();
  CHECK_FALSE(x.has_grad());
  sum(x * 3.0).backward();
  test::expect_equal(x.grad(), {3, 3, 3});
}

TEST_CASE("autograd/engine: the leaf hook sees each reached leaf once, with its final gradient", "[autograd][cpu]") {
  // a feeds two products (its gradient is complete only after both ran); d is not in the graph.
  Variable a = vec({1, 2}), b = vec({3, -1}), c = vec({0.5, 4}), d = vec({7, 7});
  std::vector<std::pair<const void*, std::vector<double>>> seen;
  sum(a * b + a * c * 2.0).backward([&](const Variable& leaf) {
    seen.emplace_back(leaf.id(), leaf.has_grad() ? leaf.grad().to_vector<double>() : std::vector<double>{});
  });
  REQUIRE(seen.size() == 3);
  std::map<const void*, std::vector<double>> by_id(seen.begin(), seen.end());
  REQUIRE(by_id.size() == 3);
  CHECK(by_id.count(d.id()) == 0);
  // By hand: d/da = b + 2c = (4, 7), d/db = a = (1, 2), d/dc = 2a = (2, 4); the same as after backward.
  CHECK(by_id[a.id()] == std::vector<double>{4, 7});
  CHECK(by_id[b.id()] == std::vector<double>{1, 2});
  CHECK(by_id[c.id()] == std::vector<double>{2, 4});
  test::expect_equal(a.grad(), {4, 7});
}

TEST_CASE("autograd/engine: explicit seed gradient for a non-scalar root", "[autograd][cpu]") {
  Variable x = vec({1, 2, 3});
  Variable y = x * 3.0;
  y.backward(Tensor::from_vector<double>({1, 10, 100}));
  test::expect_equal(x.grad(), {3, 30, 300});
}

TEST_CASE("autograd/engine: only inputs requiring grad get a gradient", "[autograd][cpu]") {
  Variable x = vec({1, 2});
  Variable c = vec({5, 7}, false);
  Variable y = x * c;
  CHECK(y.requires_grad());
  CHECK_FALSE(y.is_leaf());
  CHECK(y.grad_fn_name() == "mul");
  sum(y).backward();
  test::expect_equal(x.grad(), {5, 7});
  CHECK_FALSE(c.has_grad());
  CHECK_FALSE(y.has_grad());  // inner gradients are released after use

  Variable z = c * c;  // no input requires grad: a constant, not recorded
  CHECK_FALSE(z.requires_grad());
  CHECK(z.is_leaf());
  CHECK(z.grad_fn_name() == "leaf");
}

TEST_CASE("autograd/engine: NoGradGuard records nothing and nests", "[autograd][cpu]") {
  Variable x = vec({1, 2});
  REQUIRE(grad_mode_enabled());
  {
    NoGradGuard outer;
    CHECK_FALSE(grad_mode_enabled());
    Variable y = x * x;
    CHECK_FALSE(y.requires_grad());
    CHECK(y.is_leaf());
    test::expect_equal(y.data(), {1, 4});  // the forward still runs
    {
      NoGradGuard inner;
      CHECK_FALSE(grad_mode_enabled());
    }
    CHECK_FALSE(grad_mode_enabled());  // leaving the inner guard restores "off", not "on"
    CHECK_FALSE((x + x).requires_grad());
  }
  CHECK(grad_mode_enabled());
  CHECK((x + x).requires_grad());
  SECTION("the flag is per thread") {
    NoGradGuard here;
    bool other_thread_enabled = false;
    std::thread t([&] { other_thread_enabled = grad_mode_enabled(); });
    t.join();
    CHECK(other_thread_enabled);
    CHECK_FALSE(grad_mode_enabled());
  }
}

TEST_CASE("autograd/engine: detach gives a leaf that shares data and cuts the graph", "[autograd][cpu]") {
  Variable x = vec({1, 2, 3});
  Variable y = x * 2.0;
  Variable d = y.detach();
  CHECK(d.is_leaf());
  CHECK_FALSE(d.requires_grad());
  CHECK(d.data().data_ptr() == y.data().data_ptr());
  sum(d * x).backward();  // d is a constant: dL/dx = d
  test::expect_equal(x.grad(), {2, 4, 6});
}

TEST_CASE("autograd/engine: set_requires_grad changes leaves only", "[autograd][cpu]") {
  Variable x = vec({1, 2}, false);
  CHECK_FALSE((x * x).requires_grad());
  x.set_requires_grad(true);
  Variable y = x * x;
  CHECK(y.requires_grad());
  CHECK_THROWS_WITH(y.set_requires_grad(false), Contains("only leaves") && Contains("'mul'") && Contains("detach"));
  x.set_requires_grad(false);
  CHECK_FALSE((x * x).requires_grad());
  Variable idx(Tensor::from_vector<int64_t>({1, 2}));
  CHECK_THROWS_WITH(idx.set_requires_grad(true), Contains("floating-point") && Contains("int64"));
}

TEST_CASE("autograd/engine: retain_graph allows a second backward, without it the graph is freed",
          "[autograd][cpu]") {
  Variable x = vec({1, 2});
  Variable y = x * x;
  Variable loss = sum(y * 2.0);
  loss.backward(/*retain_graph=*/true);
  test::expect_equal(x.grad(), {4, 8});
  loss.backward();  // graph retained by the first call; this one frees it
  test::expect_equal(x.grad(), {8, 16});
  CHECK_THROWS_WITH(loss.backward(), Contains("backward through a graph that was already freed") &&
                                         Contains("retain_graph=true"));
  test::expect_equal(x.grad(), {8, 16});  // the failed call accumulated nothing
  SECTION("a new branch from a freed intermediate fails the same way") {
    CHECK_THROWS_WITH(sum(y).backward(), Contains("already freed"));
  }
  SECTION("a fresh graph over the same leaf works") {
    sum(x).backward();
    test::expect_equal(x.grad(), {9, 17});
  }
}

TEST_CASE("autograd/engine: a variable used several times gets the summed gradient", "[autograd][cpu]") {
  SECTION("x * x") {
    Variable x = vec({3});
    sum(x * x).backward();
    test::expect_equal(x.grad(), {6});
  }
  SECTION("diamond: y = 2x; z = y * y + y") {
    Variable x = vec({1, -2});
    Variable y = x * 2.0;
    sum(y * y + y).backward();  // dz/dx = (2y + 1) * 2 = 8x + 2
    test::expect_equal(x.grad(), {10, -14});
  }
  SECTION("diamond through distinct functions: a = exp(x); b = a + a; c = b * a") {
    Variable x = vec({0.0});
    Variable a = exp(x);
    sum((a + a) * a).backward();  // c = 2 e^{2x}: dc/dx = 4 e^{2x} = 4 at 0
    test::expect_equal(x.grad(), {4});
  }
  SECTION("one leaf reaching the root along paths of different lengths") {
    Variable x = vec({2});
    Variable p = x;
    for (int i = 0; i < 5; ++i) p = p + x;  // p = 6x through a chain; each step adds a short edge
    sum(p * x).backward();                   // d(6x^2)/dx = 12x
    test::expect_equal(x.grad(), {24});
  }
}

TEST_CASE("autograd/engine: a 10000-op chain runs backward without recursion", "[autograd][cpu]") {
  Variable x = vec({1.0, -1.0});
  Variable y = x;
  constexpr int kDepth = 10000;
  for (int i = 0; i < kDepth; ++i) y = y + 0.5;  // gradient 1 through every step
  y = y * 2.0;
  sum(y).backward();
  test::expect_equal(x.grad(), {2, 2});
  test::expect_equal(y.data(), {2 * (1.0 + 0.5 * kDepth), 2 * (-1.0 + 0.5 * kDepth)});
}

TEST_CASE("autograd/engine: dropping a 100000-op graph without backward does not overflow the stack",
          "[autograd][cpu]") {
  // Each node owns its inputs; a naive recursive release would go 100000 destructors deep.
  Variable x = vec({1.0});
  {
    Variable y = x;
    for (int i = 0; i < 100000; ++i) y = y * 1.0;
    CHECK(y.requires_grad());
  }  // released here
  Variable y = x;
  for (int i = 0; i < 20000; ++i) y = y + 1.0;
  sum(y).backward(/*retain_graph=*/true);  // retained graph, then dropped
  test::expect_equal(x.grad(), {1});
}

TEST_CASE("autograd/engine: errors name the op, what arrived and what was expected", "[autograd][cpu]") {
  Variable x = vec({1, 2, 3});
  SECTION("backward on a non-scalar without a gradient") {
    CHECK_THROWS_WITH((x * 2.0).backward(), Contains("shape [3]") && Contains("exactly 1 element"));
  }
  SECTION("backward with a mis-shaped seed") {
    CHECK_THROWS_WITH((x * 2.0).backward(Tensor::ones({2}, DType::Float64)),
                      Contains("seed gradient [2]") && Contains("[3] float64"));
  }
  SECTION("backward on a variable that does not require grad") {
    CHECK_THROWS_WITH(sum(vec({1}, false)).backward(), Contains("does not require grad"));
  }
  SECTION("add_grad with the wrong shape or dtype") {
    CHECK_THROWS_WITH(x.add_grad(Tensor::ones({2}, DType::Float64)),
                      Contains("add_grad") && Contains("shape [2]") && Contains("shape [3]"));
    CHECK_THROWS_WITH(x.add_grad(Tensor::ones({3}, DType::Float32)),
                      Contains("dtype float32") && Contains("dtype float64"));
  }
  SECTION("an undefined argument") {
    CHECK_THROWS_WITH(add(x, Variable()), Contains("add") && Contains("'b'") && Contains("undefined"));
    CHECK_THROWS_WITH(Variable().data(), Contains("undefined"));
  }
  SECTION("shape errors come from the Tensor op") {
    CHECK_THROWS_AS(matmul(x, x), Error);
  }
}

TEST_CASE("autograd/engine: a custom function made with Variable::make", "[autograd][cpu]") {
  // cube(x) = x^3 with a hand-written backward 3x^2.
  auto cube = [](const Variable& v) {
    const Tensor xd = v.data();
    return Variable::make(
        ops::mul(ops::mul(xd, xd), xd), {v},
        [xd](std::vector<Variable>& in, const Tensor& g) { in[0].add_grad(ops::mul(ops::mul(ops::mul(xd, xd), 3.0), g)); },
        "cube");
  };
  Variable x = vec({1, 2});
  Variable y = cube(x);
  CHECK(y.grad_fn_name() == "cube");
  sum(y).backward();
  test::expect_equal(x.grad(), {3, 12});

  SECTION("an exception in a backward leaves no stale inner gradient behind") {
    Variable z = Variable::make(
        x.data(), {x}, [](std::vector<Variable>&, const Tensor&) { throw Error("boom"); }, "failing");
    Variable w = z * 2.0;
    CHECK_THROWS_WITH(sum(w).backward(/*retain_graph=*/true), Contains("boom"));
    CHECK_FALSE(w.has_grad());
    CHECK_FALSE(z.has_grad());
  }
}
