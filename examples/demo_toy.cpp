// drcnn_demo: a small MLP (2 -> H -> H -> 1, ReLU) learns to separate two interleaved spirals,
// trained with plain full-batch gradient descent written right here on top of drcnn's
// tensors and autograd. Runs on the CPU in a few seconds; prints the loss as it falls, the
// final accuracy, and a picture of what the network learned.
//
//   drcnn_demo [--steps N] [--lr X] [--hidden H] [--points P] [--seed S] [--print-every K] [--threads T]
//
// One CPU thread by default: the tensors here are tiny (a few hundred rows), so OpenMP's
// start-up and barriers cost more than they save, and far more when the cores are busy.
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <numbers>
#include <string>
#include <vector>

#include "drcnn/autograd/functions.h"
#include "drcnn/autograd/variable.h"
#include "drcnn/core/generator.h"
#include "drcnn/core/parallel_cpu.h"
#include "drcnn/core/tensor.h"
#include "drcnn/ops/elementwise.h"
#include "drcnn/ops/reduce.h"

using drcnn::Generator;
using drcnn::Shape;
using drcnn::Tensor;
using drcnn::Variable;

namespace {

struct Options {
  int steps = 2000;
  double lr = 0.8;
  int64_t hidden = 32;
  int64_t points = 200;  // per class
  uint64_t seed = 7;
  int print_every = 200;
  int threads = 1;  // 0 = drcnn's default (all cores)
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) {
        fmt::print(stderr, "drcnn_demo: {} needs a value\n", arg);
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--steps") o.steps = std::atoi(value());
    else if (arg == "--lr") o.lr = std::atof(value());
    else if (arg == "--hidden") o.hidden = std::atoll(value());
    else if (arg == "--points") o.points = std::atoll(value());
    else if (arg == "--seed") o.seed = std::strtoull(value(), nullptr, 10);
    else if (arg == "--print-every") o.print_every = std::atoi(value());
    else if (arg == "--threads") o.threads = std::atoi(value());
    else {
      fmt::print(stderr,
                 "usage: drcnn_demo [--steps N] [--lr X] [--hidden H] [--points P] [--seed S] "
                 "[--print-every K] [--threads T]\n");
      std::exit(arg == "--help" || arg == "-h" ? 0 : 2);
    }
  }
  if (o.steps < 1 || o.hidden < 1 || o.points < 1 || o.print_every < 1 || o.threads < 0 || !(o.lr > 0)) {
    fmt::print(stderr, "drcnn_demo: steps, hidden, points, print-every and lr must be positive\n");
    std::exit(2);
  }
  return o;
}

// Two spirals, one turn each, the second rotated by pi. Radii and noise come from drcnn's
// seeded counter-based generator; the angles are turned into coordinates on the host.
// Returns x [2P, 2] in roughly [-1, 1]^2 and y [2P, 1] with values 0 / 1.
std::pair<Tensor, Tensor> make_spirals(int64_t per_class, Generator& gen) {
  const int64_t n = 2 * per_class;
  const std::vector<float> t = Tensor::rand(Shape{n}, gen).to_vector<float>();
  const std::vector<float> noise = Tensor::randn(Shape{n, 2}, gen).to_vector<float>();
  std::vector<float> xs(static_cast<size_t>(n) * 2);
  std::vector<float> ys(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int label = i < per_class ? 0 : 1;
    const double r = 0.1 + 0.9 * double(t[i]);            // radius grows with the angle
    const double a = 1.75 * 2.0 * std::numbers::pi * double(t[i]) + label * std::numbers::pi;
    xs[2 * i + 0] = float(r * std::cos(a) + 0.03 * noise[2 * i + 0]);
    xs[2 * i + 1] = float(r * std::sin(a) + 0.03 * noise[2 * i + 1]);
    ys[i] = float(label);
  }
  return {Tensor::from_vector(xs, Shape{n, 2}), Tensor::from_vector(ys, Shape{n, 1})};
}

struct Linear {
  Variable weight;  // [out, in]
  Variable bias;    // [out]
  Linear(int64_t in, int64_t out, Generator& gen)
      : weight(drcnn::ops::mul(Tensor::randn(Shape{out, in}, gen), std::sqrt(2.0 / double(in))), true),
        bias(Tensor::zeros(Shape{out}), true) {}
  Variable operator()(const Variable& x) const { return drcnn::linear(x, weight, bias); }
};

struct Mlp {
  Linear l1, l2, l3;
  Mlp(int64_t hidden, Generator& gen) : l1(2, hidden, gen), l2(hidden, hidden, gen), l3(hidden, 1, gen) {}
  Variable operator()(const Variable& x) const {
    return l3(drcnn::relu(l2(drcnn::relu(l1(x)))));  // logits [N, 1]
  }
  std::vector<Variable*> parameters() {
    return {&l1.weight, &l1.bias, &l2.weight, &l2.bias, &l3.weight, &l3.bias};
  }
};

