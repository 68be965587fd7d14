// SGD against torch.optim.SGD's update rule, computed by hand in float64.
#include <catch2/catch.hpp>

#include "drcnn/train/sgd.h"

using namespace drcnn;

namespace {
void set_grad(Variable& p, const std::vector<double>& g) {
  p.zero_grad();
  p.add_grad(Tensor::from_vector(g, Shape{int64_t(g.size())}));
}
}  // namespace

TEST_CASE("Sgd: momentum, weight decay and nesterov follow torch.optim.SGD over three steps", "[train][sgd]") {
  for (const bool nesterov : {false, true}) {
    Variable p(Tensor::from_vector(std::vector<double>{1.0, -2.0}), true);
    Variable skipped(Tensor::from_vector(std::vector<double>{5.0}), true);  // never gets a gradient
    train::SgdOptions o;
    o.lr = 0.1;
    o.momentum = 0.9;
    o.weight_decay = 0.01;
    o.nesterov = nesterov;
    train::Sgd sgd({p, skipped}, o);
    const std::vector<std::vector<double>> grads{{0.5, -1.0}, {0.25, 0.75}, {-0.5, 0.125}};
    double ref[2] = {1.0, -2.0}, buf[2] = {0, 0};
    for (size_t step = 0; step < grads.size(); ++step) {
      set_grad(p, grads[step]);
      sgd.step();
      for (int k = 0; k < 2; ++k) {
        double d = grads[step][size_t(k)] + 0.01 * ref[k];
        buf[k] = step == 0 ? d : 0.9 * buf[k] + d;
        d = nesterov ? d + 0.9 * buf[k] : buf[k];
        ref[k] -= 0.1 * d;
      }
      const std::vector<double> got = p.data().to_vector<double>();
      CHECK(got[0] == Approx(ref[0]).epsilon(1e-15));
      CHECK(got[1] == Approx(ref[1]).epsilon(1e-15));
    }
    CHECK(skipped.data().item<double>() == 5.0);
    CHECK_FALSE(sgd.momentum_buffers()[1].defined());
    CHECK(sgd.momentum_buffers()[0].to_vector<double>()[0] == Approx(buf[0]).epsilon(1e-15));
  }
}

TEST_CASE("Sgd: restored momentum buffers continue the same trajectory", "[train][sgd]") {
  const auto run = [](train::Sgd& sgd, Variable& p, double g) {
    set_grad(p, {g, -g});
    sgd.step();
  };
  train::SgdOptions o;
  Variable a(Tensor::from_vector(std::vector<double>{0.3, 0.7}), true);
  train::Sgd sa({a}, o);
  run(sa, a, 1.0);
  Variable b(a.data().clone(), true);
  train::Sgd sb({b}, o);
  sb.set_momentum_buffers(sa.momentum_buffers());
  run(sa, a, 0.5);
  run(sb, b, 0.5);
  CHECK(a.data().to_vector<double>() == b.data().to_vector<double>());
  CHECK_THROWS_WITH(sb.set_momentum_buffers({Tensor::zeros({3}, DType::Float64)}), Catch::Contains("buffer 0 is"));
}

TEST_CASE("Sgd: bad options name the field", "[train][sgd]") {
  Variable p(Tensor::zeros({1}), true);
  train::SgdOptions o;
  o.lr = -1;
  CHECK_THROWS_WITH(train::Sgd({p}, o), Catch::Contains("lr must be finite and >= 0"));
  o = {};
  o.nesterov = true;
  o.dampening = 0.5;
  CHECK_THROWS_WITH(train::Sgd({p}, o), Catch::Contains("nesterov needs momentum > 0 and dampening 0"));
  train::Sgd ok({p}, train::SgdOptions{});
  CHECK_THROWS_WITH(ok.set_lr(std::nan("")), Catch::Contains("set_lr"));
}

TEST_CASE("clip_grad_norm scales every gradient by max_norm / (total + 1e-6) above the limit", "[train][sgd]") {
  Variable a(Tensor::zeros({2}, DType::Float64), true), b(Tensor::zeros({1}, DType::Float64), true);
  Variable none(Tensor::zeros({1}, DType::Float64), true);
  set_grad(a, {3.0, 0.0});
  set_grad(b, {4.0});
  CHECK(train::clip_grad_norm({a, b, none}, 10.0) == 5.0);  // below the limit: unchanged
  CHECK(a.grad().to_vector<double>()[0] == 3.0);
  CHECK(train::clip_grad_norm({a, b, none}, 1.0) == 5.0);
  const double coef = 1.0 / (5.0 + 1e-6);
  CHECK(a.grad().to_vector<double>()[0] == Approx(3.0 * coef).epsilon(1e-15));
  CHECK(b.grad().to_vector<double>()[0] == Approx(4.0 * coef).epsilon(1e-15));
  CHECK_FALSE(none.has_grad());
  CHECK_THROWS_WITH(train::clip_grad_norm({a}, 0.0), Catch::Contains("max_norm must be finite and > 0"));
}
