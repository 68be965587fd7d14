// Losses (include/drcnn/ops/losses.h): hand-computed values, edge cases, float64 references
// (tests/reference/loss_reference.h) and errors.
// Tolerances: float64 vs reference 1e-12 relative (a few roundings apart); float32 vs the
// float64 reference 1e-5 relative + 1e-6 absolute.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <numeric>

#include "common/allclose.h"
#include "common/random.h"
#include "drcnn/core/parallel_cpu.h"
#include "drcnn/ops/losses.h"
#include "reference/loss_reference.h"

using namespace drcnn;
using Catch::Contains;
using ops::LossReduce;
using ops::Reduction;

namespace {
Tensor vec(const std::vector<double>& v) { return Tensor::from_vector<double>(v); }
const LossReduce kNone{Reduction::None, {}};
const LossReduce kSum{Reduction::Sum, {}};
const LossReduce kMean{Reduction::Mean, {}};
}  // namespace

TEST_CASE("ops/smooth_l1: hand-computed values and the beta edge cases", "[ops][cpu]") {
  const Tensor p = vec({0.0, 0.5, -1.0, 3.0, 2.0}), t = vec({0.0, 0.0, 0.0, 1.0, 1.0});
  // d = 0, 0.5, -1, 2, 1 with beta = 1: 0, 0.125, |d| = beta -> 1 - 0.5 = 0.5, 1.5, 0.5
  test::expect_allclose(ops::smooth_l1_loss(p, t, 1.0, kNone), {0.0, 0.125, 0.5, 1.5, 0.5}, 0, 1e-15);
  CHECK(ops::smooth_l1_loss(p, t, 1.0, kSum).item<double>() == Approx(2.625).epsilon(1e-15));
  CHECK(ops::smooth_l1_loss(p, t, 1.0, kMean).item<double>() == Approx(2.625 / 5).epsilon(1e-15));
  CHECK(ops::smooth_l1_loss(p, t, 1.0, {Reduction::Mean, 2.0}).item<double>() == Approx(2.625 / 2).epsilon(1e-15));
  // beta = 0 and beta = 1e-6 are exact L1, no NaN or Inf.
  test::expect_allclose(ops::smooth_l1_loss(p, t, 0.0, kNone), {0.0, 0.5, 1.0, 2.0, 1.0}, 0, 0);
  test::expect_allclose(ops::smooth_l1_loss(p, t, 1e-6, kNone), {0.0, 0.5, 1.0, 2.0, 1.0}, 0, 0);
  // beta = 1/9 (the RPN's): |d| = 0.05 inside, 0.5 outside.
  test::expect_allclose(ops::smooth_l1_loss(vec({0.05, 0.5}), vec({0.0, 0.0}), 1.0 / 9, kNone),
                        {0.5 * 0.05 * 0.05 * 9, 0.5 - 0.5 / 9}, 1e-14, 0);
  // |d| == beta exactly takes the linear branch (strict < in the zone test), value 0.5 beta.
  const auto fused = ops::smooth_l1_loss_fused(vec({0.25}), vec({0.0}), 0.25, true);
  CHECK(fused.loss.item<double>() == 0.125);
  CHECK(fused.grad.item<double>() == 1.0);
}

TEST_CASE("ops/smooth_l1: fused gradient", "[ops][cpu]") {
  const auto f = ops::smooth_l1_loss_fused(vec({0.5, -3.0, 0.0, 2.0}), vec({0.0, 0.0, 0.0, 0.0}), 1.0, true);
  test::expect_allclose(f.grad, {0.5, -1.0, 0.0, 1.0}, 0, 0);
  const auto g = ops::smooth_l1_loss_fused(vec({0.5, -3.0, 0.0}), vec({0.0, 0.0, 0.0}), 0.0, true);
  test::expect_allclose(g.grad, {1.0, -1.0, 0.0}, 0, 0);
}

TEST_CASE("ops/l1: values, reductions and gradient", "[ops][cpu]") {
  const auto f = ops::l1_loss_fused(vec({1.0, -2.0, 3.0}), vec({0.5, 0.0, 3.0}), true);
  test::expect_allclose(f.loss, {0.5, 2.0, 0.0}, 0, 0);
  test::expect_allclose(f.grad, {1.0, -1.0, 0.0}, 0, 0);
  CHECK(ops::l1_loss(vec({1.0, -2.0, 3.0}), vec({0.5, 0.0, 3.0}), kSum).item<double>() == 2.5);
}

