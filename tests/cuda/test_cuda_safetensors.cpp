// safetensors on CUDA: loading onto cuda:0 gives the CPU load's bytes, and saving CUDA tensors
// writes the same file as saving their CPU copies. Runs only where a CUDA device exists;
// elsewhere the test main exits with 77 and ctest reports the tests skipped.
// Comparisons are exact: the data is copied, never computed.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/device_compare.h"
#include "common/golden.h"
#include "drcnn/io/safetensors.h"

using drcnn::Device;
using drcnn::DType;
using drcnn::Shape;
using drcnn::Tensor;
namespace fs = std::filesystem;

namespace {
std::string read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}
}  // namespace

TEST_CASE("cuda/safetensors: load onto the GPU and save from it", "[cuda][io][safetensors]") {
  const Device gpu = Device::cuda(0);
  const auto cpu = drcnn::test::load_golden("safetensors/official_small");
  const auto dev = drcnn::test::load_golden("safetensors/official_small", gpu);
  REQUIRE(dev.file.tensors.size() == cpu.file.tensors.size());
  CHECK(dev.file.metadata == cpu.file.metadata);
  for (const auto& [name, t] : cpu.file.tensors) {
    INFO("tensor " << name);
    const Tensor& g = dev[name];
    REQUIRE(g.device() == gpu);
    CHECK(g.is_contiguous());
    // to_vector<double> cannot tell NaN payloads or -0.0 apart: compare the raw bytes too.
    drcnn::test::require_device_equal(g, t);
    const Tensor back = g.to(Device::cpu());
    const size_t bytes = size_t(t.numel()) * t.element_size();
    CHECK(std::string(static_cast<const char*>(back.data_ptr()), bytes) ==
          std::string(static_cast<const char*>(t.data_ptr()), bytes));
  }

  // Saving the GPU tensors (one strided) writes what saving their CPU copies writes.
  const fs::path dir = fs::temp_directory_path() / ("drcnn_st_cuda_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto on_gpu = dev.file.tensors;
  auto on_cpu = cpu.file.tensors;
  on_gpu["strided"] = Tensor::arange(12, DType::Float32, gpu).reshape(Shape{3, 4}).transpose(0, 1);
  on_cpu["strided"] = on_gpu["strided"].to(Device::cpu());
  drcnn::io::save_safetensors(dir / "gpu.safetensors", on_gpu, dev.file.metadata);
  drcnn::io::save_safetensors(dir / "cpu.safetensors", on_cpu, cpu.file.metadata);
  const std::string a = read_bytes(dir / "gpu.safetensors"), b = read_bytes(dir / "cpu.safetensors");
  fs::remove_all(dir);
  CHECK(a == b);
}
