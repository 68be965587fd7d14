// ResNet blocks, the ResNet-50 trunk and ResNet-50-FPN against PyTorch/torchvision 0.14
// (tests/data/models/*.safetensors from tools/golden_models.py). Weights on both sides come
// from one formula of each parameter's name (tests/common/deterministic_fill.h), so these tests
// also prove that our parameter names are torchvision's (ResNet) and MMDetection's (FPN).
#include <catch2/catch.hpp>

#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/core.h>

#include "common/allclose.h"
#include "common/deterministic_fill.h"
#include "common/golden.h"
#include "drcnn/autograd/functions.h"
#include "drcnn/models/fpn.h"
#include "drcnn/models/resnet.h"

using namespace drcnn;
using namespace drcnn::models;
using drcnn::test::load_golden;

namespace {

void fill_by_name(Module& m) {
  for (auto& [name, t] : m.state_dict()) {
    Tensor dst = t;
    test::deterministic_fill(dst, name);
  }
}

/// "name:AxBxC" for every state entry, as golden_models.py writes them.
std::vector<std::string> state_keys(const Module& m) {
  std::vector<std::string> out;
  for (const auto& [name, t] : m.state_dict()) {
    std::string dims;
    for (int d = 0; d < t.ndim(); ++d) {
      if (d) dims += 'x';
      dims += std::to_string(t.size(d));
    }
    out.push_back(name + ":" + dims);
  }
  return out;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, sep);) out.push_back(item);
  return out;
}

std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

/// sum_k w[k] * y[k] over every output with the golden's weights: the scalar whose gradient
/// torchvision computed.
Variable weighted_sum(const std::vector<Variable>& outs) {
  Variable total;
  for (const auto& o : outs) {
    const Variable w(test::deterministic_output_weights(o.shape()).to(o.dtype()));
    const Variable s = sum(mul(o, w));
    total = total.defined() ? add(total, s) : s;
  }
  return total;
}

ResNetOptions r50_frozen_bn() {
  ResNetOptions o;
  o.depth = 50;
  o.norm.kind = NormKind::FrozenBatchNorm;
  o.norm.eps = 1e-5;
  o.frozen_stages = -1;  // the input gradient flows through every stage either way
  return o;
}
}  // namespace

TEST_CASE("models/resnet: BasicBlock with BatchNorm in training mode matches torchvision", "[models][golden][cpu]") {
  const auto g = load_golden("models/basic_block");
  Generator gen(0);
  NormOptions bn;
  bn.kind = NormKind::BatchNorm;
  BasicBlock<double> block(32, 64, 2, bn, ResNetStyle::Pytorch, gen);
  fill_by_name(block);
  block.train();
  const Variable x(test::deterministic_input({2, 32, 10, 12}), true);
  Variable y = block.forward(x);
  y.backward(test::deterministic_output_weights(y.shape()));
  // float64 on both sides with different summation orders: 1e-10 relative and absolute is
  // ~1e5 ulps of room and far below any semantic difference (>= 1e-3 here).
  test::expect_golden_close("basic_block output", y.data(), g["output"], 1e-10, 1e-10);
  test::expect_golden_close("basic_block grad_input", x.grad(), g["grad_input"], 1e-10, 1e-10);
  std::map<std::string, Variable> params;
  for (auto& [n, p] : block.named_parameters()) params.emplace(n, p);
  std::map<std::string, Variable> buffers;
  for (auto& [n, b] : block.named_buffers()) buffers.emplace(n, b);
  test::expect_golden_close("basic_block grad conv1.weight", params.at("conv1.weight").grad(), g["grad_conv1_weight"], 1e-10, 1e-10);
  test::expect_golden_close("basic_block grad bn1.weight", params.at("bn1.weight").grad(), g["grad_bn1_weight"], 1e-10, 1e-10);
  test::expect_golden_close("basic_block bn1.running_mean", buffers.at("bn1.running_mean").data(), g["bn1_running_mean"], 1e-12, 1e-12);
  test::expect_golden_close("basic_block bn1.running_var", buffers.at("bn1.running_var").data(), g["bn1_running_var"], 1e-12, 1e-12);
  test::expect_golden_close("basic_block downsample.1.running_var", buffers.at("downsample.1.running_var").data(),
              g["downsample_1_running_var"], 1e-12, 1e-12);
  CHECK(buffers.at("bn1.num_batches_tracked").data().item<int64_t>() == 1);
}