TEST_CASE("ops/bce_with_logits: values and large logits without overflow", "[ops][cpu]") {
  const auto f = ops::binary_cross_entropy_with_logits_fused(vec({0.0, 1e4, -1e4, 1e4, -1e4}),
                                                             vec({1.0, 1.0, 0.0, 0.0, 1.0}), true);
  test::expect_allclose(f.loss, {std::log(2.0), 0.0, 0.0, 1e4, 1e4}, 1e-15, 0);
  test::expect_allclose(f.grad, {-0.5, 0.0, 0.0, 1.0, -1.0}, 0, 0);
  // float32 too: exp never sees a positive argument.
  const Tensor x = Tensor::from_vector<float>({1e4f, -1e4f, 88.0f, -200.0f});
  const Tensor y = Tensor::from_vector<float>({0.0f, 1.0f, 1.0f, 0.0f});
  const auto v = ops::binary_cross_entropy_with_logits(x, y, kNone).to_vector<float>();
  for (float e : v) CHECK(std::isfinite(e));
  CHECK(v[0] == 1e4f);
  CHECK(v[1] == 1e4f);
}

TEST_CASE("ops/cross_entropy: hand-computed values, large logits and weights", "[ops][cpu]") {
  // Row 0: uniform over 3 classes -> log 3. Row 1: logits 1e4 apart -> 0 for the max label, 1e4 otherwise.
  const Tensor x = Tensor::from_vector<double>({0, 0, 0, 1e4, 0, 0, 0, 1e4, 0}, Shape{3, 3});
  const Tensor y = Tensor::from_vector<int64_t>({2, 0, 0});
  const auto f = ops::cross_entropy_fused(x, y, Tensor(), -100, true);
  test::expect_allclose(f.loss, {std::log(3.0), 0.0, 1e4}, 1e-15, 0);
  test::expect_allclose(f.grad, {1.0 / 3, 1.0 / 3, -2.0 / 3, 0, 0, 0, -1, 1, 0}, 1e-15, 1e-300);
  const Tensor w = vec({2.0, 1.0, 0.5});
  test::expect_allclose(ops::cross_entropy(x, y, w, kNone), {2 * std::log(3.0), 0.0, 5e3}, 1e-15, 0);
  CHECK(ops::cross_entropy(x, y, w, {Reduction::Mean, 4.0}).item<double>() ==
        Approx((2 * std::log(3.0) + 5e3) / 4).epsilon(1e-14));
  const Tensor xf = x.to(DType::Float32);
  const auto lf = ops::cross_entropy(xf, y, Tensor(), kNone).to_vector<float>();
  CHECK(lf[1] == 0.0f);
  CHECK(lf[2] == 1e4f);
}

TEST_CASE("ops/cross_entropy: ignore_index rows contribute nothing and leave the mean", "[ops][cpu]") {
  const Tensor x = Tensor::from_vector<double>({0, 0, 5, -5, 1, 2}, Shape{3, 2});
  const Tensor y = Tensor::from_vector<int64_t>({0, -100, 1});
  const auto f = ops::cross_entropy_fused(x, y, Tensor(), -100, true);
  const double l0 = std::log(2.0), l2 = std::log(std::exp(1.0) + std::exp(2.0)) - 2.0;
  test::expect_allclose(f.loss, {l0, 0.0, l2}, 1e-14, 0);
  test::expect_allclose(f.grad.to_vector<double>(), std::vector<double>{-0.5, 0.5, 0, 0, f.grad.to_vector<double>()[4],
                                                                        f.grad.to_vector<double>()[5]},
                        0, 0);
  CHECK(f.grad.to_vector<double>()[2] == 0.0);
  CHECK(ops::cross_entropy(x, y, Tensor(), kMean).item<double>() == Approx((l0 + l2) / 2).epsilon(1e-15));
  // A custom ignore_index; all rows ignored gives a mean of 0, not NaN.
  const Tensor all_ignored = Tensor::from_vector<int64_t>({7, 7, 7});
  CHECK(ops::cross_entropy(x, all_ignored, Tensor(), kMean, 7).item<double>() == 0.0);
}

