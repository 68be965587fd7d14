// SGD against torch.optim.SGD's update rule, computed by hand in float64; the fused step
// against the former per-parameter sequence of Tensor ops, bit for bit.
#include <catch2/catch.hpp>

#include <cstring>

#include "common/random.h"
#include "drcnn/core/parallel_cpu.h"
#include "drcnn/ops/elementwise.h"
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

namespace {
// The step as it was before the fusion (one Tensor op at a time per parameter), kept here as
// the reference the fused launch must reproduce exactly.
void unfused_step(std::vector<Tensor>& params, const std::vector<Tensor>& grads, std::vector<Tensor>& bufs,
                  const train::SgdOptions& o) {
  for (size_t i = 0; i < params.size(); ++i) {
    if (!grads[i].defined()) continue;
    Tensor d = grads[i];
    if (o.weight_decay != 0) d = ops::add(d, ops::mul(params[i], o.weight_decay));
    if (o.momentum != 0) {
      Tensor& buf = bufs[i];
      buf = buf.defined() ? ops::add(ops::mul(buf, o.momentum), ops::mul(d, 1.0 - o.dampening)) : d.clone();
      d = o.nesterov ? ops::add(d, ops::mul(buf, o.momentum)) : buf;
    }
    params[i] = ops::sub(params[i], ops::mul(d, o.lr));
  }
}
bool same_bits(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  const Tensor x = a.contiguous(), y = b.contiguous();
  return std::memcmp(x.data_ptr(), y.data_ptr(), size_t(x.numel()) * x.element_size()) == 0;
}
}  // namespace

TEST_CASE("Sgd: the fused step equals the per-parameter Tensor ops bit for bit", "[train][sgd]") {
  // Sizes: empty, tiny, one block boundary (4096) and several blocks; one parameter never gets
  // a gradient; float32 and float64 parameters together (two launches); every option branch;
  // four steps (first-step buffer clone, then the momentum update); 1 and 2 threads. float32
  // (even indices) covers the CPU's 8-lane path (kernels/cpu/sgd.cpp) with and without a
  // remainder: 4096, 15000 = 3 * 4096 + 2712, 4101 (a block of 4096, then 5 left).
  const std::vector<Shape> shapes = {{0}, {3}, {4096}, {4097}, {3, 5000}, {64, 3, 7, 7}, {4101}, {5}, {7}};
  struct Opt {
    double lr, momentum, wd, dampening;
    bool nesterov;
  };
  const std::vector<Opt> opts = {{0.02, 0.9, 1e-4, 0, false}, {0.02, 0.9, 1e-4, 0, true}, {0.1, 0, 0, 0, false},
                                 {0.013, 0.5, 0, 0.25, false}, {0.3, 0, 5e-3, 0, false}, {0.02, 0.9, 0, 0, true}};
  uint64_t seed = 77;
  for (const int threads : {1, 2}) {
    set_cpu_threads(threads);
    for (const Opt& oo : opts) {
      train::SgdOptions o;
      o.lr = oo.lr;
      o.momentum = oo.momentum;
      o.weight_decay = oo.wd;
      o.dampening = oo.dampening;
      o.nesterov = oo.nesterov;
      std::vector<Variable> vars;
      std::vector<Tensor> ref_params, ref_bufs(shapes.size());
      for (size_t i = 0; i < shapes.size(); ++i) {
        const DType dt = i % 2 == 0 ? DType::Float32 : DType::Float64;
        const Tensor init = drcnn::test::random_tensor(shapes[i], seed++, dt);
        vars.emplace_back(init.clone(), true);
        ref_params.push_back(init.clone());
      }
      train::Sgd sgd(vars, o);
      for (int step = 0; step < 4; ++step) {
        std::vector<Tensor> grads(shapes.size());
        for (size_t i = 0; i + 1 < shapes.size(); ++i) {  // the last parameter gets no gradient
          grads[i] = drcnn::test::random_tensor(shapes[i], seed++, vars[i].data().dtype(), -2.0, 2.0);
          vars[i].zero_grad();
          vars[i].add_grad(grads[i]);
        }
        sgd.step();
        unfused_step(ref_params, grads, ref_bufs, o);
        for (size_t i = 0; i < shapes.size(); ++i) {
          INFO("threads " << threads << " lr " << o.lr << " momentum " << o.momentum << " nesterov " << o.nesterov
                          << " step " << step << " parameter " << i);
          REQUIRE(same_bits(vars[i].data(), ref_params[i]));
          REQUIRE(sgd.momentum_buffers()[i].defined() == ref_bufs[i].defined());
          if (ref_bufs[i].defined()) REQUIRE(same_bits(sgd.momentum_buffers()[i], ref_bufs[i]));
        }
      }
    }
  }
  set_cpu_threads(0);
}

