// Batches on their way to the GPU (src/engine/batch_stager.h): page-locked staging on a copy
// stream gives the device exactly the loader's bytes, whatever the host does with its tensors
// after stage(); and engine::Trainer on the device, which stages iteration N+1's batch during
// iteration N, trains on the same batches as the CPU (the losses of its first iterations) and
// records the loader position of the batches it trained, not of the one it staged ahead.
// Runs only where a CUDA device exists (the test main exits 77 elsewhere).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>

#include "common/files.h"
#include "common/shapes_set.h"
#include "drcnn/engine/checkpoint.h"
#include "drcnn/engine/trainer.h"
#include "../src/engine/batch_stager.h"

using namespace drcnn;
namespace fs = std::filesystem;

namespace {
const Device kGpu = Device::cuda(0);

data::Batch host_batch(uint64_t seed, int64_t h, int64_t w) {
  Generator g(seed);
  data::Batch b;
  b.images = ImageList::from_images({Tensor::rand({3, h, w}, g), Tensor::rand({3, h - 8, w}, g)}, 32);
  b.targets.emplace_back(ImageSize{h, w}, Boxes(Tensor::rand({3, 4}, g)),
                         Tensor::from_vector(std::vector<int64_t>{0, 1, 2}), Tensor(),
                         Tensor::from_vector(std::vector<uint8_t>{0, 1, 0}).to(DType::Bool));
  b.targets.emplace_back(ImageSize{h - 8, w}, Boxes(Tensor::empty({0, 4})), Tensor::empty({0}, DType::Int64));
  b.batch_index = int64_t(seed);
  return b;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  const Tensor x = a.to(Device::cpu()).contiguous(), y = b.to(Device::cpu()).contiguous();
  return x.dtype() == y.dtype() && x.shape() == y.shape() &&
         std::memcmp(x.data_ptr(), y.data_ptr(), size_t(x.numel()) * dtype_size(x.dtype())) == 0;
}
}  // namespace

TEST_CASE("cuda/batch_stager: the device receives the loader's bytes, staged while the host moves on",
          "[cuda][engine]") {
  engine::BatchStager stager(kGpu);
  const Stream compute = cuda::current_stream(kGpu);
  // Three batches of growing size (the page-locked slots grow), each staged before the previous
  // one is used, as the trainer does.
  for (uint64_t k = 1; k <= 3; ++k) {
    const data::Batch expected = host_batch(k, 64 * int64_t(k), 48 * int64_t(k));
    data::Batch copy = host_batch(k, 64 * int64_t(k), 48 * int64_t(k));
    stager.stage(std::move(copy));
    CHECK_THROWS_WITH(stager.stage(host_batch(9, 32, 32)), Catch::Contains("already staged"));
    const data::Batch got = stager.take(compute);
    CHECK_FALSE(stager.has_staged());
    CHECK(got.batch_index == int64_t(k));
    CHECK(got.images.tensor().device() == kGpu);
    CHECK(got.images.image_sizes() == expected.images.image_sizes());
    CHECK(same_bytes(got.images.tensor(), expected.images.tensor()));
    REQUIRE(got.targets.size() == 2);
    for (size_t i = 0; i < 2; ++i) {
      CHECK(got.targets[i].boxes.tensor().device() == kGpu);
      CHECK(same_bytes(got.targets[i].boxes.tensor(), expected.targets[i].boxes.tensor()));
      CHECK(same_bytes(got.targets[i].labels, expected.targets[i].labels));
      CHECK(got.targets[i].has_ignore() == expected.targets[i].has_ignore());
      if (expected.targets[i].has_ignore()) CHECK(same_bytes(got.targets[i].ignore, expected.targets[i].ignore));
    }
  }
  CHECK_THROWS_WITH(stager.take(compute), Catch::Contains("no batch is staged"));
  CHECK_THROWS_WITH(engine::BatchStager(Device::cpu()), Catch::Contains("expected a CUDA device"));
}

TEST_CASE("cuda/trainer: staged batches train as the CPU's, and checkpoints record the trained batches' position",
          "[cuda][engine]") {
  // Batch 2 over 5 images: the third batch of an epoch has one image, then a new epoch.
  const test::ShapesSet set("cuda_stager", "set", 5);
  const data::CocoDataset& dataset = *set.dataset;
  const int64_t nc = int64_t(dataset.class_names().size());

  const auto options = [&](const fs::path& run, Device d) {
    engine::TrainerOptions o;
    o.run_dir = run;
    o.device = d;
    o.iters = 5;
    o.batch = 2;
    o.lr = 0.001;
    o.warmup = 2;
    o.scale_long = o.scale_short = 64;
    o.workers = 1;
    o.seed = 5;
    o.log_every = 1;
    o.check_every = 1;
    o.checkpoint_every = 1;
    o.keep = 10;
    o.log = [](const std::string&) {};
    return o;
  };
  const fs::path cpu_run = test::fresh_dir("cuda_stager", "cpu"), gpu_run = test::fresh_dir("cuda_stager", "gpu");
  engine::Trainer cpu(models::DetectorConfig::tiny_cpu(nc), dataset, options(cpu_run, Device::cpu()));
  cpu.train();
  engine::Trainer gpu(models::DetectorConfig::tiny_cpu(nc), dataset, options(gpu_run, kGpu));
  gpu.train();
  // Iteration 1 starts from the same weights: its losses differ only by the devices' float32
  // summation orders (cuDNN against oneDNN/im2col; test_cuda_detector.cpp bounds one forward at
  // ~1e-5 relative in float32), far below what a wrong or torn batch would change.
  const auto& rc = cpu.log_records();
  const auto& rg = gpu.log_records();
  REQUIRE(rc.size() == 5);
  REQUIRE(rg.size() == 5);
  for (const auto& [name, v] : rc[0].losses) {
    INFO(name << ": CPU " << v << ", GPU " << rg[0].losses.at(name));
    CHECK(std::fabs(v - rg[0].losses.at(name)) <= 1e-3 * std::max(std::fabs(v), 1e-3));
  }
  // Every checkpoint's loader position (epoch, next batch) is the CPU run's: the batch staged
  // ahead is not counted as trained.
  for (int64_t it = 1; it <= 5; ++it) {
    INFO("iteration " << it);
    const auto a = engine::load_checkpoint(cpu_run / "checkpoints" / engine::checkpoint_file_name(it));
    const auto b = engine::load_checkpoint(gpu_run / "checkpoints" / engine::checkpoint_file_name(it));
    CHECK(a.state.loader_epoch == b.state.loader_epoch);
    CHECK(a.state.loader_next_batch == b.state.loader_next_batch);
  }
  fs::remove_all(cpu_run);
  fs::remove_all(gpu_run);
}