TEST_CASE("models/resnet: Bottleneck with frozen BN matches torchvision", "[models][golden][cpu]") {
  const auto g = load_golden("models/bottleneck");
  Generator gen(0);
  Bottleneck<double> block(32, 16, 2, NormOptions{}, ResNetStyle::Pytorch, gen);
  fill_by_name(block);
  const Variable x(test::deterministic_input({2, 32, 9, 14}), true);
  Variable y = block.forward(x);
  y.backward(test::deterministic_output_weights(y.shape()));
  test::expect_golden_close("bottleneck output", y.data(), g["output"], 1e-10, 1e-10);
  test::expect_golden_close("bottleneck grad_input", x.grad(), g["grad_input"], 1e-10, 1e-10);
  std::map<std::string, Variable> params;
  for (auto& [n, p] : block.named_parameters()) params.emplace(n, p);
  test::expect_golden_close("bottleneck grad conv2.weight", params.at("conv2.weight").grad(), g["grad_conv2_weight"], 1e-10, 1e-10);
  test::expect_golden_close("bottleneck grad downsample.0.weight", params.at("downsample.0.weight").grad(),
              g["grad_downsample_0_weight"], 1e-10, 1e-10);
}

TEST_CASE("models/resnet: ResNet-50 has torchvision's state-dict keys and shapes", "[models][cpu]") {
  const auto g = load_golden("models/resnet50");
  Generator gen(0);
  ResNet<float> net(r50_frozen_bn(), gen);
  CHECK(sorted(state_keys(net)) == sorted(split(g.meta("state_keys"), ',')));
  CHECK(net.out_channels() == std::vector<int64_t>{256, 512, 1024, 2048});
}

TEST_CASE("models/resnet: ResNet-50 C2..C5 and the input gradient match torchvision", "[models][golden][cpu]") {
  const auto g = load_golden("models/resnet50");
  Generator gen(0);
  ResNet<double> net(r50_frozen_bn(), gen);
  fill_by_name(net);
  const Variable x(test::deterministic_input({1, 3, 64, 96}), true);
  const std::vector<Variable> outs = net.forward(x);
  REQUIRE(outs.size() == 4);
  // The golden stores float64 results rounded to float32 (relative 6e-8): rtol 2e-7.
  for (int i = 0; i < 4; ++i)
    test::expect_golden_close(fmt::format("resnet50 f64 C{}", i + 2), outs[i].data(), g[fmt::format("C{}", i + 2)], 2e-7, 1e-9);
  weighted_sum(outs).backward();
  test::expect_golden_close("resnet50 f64 grad_input", x.grad(), g["grad_input"], 1e-9, 1e-9);

  // float32 through 53 convolutions: relative errors of ~1e-6 per layer add up; outputs reach 50,
  // so 1e-3 absolute + 1e-4 relative. A wrong stride, padding or block order is off by O(1).
  ResNet<float> net32(r50_frozen_bn(), gen);
  fill_by_name(net32);
  const std::vector<Variable> outs32 = net32.forward(Variable(test::deterministic_input({1, 3, 64, 96}).to(DType::Float32)));
  for (int i = 0; i < 4; ++i)
    test::expect_golden_close(fmt::format("resnet50 f32 C{}", i + 2), outs32[i].data(), g[fmt::format("C{}", i + 2)], 1e-4, 1e-3);
}

TEST_CASE("models/fpn: ResNet-50-FPN P2..P6 match torchvision's FPN with a max-pool P6", "[models][golden][cpu]") {
  const auto g = load_golden("models/resnet50_fpn");
  Generator gen(0);
  ResNet<double> net(r50_frozen_bn(), gen);
  fill_by_name(net);
  Fpn<double> fpn(FpnOptions{}, gen);
  CHECK(sorted(state_keys(fpn)) == sorted(split(g.meta("state_keys"), ',')));
  fill_by_name(fpn);
  NoGradGuard no_grad;
  const std::vector<Variable> p = fpn.forward(net.forward(Variable(test::deterministic_input({1, 3, 64, 96}))));
  REQUIRE(p.size() == 5);
  for (int i = 0; i < 5; ++i)
    test::expect_golden_close(fmt::format("resnet50_fpn f64 P{}", i + 2), p[i].data(), g[fmt::format("P{}", i + 2)], 2e-7, 1e-9);
}

