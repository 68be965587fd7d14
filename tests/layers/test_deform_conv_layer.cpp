// ModulatedDeformConv2dPack (include/drcnn/layers/deform_conv.h) and the ResNet DCN option
// (models/resnet.h stage_with_dcn):
// - mmcv's parameter names and shapes; conv_offset starts at zero;
// - a fresh layer is 0.5 * conv2d(x, weight) + bias. Proof: conv_offset(x) = 0 (zero weight and
//   bias), so every offset is 0 and every mask sigmoid(0) = 1/2; with zero offsets each sample
//   sits on the integer grid, where the bilinear weights are (1, 0, 0, 0) and the sample is the
//   input value (0 in the padding), i.e. conv2d's im2col; each column is scaled by 1/2 before
//   the GEMM and the bias is added after it;
// - the gradient reaching conv_offset.bias is the chain rule through ops::deform_conv2d_backward
//   (offset channels: the sum of the offset gradient; mask channels: sigmoid'(0) = 1/4 times the
//   sum of the mask gradient);
// - a ResNet-50 with DCN in layer2..4 (mmdet's stage_with_dcn=(False, True, True, True)) has
//   mmdet's keys, zero conv_offsets, and equals the plain ResNet-50 with the same weights whose
//   DCN 3x3 weights are halved (the proof above, block by block).
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <string>

#include "common/allclose.h"
#include "drcnn/autograd/functions.h"
#include "drcnn/layers/deform_conv.h"
#include "drcnn/models/resnet.h"
#include "drcnn/ops/conv.h"
#include "drcnn/ops/deform_conv.h"
#include "drcnn/ops/elementwise.h"
#include "drcnn/ops/reduce.h"
#include "drcnn/ops/shape_ops.h"

using namespace drcnn;

namespace {
double max_abs(const Tensor& t) {
  double m = 0;
  for (double x : t.to_vector<double>()) m = std::max(m, std::abs(x));
  return m;
}
}  // namespace

TEST_CASE("layers/ModulatedDeformConv2dPack: mmcv's names and shapes, zero conv_offset, 0.5 * conv + bias",
          "[layers][deform_conv][cpu]") {
  Generator gen(3);
  ModulatedDeformConv2dPack<double>::Options o;
  o.in_channels = 4;
  o.out_channels = 6;
  o.stride = 2;
  o.groups = 2;
  o.deform_groups = 2;
  o.bias = true;
  ModulatedDeformConv2dPack<double> layer(o, gen);
  std::map<std::string, Shape> shapes;
  for (const auto& [name, t] : layer.state_dict()) shapes[name] = t.shape();
  CHECK(shapes == std::map<std::string, Shape>{{"weight", Shape{6, 2, 3, 3}},
                                              {"bias", Shape{6}},
                                              {"conv_offset.weight", Shape{54, 4, 3, 3}},
                                              {"conv_offset.bias", Shape{54}}});
  CHECK(max_abs(layer.conv_offset().weight().data()) == 0.0);
  CHECK(max_abs(layer.conv_offset().bias().data()) == 0.0);
  // mmcv init: weight uniform in +-1/sqrt(4 * 9), bias 0.
  CHECK(max_abs(layer.weight().data()) <= 1.0 / 6.0);
  CHECK(max_abs(layer.weight().data()) > 0.1);
  Variable bias = layer.bias();
  bias.mutable_data().copy_(Tensor::from_vector<double>({1, -2, 3, 0.5, -1, 2}, Shape{6}));

  const Variable x(Tensor::randn({2, 4, 9, 8}, gen, DType::Float64), true);
  Variable y = layer.forward(x);
  ops::Conv2dParams cp;
  cp.stride = {2, 2};
  cp.padding = {1, 1};
  cp.groups = 2;
  const Tensor expect = ops::add(ops::mul(ops::conv2d(x.data(), layer.weight().data(), Tensor(), cp), 0.5),
                                 bias.data().reshape({1, 6, 1, 1}));
  test::expect_allclose(y.data(), expect, 1e-13, 1e-13);

  // conv_offset.bias's gradient by the chain rule.
  const Tensor go = Tensor::randn(y.shape(), gen, DType::Float64);
  y.backward(go);
  ops::DeformConv2dParams dp;
  dp.stride = {2, 2};
  dp.padding = {1, 1};
  dp.groups = 2;
  dp.offset_groups = 2;
  const Tensor zero_off = Tensor::zeros({2, 36, 5, 4}, DType::Float64);
  const Tensor half = ops::mul(Tensor::ones({2, 18, 5, 4}, DType::Float64), 0.5);
  const ops::DeformConv2dGrads r = ops::deform_conv2d_backward(go, x.data(), zero_off, half, layer.weight().data(), dp);
  const Tensor off_sum = ops::sum(ops::sum(ops::sum(r.offset, 3), 2), 0);                // [36]
  const Tensor mask_sum = ops::mul(ops::sum(ops::sum(ops::sum(r.mask, 3), 2), 0), 0.25);  // [18]
  test::expect_allclose(layer.conv_offset().bias().grad(), ops::concat({off_sum, mask_sum}, 0), 1e-12, 1e-12);
  CHECK(max_abs(layer.conv_offset().weight().grad()) > 0.0);
}