TEST_CASE("ops/losses: float64 and float32 against the float64 references", "[ops][cpu]") {
  const int64_t n = 1000;
  const auto p = test::random_values(n, 11, -3, 3), t = test::random_values(n, 12, -3, 3);
  const auto xl = test::random_values(n, 13, -8, 8), yl = test::random_values(n, 14, 0, 1);
  for (DType dt : {DType::Float64, DType::Float32}) {
    const double rtol = dt == DType::Float64 ? 1e-12 : 1e-5, atol = dt == DType::Float64 ? 1e-14 : 1e-6;
    INFO("dtype " << (dt == DType::Float64 ? "float64" : "float32"));
    const Tensor P = vec(p).to(dt), T = vec(t).to(dt), X = vec(xl).to(dt), Y = vec(yl).to(dt);
    for (double beta : {1.0, 1.0 / 9, 0.0}) {
      // float32 references use the float32-rounded inputs.
      const auto pr = P.to_vector<double>(), tr = T.to_vector<double>();
      test::expect_allclose(ops::smooth_l1_loss(P, T, beta, kNone), ref::smooth_l1(pr, tr, beta), rtol, atol);
    }
    test::expect_allclose(ops::l1_loss(P, T, kNone), ref::l1(P.to_vector<double>(), T.to_vector<double>()), rtol, atol);
    test::expect_allclose(ops::binary_cross_entropy_with_logits(X, Y, kNone),
                          ref::bce_with_logits(X.to_vector<double>(), Y.to_vector<double>()), dt == DType::Float64 ? 1e-9 : 1e-5,
                          atol);
    const int64_t N = 100, C = 10;
    const Tensor L = X.reshape({N, C});
    auto labels = test::random_ints(N, 15, 0, C - 1);
    labels[3] = -100;
    const auto w = test::random_values(N, 16, 0.5, 2);
    test::expect_allclose(ops::cross_entropy(L, Tensor::from_vector<int64_t>(labels), vec(w).to(dt), kNone),
                          ref::cross_entropy(X.to_vector<double>(), labels, C, vec(w).to(dt).to_vector<double>()),
                          dt == DType::Float64 ? 1e-12 : 1e-5, atol);
  }
}

TEST_CASE("ops/losses: non-contiguous inputs", "[ops][cpu]") {
  const Tensor p = test::random_tensor<double>(Shape{4, 6}, 21), t = test::random_tensor<double>(Shape{6, 4}, 22);
  const Tensor pt = p.transpose(0, 1);
  test::expect_allclose(ops::smooth_l1_loss(pt, t, 0.5, kNone), ops::smooth_l1_loss(pt.contiguous(), t, 0.5, kNone), 0, 0);
  const Tensor y = Tensor::from_vector<int64_t>({0, 1, 2, 3, 0, 1});
  test::expect_allclose(ops::cross_entropy(pt, y, Tensor(), kNone), ops::cross_entropy(pt.contiguous(), y, Tensor(), kNone),
                        0, 0);
}