TEST_CASE("Sgd: updates in place only what nothing else holds", "[train][sgd]") {
  // The CPU step writes a parameter or momentum buffer in place when the optimizer's handle is
  // the only one (src/train/sgd.cpp); a tensor someone else holds must keep its values.
  train::SgdOptions o;
  o.lr = 0.1;
  o.momentum = 0.9;
  o.weight_decay = 0;
  Variable p(Tensor::from_vector(std::vector<float>{1.0f, -2.0f, 3.0f}), true);
  train::Sgd sgd({p}, o);
  const auto step = [&](float g) {
    p.zero_grad();
    p.add_grad(Tensor::from_vector(std::vector<float>{g, g, g}));
    sgd.step();
  };
  step(1.0f);  // first step: the buffer is new
  const void* p_mem = p.data().data_ptr();
  const void* b_mem = sgd.momentum_buffers()[0].data_ptr();
  step(0.5f);  // sole owner of both: the same memory, updated
  CHECK(p.data().data_ptr() == p_mem);
  CHECK(sgd.momentum_buffers()[0].data_ptr() == b_mem);
  // Both written in float32 as the out-of-place formula: buf = 1 * 0.9 + 0.5, p -= 0.1 * buf
  // (each product rounded on its own, as the kernel's: no contraction into an FMA here).
  const auto mul = [](float a, float b) {
    volatile float r = a * b;
    return float(r);
  };
  const float buf1 = mul(1.0f, 0.9f) + 0.5f;
  CHECK(sgd.momentum_buffers()[0].to_vector<float>() == std::vector<float>{buf1, buf1, buf1});
  CHECK(p.data().to_vector<float>()[0] == (1.0f - mul(0.1f, 1.0f)) - mul(buf1, 0.1f));
  // Held elsewhere: a snapshot of the parameter and of the buffer keep their values, the
  // optimizer moves to fresh memory.
  const Tensor held_p = p.data(), held_b = sgd.momentum_buffers()[0];
  const std::vector<float> before_p = held_p.to_vector<float>(), before_b = held_b.to_vector<float>();
  step(0.25f);
  CHECK(held_p.to_vector<float>() == before_p);
  CHECK(held_b.to_vector<float>() == before_b);
  CHECK(p.data().data_ptr() != held_p.data_ptr());
  CHECK(sgd.momentum_buffers()[0].data_ptr() != held_b.data_ptr());
  CHECK(p.data().to_vector<float>()[0] == before_p[0] - mul(mul(before_b[0], 0.9f) + 0.25f, 0.1f));
}

TEST_CASE("Sgd: a parameter that is not float32 or float64 is an error naming Sgd::step", "[train][sgd]") {
  Variable q(Tensor::zeros({2}, DType::Int64), false);  // integer variables cannot require gradients
  q.add_grad(Tensor::zeros({2}, DType::Int64));
  train::Sgd sq({q}, train::SgdOptions{});
  CHECK_THROWS_WITH(sq.step(), Catch::Contains("Sgd::step: parameter 0 is int64, expected float32 or float64"));
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