TEST_CASE("models/resnet: stage_with_dcn gives mmdet's keys and equals the plain net with halved 3x3 weights",
          "[models][deform_conv][cpu]") {
  models::ResNetOptions o;
  o.depth = 50;
  o.base_width = 16;  // light
  Generator gen(5);
  models::ResNetOptions od = o;
  od.stage_with_dcn = {false, true, true, true};
  models::ResNet<double> dcn(od, gen);
  models::ResNet<double> plain(o, gen);
  std::map<std::string, Tensor> dcn_state;
  for (const auto& [name, t] : dcn.state_dict()) dcn_state[name] = t;
  CHECK(dcn_state.count("layer1.0.conv2.weight") == 1);
  CHECK(dcn_state.count("layer1.0.conv2.conv_offset.weight") == 0);
  for (const char* block : {"layer2.0", "layer3.5", "layer4.2"}) {
    INFO(block);
    const std::string k = std::string(block) + ".conv2.";
    REQUIRE(dcn_state.count(k + "weight") == 1);
    REQUIRE(dcn_state.count(k + "conv_offset.weight") == 1);
    REQUIRE(dcn_state.count(k + "conv_offset.bias") == 1);
    CHECK(dcn_state.at(k + "conv_offset.weight").shape()[0] == 27);
    CHECK(max_abs(dcn_state.at(k + "conv_offset.weight")) == 0.0);
    CHECK(max_abs(dcn_state.at(k + "conv_offset.bias")) == 0.0);
  }
  // Load the plain net's weights into the DCN net (its conv_offsets stay zero), then halve the
  // plain net's layer2..4 conv2 weights: both nets now compute the same function.
  dcn.load_state_dict(plain.state_dict(), /*strict=*/false);
  for (auto& [name, p] : plain.named_parameters()) {
    const bool dcn_conv = name.rfind("layer1.", 0) != 0 && name.size() > 12 &&
                          name.compare(name.size() - 12, 12, "conv2.weight") == 0;
    if (dcn_conv) {
      Tensor& d = p.mutable_data();
      d.copy_(ops::mul(d, 0.5));
    }
  }
  plain.train(false);
  dcn.train(false);
  NoGradGuard no_grad;
  const Variable x(Tensor::randn({1, 3, 64, 48}, gen, DType::Float64));
  const auto a = dcn.forward(x), b = plain.forward(x);
  for (size_t i = 0; i < 4; ++i) {
    INFO("C" << i + 2);
    test::expect_allclose(a[i].data(), b[i].data(), 1e-10, 1e-10);
  }
  models::ResNetOptions bad = od;
  bad.depth = 18;
  REQUIRE_THROWS_WITH(models::ResNet<double>(bad, gen),
                      Catch::Matchers::Contains("ResNet: stage_with_dcn needs bottleneck blocks"));
}