TEST_CASE("ops/losses: errors name the op and the offender", "[ops][cpu]") {
  const Tensor a = Tensor::zeros({3}, DType::Float64), b = Tensor::zeros({4}, DType::Float64);
  REQUIRE_THROWS_WITH(ops::smooth_l1_loss(a, b), Contains("smooth_l1_loss: input shape"));
  // Where: the file from the project's src/ folder on, however the build named it.
  REQUIRE_THROWS_WITH(ops::smooth_l1_loss(a, b), Contains("[at src/ops/losses.cpp:"));
  REQUIRE_THROWS_WITH(ops::l1_loss(a, b), Contains("l1_loss: input shape"));
  REQUIRE_THROWS_WITH(ops::binary_cross_entropy_with_logits(a, b), Contains("binary_cross_entropy_with_logits"));
  REQUIRE_THROWS_WITH(ops::smooth_l1_loss(a, a, -1.0), Contains("smooth_l1_loss: beta must be finite and >= 0"));
  REQUIRE_THROWS_WITH(ops::smooth_l1_loss(a, a, std::nan("")), Contains("beta"));
  REQUIRE_THROWS(ops::smooth_l1_loss(a, Tensor::zeros({3}, DType::Float32)));
  const Tensor ai = Tensor::zeros({3}, DType::Int64);
  REQUIRE_THROWS_WITH(ops::l1_loss(ai, ai), Contains("l1_loss: input must be float32 or float64"));
  REQUIRE_THROWS_WITH(ops::smooth_l1_loss(a, a, 1.0, {Reduction::Sum, 2.0}), Contains("avg_factor"));
  REQUIRE_THROWS_WITH(ops::smooth_l1_loss(a, a, 1.0, {Reduction::Mean, 0.0}), Contains("avg_factor"));

  const Tensor x = Tensor::zeros({2, 3}, DType::Float64);
  REQUIRE_THROWS_WITH(ops::cross_entropy(x, Tensor::from_vector<int64_t>({0, 3})),
                      Contains("cross_entropy: label 3 at row 1 is out of range"));
  REQUIRE_THROWS_WITH(ops::cross_entropy(x, Tensor::from_vector<int64_t>({-1, 0})),
                      Contains("cross_entropy: label -1 at row 0"));
  REQUIRE_THROWS_WITH(ops::cross_entropy(x, Tensor::from_vector<int32_t>({0, 1})),
                      Contains("cross_entropy: labels must be int64"));
  REQUIRE_THROWS_WITH(ops::cross_entropy(x, Tensor::from_vector<int64_t>({0, 1, 2})),
                      Contains("cross_entropy: labels must be [2]"));
  REQUIRE_THROWS_WITH(ops::cross_entropy(Tensor::zeros({6}, DType::Float64), Tensor::from_vector<int64_t>({0})),
                      Contains("cross_entropy: logits must be [N, C]"));
  REQUIRE_THROWS_WITH(ops::cross_entropy(x, Tensor::from_vector<int64_t>({0, 1}), Tensor::zeros({2}, DType::Float32)),
                      Contains("cross_entropy: weight dtype"));
  REQUIRE_THROWS_WITH(ops::cross_entropy(x, Tensor::from_vector<int64_t>({0, 1}), Tensor::zeros({3}, DType::Float64)),
                      Contains("cross_entropy: weight must be [2]"));
  REQUIRE_THROWS_WITH(ops::cross_entropy(x.to(DType::Int64), Tensor::from_vector<int64_t>({0, 1})),
                      Contains("cross_entropy: logits must be float32 or float64"));
}

TEST_CASE("ops/losses: empty inputs", "[ops][cpu]") {
  const Tensor e = Tensor::zeros({0}, DType::Float32);
  CHECK(ops::smooth_l1_loss(e, e, 1.0, kNone).numel() == 0);
  CHECK(ops::smooth_l1_loss(e, e, 1.0, kSum).item<float>() == 0.0f);
  CHECK(ops::l1_loss(e, e, kMean).item<float>() == 0.0f);
  CHECK(ops::cross_entropy(Tensor::zeros({0, 3}), Tensor::zeros({0}, DType::Int64), Tensor(), kMean).item<float>() == 0.0f);
}

namespace {
struct LossThreads {  // restores the default thread count
  explicit LossThreads(int n) { drcnn::set_cpu_threads(n); }
  ~LossThreads() { drcnn::set_cpu_threads(0); }
  LossThreads(const LossThreads&) = delete;
  LossThreads& operator=(const LossThreads&) = delete;
};
double ref_sum(const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0); }
}  // namespace

