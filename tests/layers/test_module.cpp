// Module: registration, dotted names, modes, freeze, state_dict and load_state_dict errors.
#include <catch2/catch.hpp>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "drcnn/layers/module.h"

using namespace drcnn;

namespace {
/// A leaf layer: weight [2, 3] = 1, bias [2] = 0, one buffer "running" [2] = 5.
struct Leaf : Module {
  Variable weight, bias, running;
  Leaf() {
    weight = register_parameter("weight", Tensor::ones({2, 3}));
    bias = register_parameter("bias", Tensor::zeros({2}));
    running = register_buffer("running", Tensor::full({2}, 5.0));
  }
};
/// The same tree built directly: conv1, layer1.0, layer1.1.
struct Tree : Module {
  struct Stage : Module {
    std::shared_ptr<Leaf> l0, l1;
    Stage() {
      l0 = register_module("0", std::make_shared<Leaf>());
      l1 = register_module("1", std::make_shared<Leaf>());
    }
  };
  Variable scale;
  std::shared_ptr<Leaf> conv1;
  std::shared_ptr<Stage> layer1;
  Tree() {
    scale = register_parameter("scale", Tensor::full({1}, 2.0, DType::Float64));
    conv1 = register_module("conv1", std::make_shared<Leaf>());
    layer1 = register_module("layer1", std::make_shared<Stage>());
  }
};

std::vector<std::string> names_of(const std::vector<std::pair<std::string, Variable>>& list) {
  std::vector<std::string> out;
  for (const auto& e : list) out.push_back(e.first);
  return out;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("layers/module: parameters and buffers get dotted names in registration order", "[layers][cpu]") {
  Tree t;
  CHECK(names_of(t.named_parameters()) ==
        std::vector<std::string>{"scale", "conv1.weight", "conv1.bias", "layer1.0.weight", "layer1.0.bias",
                                 "layer1.1.weight", "layer1.1.bias"});
  CHECK(names_of(t.named_buffers()) ==
        std::vector<std::string>{"conv1.running", "layer1.0.running", "layer1.1.running"});
  CHECK(t.parameters().size() == 7);
  const NamedTensors sd = t.state_dict();
  REQUIRE(sd.size() == 10);
  CHECK(sd[0].first == "scale");
  CHECK(sd[7].first == "conv1.running");
  // state_dict shares storage with the module.
  CHECK(sd[1].second.data_ptr() == t.conv1->weight.data().data_ptr());
}

TEST_CASE("layers/module: train and eval reach every child, freeze stops gradients", "[layers][cpu]") {
  Tree t;
  CHECK(t.is_training());
  CHECK(t.layer1->l1->is_training());
  t.eval();
  CHECK_FALSE(t.is_training());
  CHECK_FALSE(t.layer1->l0->is_training());
  t.train();
  CHECK(t.layer1->l0->is_training());
  t.layer1->freeze();
  CHECK_FALSE(t.layer1->l0->weight.requires_grad());
  CHECK(t.conv1->weight.requires_grad());
  CHECK(t.parameters().size() == 3);  // scale, conv1.weight, conv1.bias
  CHECK(t.named_parameters().size() == 7);
}

TEST_CASE("layers/module: load_state_dict copies in place and keeps the handles", "[layers][cpu]") {
  Tree src, dst;
  src.conv1->weight.mutable_data().fill_(3.0);
  src.layer1->l1->running.mutable_data().fill_(-1.0);
  src.scale.mutable_data().fill_(0.25);
  const void* before = dst.conv1->weight.data().data_ptr();
  dst.load_state_dict(src.state_dict());
  CHECK(dst.conv1->weight.data().data_ptr() == before);
  CHECK(dst.conv1->weight.data().to_vector<float>() == std::vector<float>(6, 3.0f));
  CHECK(dst.layer1->l1->running.data().to_vector<float>() == std::vector<float>{-1.0f, -1.0f});
  CHECK(dst.scale.data().item<double>() == 0.25);
  // The copy is deep: changing the source afterwards leaves dst alone.
  src.conv1->weight.mutable_data().fill_(9.0);
  CHECK(dst.conv1->weight.data().to_vector<float>() == std::vector<float>(6, 3.0f));
  // From a std::map too.
  std::map<std::string, Tensor> m;
  for (auto& [k, v] : src.state_dict()) m.emplace(k, v);
  dst.load_state_dict(m);
  CHECK(dst.conv1->weight.data().to_vector<float>() == std::vector<float>(6, 9.0f));
}

TEST_CASE("layers/module: load_state_dict lists every problem in one error and writes nothing", "[layers][cpu]") {
  Tree dst;
  NamedTensors sd;
  for (auto& [k, v] : Tree().state_dict()) {
    if (k == "layer1.0.bias") continue;                                          // missing
    if (k == "conv1.weight") sd.emplace_back(k, Tensor::ones({3, 2}));          // wrong shape
    else if (k == "scale") sd.emplace_back(k, Tensor::full({1}, 7.0));          // wrong dtype (f32)
    else sd.emplace_back(k, v.clone().fill_(4.0));
  }
  sd.emplace_back("layer1.2.weight", Tensor::ones({2, 3}));                     // unexpected
  const std::string msg = error_of([&] { dst.load_state_dict(sd); });
  CHECK_THAT(msg, Catch::Contains("missing keys (1)"));
  CHECK_THAT(msg, Catch::Contains("layer1.0.bias"));
  CHECK_THAT(msg, Catch::Contains("unexpected keys (1)"));
  CHECK_THAT(msg, Catch::Contains("layer1.2.weight"));
  CHECK_THAT(msg, Catch::Contains("shape or dtype mismatches (2)"));
  CHECK_THAT(msg, Catch::Contains("conv1.weight: expected float32 [2, 3], got float32 [3, 2]"));
  CHECK_THAT(msg, Catch::Contains("scale: expected float64"));
  // Nothing was written (the valid entries hold 4.0).
  CHECK(dst.layer1->l1->weight.data().to_vector<float>() == std::vector<float>(6, 1.0f));

  // Non-strict: missing and unexpected keys are tolerated, mismatches are not.
  NamedTensors partial{{"layer1.1.weight", Tensor::full({2, 3}, 6.0)}, {"extra", Tensor::ones({1})}};
  dst.load_state_dict(partial, /*strict=*/false);
  CHECK(dst.layer1->l1->weight.data().to_vector<float>() == std::vector<float>(6, 6.0f));
  partial.emplace_back("conv1.bias", Tensor::ones({3}));
  CHECK_THAT(error_of([&] { dst.load_state_dict(partial, false); }), Catch::Contains("conv1.bias: expected"));
  // A key given twice is an error.
  NamedTensors twice{{"scale", Tensor::full({1}, 1.0, DType::Float64)}, {"scale", Tensor::full({1}, 1.0, DType::Float64)}};
  CHECK_THAT(error_of([&] { dst.load_state_dict(twice, false); }), Catch::Contains("duplicated keys (1)"));
}

TEST_CASE("layers/module: registration rejects bad and repeated names", "[layers][cpu]") {
  struct Bad : Module {
    void add(const std::string& n) { register_parameter(n, Tensor::ones({1})); }
    void add_buffer(const std::string& n) { register_buffer(n, Tensor::ones({1})); }
    void add_int_param() { register_parameter("i", Tensor::ones({1}, DType::Int64)); }
  } m;
  m.add("w");
  CHECK_THAT(error_of([&] { m.add("w"); }), Catch::Contains("'w' is already registered"));
  CHECK_THAT(error_of([&] { m.add_buffer("w"); }), Catch::Contains("'w' is already registered"));
  CHECK_THAT(error_of([&] { m.add("a.b"); }), Catch::Contains("contain no '.'"));
  CHECK_THAT(error_of([&] { m.add(""); }), Catch::Contains("non-empty"));
  CHECK_THAT(error_of([&] { m.add_int_param(); }), Catch::Contains("must be floating-point"));
}
