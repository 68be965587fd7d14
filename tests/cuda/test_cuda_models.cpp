// CPU vs CUDA parity of a whole backbone: a small ResNet-18 (base_width 16) + FPN (64
// channels, max-pool P6), forward (P2..P6) and backward (input gradient and every trainable
// parameter's gradient), with GroupNorm (nothing frozen, so the GN weights and biases get
// gradients too) and with frozen BN (frozen_stages 1, as the detector). The CUDA model is the
// same module state moved with Module::to. Runs only where a CUDA device exists; elsewhere the
// test main exits with 77 and ctest reports the tests skipped.
//
// Tolerances: per op the two devices differ only in summation order (cuDNN's algorithms vs
// im2col + GEMM, FMA contraction in the norm bodies). Errors are measured against each tensor's
// largest magnitude (elements that come from cancellation have no useful relative accuracy,
// and weight gradients sum over every pixel): the same model in float32 vs float64 on the CPU
// differs by at most 1.2e-6 (outputs), 1.7e-6 (parameter gradients) and 5.2e-7 (input
// gradient) of that scale, i.e. that is float32's own rounding through ~13 convolutions and
// norms forward and back. cuDNN may round more per convolution (Winograd/FFT: test_cuda_conv
// allows 1e-4 relative per conv), so float32 gets rtol 5e-4 plus an absolute floor of 5e-4 x
// the tensor's largest magnitude (~300x the rounding seen). float64: 1e-10 and 1e-10 x the
// largest magnitude (float64 unit roundoff is 1.1e-16).
// A wrong stride, padding, norm or block order changes values by O(1) relative.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include <fmt/core.h>

#include "common/device_compare.h"
#include "common/random.h"
#include "drcnn/autograd/functions.h"
#include "drcnn/models/fpn.h"
#include "drcnn/models/resnet.h"

using drcnn::Device;
using drcnn::DType;
using drcnn::Shape;
using drcnn::Tensor;
using drcnn::Variable;
using drcnn::test::require_device_close;