TEST_CASE("models/resnet: frozen stages and norm_eval", "[models][cpu]") {
  Generator gen(0);
  ResNetOptions o;
  o.depth = 18;
  o.norm.kind = NormKind::BatchNorm;
  o.frozen_stages = 1;
  ResNet<float> net(o, gen);
  for (auto& [name, p] : net.named_parameters()) {
    const bool frozen = name.rfind("conv1.", 0) == 0 || name.rfind("bn1.", 0) == 0 || name.rfind("layer1.", 0) == 0;
    INFO(name);
    CHECK(p.requires_grad() == !frozen);
  }
  net.train();
  // norm_eval (default true): every BatchNorm in eval mode, the rest of the network training.
  for (auto& [name, child] : net.named_children()) {
    INFO(name);
    if (name == "bn1" || name == "layer1") CHECK_FALSE(child->is_training());  // frozen stem and stage
    else CHECK(child->is_training());
  }
  o.norm_eval = false;
  ResNet<float> net2(o, gen);
  net2.train();
  std::map<std::string, std::shared_ptr<Module>> kids(net2.named_children().begin(), net2.named_children().end());
  CHECK_FALSE(kids.at("bn1")->is_training());      // frozen stem
  CHECK_FALSE(kids.at("layer1")->is_training());   // frozen stage
  CHECK(kids.at("layer2")->is_training());
  CHECK_THROWS_WITH(ResNet<float>(ResNetOptions{.depth = 42}, gen), Catch::Contains("depth must be 18, 34, 50 or 101"));
}

TEST_CASE("models/resnet: depths, styles and norms build with the expected shapes", "[models][cpu]") {
  Generator gen(1);
  const Variable x(Tensor::randn({1, 3, 64, 64}, gen));
  for (int depth : {18, 34, 50, 101}) {
    for (auto style : {ResNetStyle::Pytorch, ResNetStyle::Caffe}) {
      ResNetOptions o;
      o.depth = depth;
      o.style = style;
      o.norm.kind = depth == 18 ? NormKind::GroupNorm : NormKind::FrozenBatchNorm;
      o.base_width = depth >= 50 ? 16 : 64;  // keep the big ones light
      if (o.norm.kind == NormKind::GroupNorm) o.norm.gn_groups = 8;
      ResNet<float> net(o, gen);
      NoGradGuard no_grad;
      const auto outs = net.forward(x);
      const auto ch = net.out_channels();
      INFO("depth " << depth);
      for (int i = 0; i < 4; ++i) {
        CHECK(outs[i].shape() == Shape{1, ch[i], 64 >> (i + 2), 64 >> (i + 2)});
      }
    }
  }
}

TEST_CASE("models/resnet: style pytorch strides the 3x3, style caffe the first 1x1", "[models][cpu]") {
  Generator gen(2);
  const auto child = [](const Module& m, const std::string& name) -> const Module& {
    for (const auto& [n, c] : m.named_children())
      if (n == name) return *c;
    FAIL("no child " << name);
    throw std::logic_error("unreachable");
  };
  const auto stride_of = [&](const Module& block, const std::string& conv) {
    return dynamic_cast<const Conv2d<float>&>(child(block, conv)).options().stride;
  };
  for (auto style : {ResNetStyle::Pytorch, ResNetStyle::Caffe}) {
    ResNetOptions o;
    o.depth = 50;
    o.base_width = 8;
    o.style = style;
    ResNet<float> net(o, gen);
    const Module& block = child(child(net, "layer2"), "0");
    const bool caffe = style == ResNetStyle::Caffe;
    CHECK(stride_of(block, "conv1") == (caffe ? 2 : 1));
    CHECK(stride_of(block, "conv2") == (caffe ? 1 : 2));
    CHECK(stride_of(block, "conv3") == 1);
    CHECK(dynamic_cast<const Conv2d<float>&>(child(child(block, "downsample"), "0")).options().stride == 2);
  }
}