// The CPU launchers sum the losses in fixed chunks (4096 elements / 32 rows) and run in parallel
// from 32768 elements: 1024 x 81 crosses both. Sum/Mean are compared with the float64 sum of the
// reference losses: float32 losses carry a relative rounding of 2^-24 each and are summed in
// double, so 1e-6 relative bounds it (float64: 1e-12, a few roundings of each term).
TEST_CASE("ops/losses: large reductions match the reference and do not depend on the thread count",
          "[ops][cpu]") {
  const int64_t N = 1024, C = 81, n = N * C;
  const auto p = test::random_values(n, 31, -2, 2), t = test::random_values(n, 32, -2, 2);
  const auto x = test::random_values(n, 33, -6, 6);
  auto labels = test::random_ints(N, 34, 0, C - 1);
  for (int64_t i = 0; i < N; i += 37) labels[size_t(i)] = -100;
  const Tensor Y = Tensor::from_vector<int64_t>(labels);
  for (DType dt : {DType::Float64, DType::Float32}) {
    INFO("dtype " << (dt == DType::Float64 ? "float64" : "float32"));
    const double rtol = dt == DType::Float64 ? 1e-12 : 1e-6;
    const Tensor P = vec(p).to(dt).reshape({N, C}), T = vec(t).to(dt).reshape({N, C});
    const Tensor X = vec(x).to(dt).reshape({N, C});
    const auto pr = P.reshape({n}).to_vector<double>(), tr = T.reshape({n}).to_vector<double>();
    const auto xr = X.reshape({n}).to_vector<double>();
    const std::vector<double> ones(size_t(N), 1.0);
    int64_t kept = 0;
    for (int64_t y : labels) kept += y != -100;
    for (double beta : {1.0, 0.1}) {
      const double s = ref_sum(ref::smooth_l1(pr, tr, beta));
      CHECK(ops::smooth_l1_loss(P, T, beta, kSum).item<double>() == Approx(s).epsilon(rtol));
      CHECK(ops::smooth_l1_loss(P, T, beta, kMean).item<double>() == Approx(s / double(n)).epsilon(rtol));
      CHECK(ops::smooth_l1_loss(P, T, beta, {Reduction::Mean, 512.0}).item<double>() ==
            Approx(s / 512).epsilon(rtol));
    }
    const double ce = ref_sum(ref::cross_entropy(xr, labels, C, ones));
    CHECK(ops::cross_entropy(X, Y, Tensor(), kSum).item<double>() == Approx(ce).epsilon(rtol));
    CHECK(ops::cross_entropy(X, Y, Tensor(), kMean).item<double>() == Approx(ce / double(kept)).epsilon(rtol));

    // Bitwise equal results for 1, 2 and 3 threads (3: chunks that do not split evenly).
    std::vector<std::vector<double>> runs;
    for (int threads : {1, 2, 3}) {
      LossThreads guard(threads);
      std::vector<double> r;
      const auto f = ops::smooth_l1_loss_fused(P, T, 1.0, true);
      for (const Tensor& v : {f.loss, f.grad}) {
        const auto vv = v.reshape({v.numel()}).to_vector<double>();
        r.insert(r.end(), vv.begin(), vv.end());
      }
      r.push_back(ops::smooth_l1_loss(P, T, 1.0, kMean).item<double>());
      r.push_back(ops::l1_loss(P, T, kSum).item<double>());
      r.push_back(ops::binary_cross_entropy_with_logits(X, T, kMean).item<double>());
      const auto g = ops::cross_entropy_fused(X, Y, Tensor(), -100, true);
      for (const Tensor& v : {g.loss, g.grad}) {
        const auto vv = v.reshape({v.numel()}).to_vector<double>();
        r.insert(r.end(), vv.begin(), vv.end());
      }
      r.push_back(ops::cross_entropy(X, Y, Tensor(), kMean).item<double>());
      runs.push_back(std::move(r));
    }
    CHECK(runs[0] == runs[1]);
    CHECK(runs[0] == runs[2]);
  }
}

// The fused row body writes the same loss with and without the gradient (same exp lanes).
TEST_CASE("ops/cross_entropy: the loss is the same with and without the fused gradient", "[ops][cpu]") {
  for (int64_t C : {1, 3, 16, 81, 100}) {
    const int64_t N = 7;
    const Tensor X = Tensor::from_vector<float>([&] {
      std::vector<float> v;
      for (double d : test::random_values(N * C, 41 + uint64_t(C), -9, 9)) v.push_back(float(d));
      return v;
    }(), Shape{N, C});
    const Tensor Y = Tensor::from_vector<int64_t>(test::random_ints(N, 42, 0, C - 1));
    const auto with = ops::cross_entropy_fused(X, Y, Tensor(), -100, true);
    const auto without = ops::cross_entropy_fused(X, Y, Tensor(), -100, false);
    CHECK(with.loss.to_vector<float>() == without.loss.to_vector<float>());
    // Each gradient row sums to 0 (softmax sums to 1): float32 rounding of C terms.
    const auto g = with.grad.to_vector<float>();
    for (int64_t r = 0; r < N; ++r) {
      double s = 0;
      for (int64_t c = 0; c < C; ++c) s += g[size_t(r * C + c)];
      CHECK(std::abs(s) < 1e-6 * double(C));
    }
  }
}