namespace {
const Device kGpu = Device::cuda(0);

double max_abs(const Tensor& t) {
  double m = 0;
  for (double v : t.to_vector<double>()) m = std::max(m, std::abs(v));
  return m;
}

/// The GPU result within rtol `tol` and an absolute floor of `tol` x the CPU tensor's largest magnitude.
void require_close_scaled(const std::string& what, const Tensor& gpu, const Tensor& cpu, double tol) {
  INFO(what);
  require_device_close(gpu, cpu, tol, tol * max_abs(cpu));
}

template <typename T>
struct Backbone {
  drcnn::models::ResNet<T> resnet;
  drcnn::models::Fpn<T> fpn;
  Backbone(const drcnn::models::ResNetOptions& ro, const drcnn::models::FpnOptions& fo, drcnn::Generator& gen)
      : resnet(ro, gen), fpn(fo, gen) {}
  std::vector<Variable> forward(const Variable& x) const { return fpn.forward(resnet.forward(x)); }
  void load(const std::map<std::string, Tensor>& resnet_state, const std::map<std::string, Tensor>& fpn_state) {
    resnet.load_state_dict(resnet_state);
    fpn.load_state_dict(fpn_state);
  }
  void to(Device d) {
    resnet.to(d);
    fpn.to(d);
  }
  std::vector<std::pair<std::string, Variable>> named_parameters() const {
    auto out = resnet.named_parameters();
    for (auto& [name, p] : fpn.named_parameters()) out.emplace_back(fmt::format("neck.{}", name), p);
    return out;
  }
};

/// Every floating 1-D state entry (norm weights/biases/statistics, FPN conv biases) replaced by
/// seeded random values, so the norms are not identities: scales and variances in [0.5, 1.5),
/// shifts and means in [-0.2, 0.2). Convolution weights keep their (kaiming/xavier) init.
std::map<std::string, Tensor> randomised_state(const drcnn::Module& m, uint64_t& seed) {
  std::map<std::string, Tensor> out;
  for (const auto& [name, t] : m.state_dict()) {
    Tensor v = t.clone();
    if (t.ndim() == 1 && (t.dtype() == DType::Float32 || t.dtype() == DType::Float64)) {
      const bool scale = name.ends_with(".weight") || name.ends_with("running_var");
      v = drcnn::test::random_tensor(t.shape(), seed++, t.dtype(), scale ? 0.5 : -0.2, scale ? 1.5 : 0.2);
    }
    out.emplace(name, v);
  }
  return out;
}

template <typename T>
void check_backbone(drcnn::models::NormKind norm, int frozen_stages, double tol) {
  constexpr DType dt = drcnn::dtype_of_v<T>;
  drcnn::models::ResNetOptions ro;
  ro.depth = 18;
  ro.base_width = 16;
  ro.norm.kind = norm;
  ro.norm.gn_groups = 8;  // 16..128 channels: 2..16 channels per group
  ro.frozen_stages = frozen_stages;
  drcnn::Generator gen(0);
  Backbone<T> cpu(ro, drcnn::models::FpnOptions{{16, 32, 64, 128}, 64, 5, drcnn::models::FpnExtra::MaxPool}, gen);
  Backbone<T> gpu(ro, drcnn::models::FpnOptions{{16, 32, 64, 128}, 64, 5, drcnn::models::FpnExtra::MaxPool}, gen);
  uint64_t seed = 100;
  const auto rs = randomised_state(cpu.resnet, seed), fs = randomised_state(cpu.fpn, seed);
  cpu.load(rs, fs);
  gpu.load(rs, fs);
  gpu.to(kGpu);
  cpu.resnet.train();
  gpu.resnet.train();

  // Batch 2, a size that is not a multiple of 32: C5 is 2x3 and the FPN upsamples to odd sizes.
  const Tensor x = drcnn::test::random_tensor(Shape{2, 3, 70, 90}, 7, dt);
  const Variable xc(x, true), xg(x.to(kGpu), true);
  const std::vector<Variable> pc = cpu.forward(xc), pg = gpu.forward(xg);
  REQUIRE(pc.size() == 5);
  REQUIRE(pg.size() == 5);
  Variable lc, lg;
  for (size_t i = 0; i < pc.size(); ++i) {
    require_close_scaled(fmt::format("P{}", i + 2), pg[i].data(), pc[i].data(), tol);
    // sum(P * W) with a random W per level, so every output element has its own gradient.
    const Tensor w = drcnn::test::random_tensor(pc[i].shape(), 200 + i, dt);
    const Variable sc = drcnn::sum(drcnn::mul(pc[i], Variable(w)));
    const Variable sg = drcnn::sum(drcnn::mul(pg[i], Variable(w.to(kGpu))));
    lc = lc.defined() ? drcnn::add(lc, sc) : sc;
    lg = lg.defined() ? drcnn::add(lg, sg) : sg;
  }
  lc.backward();
  lg.backward();
  require_close_scaled("grad input", xg.grad(), xc.grad(), tol);

  const auto params_c = cpu.named_parameters(), params_g = gpu.named_parameters();
  REQUIRE(params_c.size() == params_g.size());
  int trainable = 0;
  for (size_t i = 0; i < params_c.size(); ++i) {
    const auto& [name, p] = params_c[i];
    INFO(name);
    REQUIRE(params_g[i].first == name);
    const Variable& q = params_g[i].second;
    REQUIRE(q.device() == kGpu);
    REQUIRE(q.requires_grad() == p.requires_grad());
    if (!p.requires_grad()) {  // frozen: no gradient on either device
      CHECK_FALSE(p.has_grad());
      CHECK_FALSE(q.has_grad());
      continue;
    }
    ++trainable;
    REQUIRE(p.has_grad());
    REQUIRE(q.has_grad());
    require_close_scaled(fmt::format("grad {}", name), q.grad(), p.grad(), tol);
  }
  CHECK(trainable > 0);
}
}  // namespace

TEST_CASE("cuda/models: ResNet-18 GroupNorm + FPN forward and gradients match the CPU", "[cuda][models]") {
  SECTION("float32") { check_backbone<float>(drcnn::models::NormKind::GroupNorm, -1, 5e-4); }
  SECTION("float64") { check_backbone<double>(drcnn::models::NormKind::GroupNorm, -1, 1e-10); }
}

TEST_CASE("cuda/models: ResNet-18 frozen BN frozen_stages 1 + FPN forward and gradients match the CPU",
          "[cuda][models]") {
  SECTION("float32") { check_backbone<float>(drcnn::models::NormKind::FrozenBatchNorm, 1, 5e-4); }
  SECTION("float64") { check_backbone<double>(drcnn::models::NormKind::FrozenBatchNorm, 1, 1e-10); }
}
