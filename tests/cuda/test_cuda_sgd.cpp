// The fused SGD step on CUDA (kernels/cuda/sgd.cu) against the CPU's (kernels/cpu/sgd.cpp),
// which tests/train/test_sgd.cpp proves equal to the former per-parameter Tensor ops. Both run
// the same body with every operation rounded separately (the CUDA side uses the *_rn
// intrinsics, so nvcc cannot contract to FMA): the results must be identical.
#include <catch2/catch.hpp>

#include "common/device_compare.h"
#include "common/random.h"
#include "drcnn/train/sgd.h"

using drcnn::Device;
using drcnn::DType;
using drcnn::Shape;
using drcnn::Tensor;
using drcnn::Variable;
namespace train = drcnn::train;

TEST_CASE("cuda/sgd: the fused step matches the CPU bit for bit", "[cuda][sgd]") {
  const Device gpu = Device::cuda(0);
  const std::vector<Shape> shapes = {{0}, {5}, {4096}, {4097}, {256, 3, 3, 3}, {9000}};
  for (const bool nesterov : {false, true}) {
    train::SgdOptions o;
    o.lr = 0.02;
    o.momentum = 0.9;
    o.weight_decay = 1e-4;
    o.nesterov = nesterov;
    std::vector<Variable> cpu, dev;
    uint64_t seed = nesterov ? 900 : 800;
    for (size_t i = 0; i < shapes.size(); ++i) {
      const Tensor init = drcnn::test::random_tensor(shapes[i], seed++, i % 2 ? DType::Float64 : DType::Float32);
      cpu.emplace_back(init.clone(), true);
      dev.emplace_back(init.to(gpu), true);
    }
    train::Sgd sc(cpu, o), sd(dev, o);
    for (int step = 0; step < 3; ++step) {
      for (size_t i = 0; i < shapes.size(); ++i) {
        const Tensor g = drcnn::test::random_tensor(shapes[i], seed++, cpu[i].data().dtype());
        cpu[i].zero_grad();
        cpu[i].add_grad(g);
        dev[i].zero_grad();
        dev[i].add_grad(g.to(gpu));
      }
      sc.step();
      sd.step();
      for (size_t i = 0; i < shapes.size(); ++i) {
        INFO("nesterov " << nesterov << " step " << step << " parameter " << i);
        drcnn::test::require_device_equal(dev[i].data(), cpu[i].data());
        drcnn::test::require_device_equal(sd.momentum_buffers()[i], sc.momentum_buffers()[i]);
      }
    }
  }
}