// Binary cross-entropy on logits z with targets y in {0, 1}, averaged:
//   softplus(z) - y z,  softplus(z) = relu(z) + log(1 + exp(-|z|))   (never overflows)
Variable bce_with_logits(const Variable& z, const Variable& y) {
  Variable softplus = drcnn::relu(z) + drcnn::log(drcnn::exp(-drcnn::abs(z)) + 1.0);
  return drcnn::mean(softplus - y * z);
}

double accuracy(const Tensor& logits, const Tensor& y) {
  const Tensor predicted = drcnn::ops::gt(logits, 0.0).to(drcnn::DType::Float32);
  return drcnn::ops::mean(drcnn::ops::eq(predicted, y).to(drcnn::DType::Float32)).item<double>();
}

// The learned decision regions on a grid over [-1.1, 1.1]^2 ('+' = class 1, '.' = class 0),
// with the training points drawn on top ('1' / '0').
void draw(const Mlp& mlp, const Tensor& x, const Tensor& y) {
  constexpr int kW = 56, kH = 24;
  constexpr double kLo = -1.1, kHi = 1.1;
  std::vector<float> grid;
  grid.reserve(size_t(kW) * kH * 2);
  for (int r = 0; r < kH; ++r) {
    for (int c = 0; c < kW; ++c) {
      grid.push_back(float(kLo + (kHi - kLo) * (c + 0.5) / kW));
      grid.push_back(float(kHi - (kHi - kLo) * (r + 0.5) / kH));
    }
  }
  drcnn::NoGradGuard no_grad;
  const std::vector<float> z =
      mlp(Variable(Tensor::from_vector(grid, Shape{int64_t(kW) * kH, 2}))).data().to_vector<float>();
  std::vector<std::string> canvas(kH, std::string(kW, ' '));
  for (int r = 0; r < kH; ++r)
    for (int c = 0; c < kW; ++c) canvas[r][c] = z[size_t(r) * kW + c] > 0 ? '+' : '.';
  const std::vector<float> xs = x.to_vector<float>(), ys = y.to_vector<float>();
  for (size_t i = 0; i < ys.size(); i += 3) {  // every third point keeps the picture readable
    const int c = int((xs[2 * i] - kLo) / (kHi - kLo) * kW);
    const int r = int((kHi - xs[2 * i + 1]) / (kHi - kLo) * kH);
    if (r >= 0 && r < kH && c >= 0 && c < kW) canvas[r][c] = ys[i] > 0.5f ? '1' : '0';
  }
  fmt::print("\nlearned regions ('+' class 1, '.' class 0; digits are training points):\n");
  for (const auto& line : canvas) fmt::print("  {}\n", line);
}

}  // namespace

int main(int argc, char** argv) try {
  const Options opt = parse(argc, argv);
  drcnn::set_cpu_threads(opt.threads);
  Generator gen(opt.seed);
  const auto [x_data, y_data] = make_spirals(opt.points, gen);
  const Variable x(x_data), y(y_data);
  Mlp mlp(opt.hidden, gen);

  fmt::print("drcnn demo: MLP 2 -> {} -> {} -> 1 (ReLU) on two spirals, {} points, "
             "full-batch gradient descent, lr {}, {} steps (CPU, {} thread{})\n",
             opt.hidden, opt.hidden, x_data.size(0), opt.lr, opt.steps, drcnn::cpu_threads(),
             drcnn::cpu_threads() == 1 ? "" : "s");

  const auto start = std::chrono::steady_clock::now();
  double first_loss = 0, loss_value = 0;
  for (int step = 1; step <= opt.steps; ++step) {
    Variable logits = mlp(x);
    Variable loss = bce_with_logits(logits, y);
    loss.backward();
    loss_value = loss.data().item<double>();
    if (step == 1) first_loss = loss_value;

    // Plain SGD: p <- p - lr * dL/dp, then clear the gradient for the next step.
    for (Variable* p : mlp.parameters()) {
      p->mutable_data() = drcnn::ops::sub(p->data(), drcnn::ops::mul(p->grad(), opt.lr));
      p->zero_grad();
    }

    if (step == 1 || step % opt.print_every == 0 || step == opt.steps) {
      fmt::print("step {:>5}  loss {:.5f}  accuracy {:.3f}\n", step, loss_value,
                 accuracy(logits.data(), y_data));
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  double final_accuracy = 0;
  {
    drcnn::NoGradGuard no_grad;
    final_accuracy = accuracy(mlp(x).data(), y_data);
  }
  draw(mlp, x_data, y_data);
  fmt::print("\nloss {:.4f} -> {:.4f} ({:.0f}x lower) in {:.2f} s; final training accuracy {:.1f}%\n",
             first_loss, loss_value, first_loss / loss_value, seconds, 100.0 * final_accuracy);
  if (final_accuracy < 0.9) {
    fmt::print(stderr, "drcnn_demo: the network did not learn the spirals (accuracy below 90%)\n");
    return 1;
  }
  return 0;
} catch (const std::exception& e) {
  fmt::print(stderr, "drcnn_demo: {}\n", e.what());
  return 1;
}
