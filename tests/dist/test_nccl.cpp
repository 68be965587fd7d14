// The NCCL backend on GPUs (ctest dist_nccl, label cuda): `mpiexec -n 2 drcnn_tests_dist_cuda`,
// one GPU per rank (local rank). Exits 77 (skipped) when this machine has fewer GPUs than ranks,
// or 1 under DRCNN_REQUIRE_CUDA=1. Expected sums are computed here from the ranks' inputs.
#include <fmt/core.h>

#include <cstdlib>

#include "drcnn/core/device.h"
#include "drcnn/dist/communicator.h"

using namespace drcnn;

int main() {
  try {
    dist::Communicator& c = dist::world();
    const int gpus = cuda::device_count();
    if (gpus < c.local_size()) {
      const bool require = std::getenv("DRCNN_REQUIRE_CUDA") && std::string(std::getenv("DRCNN_REQUIRE_CUDA")) == "1";
      fmt::print("dist_nccl: SKIPPED: {} ranks on this machine need as many GPUs, {} visible ({})\n", c.local_size(),
                 gpus, gpus ? "one rank per GPU" : cuda::unavailable_reason());
      c.shutdown();
      return require ? 1 : 77;
    }
    const Device d = Device::cuda(c.local_rank());
    c.init_gpu(d);
    int failures = 0;
    for (DType dt : {DType::Float32, DType::Float64, DType::Float16, DType::BFloat16, DType::Int32, DType::Int64,
                     DType::UInt8}) {
      Tensor t = Tensor::full({1 << 16}, double(c.rank() + 1), dt, d);
      c.all_reduce(t, dist::ReduceOp::Sum, "nccl sum");
      const double expected = double(c.size() * (c.size() + 1) / 2);
      const std::vector<double> v = t.to(DType::Float64).to(Device::cpu()).to_vector<double>();
      for (double x : v)
        if (x != expected) {
          fmt::print(stderr, "dist_nccl: rank {}: {} sum {} != {}\n", c.rank(), dt, x, expected);
          ++failures;
          break;
        }
    }
    Tensor m = Tensor::full({1000}, double(2 * c.rank()), DType::Float32, d);
    c.all_reduce(m, dist::ReduceOp::Mean, "nccl mean");
    if (m.to(Device::cpu()).to_vector<float>()[999] != float(c.size() - 1)) ++failures;
    Tensor b = Tensor::full({77}, double(c.rank() + 5), DType::Float64, d);
    c.broadcast(b, 1 % c.size(), "nccl broadcast");
    if (b.to(Device::cpu()).to_vector<double>()[0] != double(1 % c.size() + 5)) ++failures;
    Tensor e = Tensor::zeros({0}, DType::Float32, d);
    c.all_reduce(e, dist::ReduceOp::Sum, "nccl empty");
    fmt::print("dist_nccl: rank {} of {} on {}: {}\n", c.rank(), c.size(), d, failures ? "FAILED" : "passed");
    c.shutdown();
    return failures ? 1 : 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "dist_nccl: {}\n", e.what());
    return 1;
  }
}
