// DataLoader: identical batches for 0, 1 and 3 workers under random sleeps, shutdown mid-epoch,
// error propagation with the image path, corrupt-image skipping (injected and a real garbage
// file through read_image), the consecutive-failure limit, stats.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include <unistd.h>

#include "datasets/memory_dataset.h"
#include "drcnn/core/error.h"
#include "drcnn/data/coco.h"
#include "drcnn/data/loader.h"
#include "drcnn/data/shapes.h"

using namespace drcnn;
using namespace drcnn::data;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

/// n records "mem://i", sizes alternating wide/tall and varied, one or two boxes each.
drcnn::test::MemoryDataset make_dataset(int n, int max_sleep_us = 0) {
  drcnn::test::MemoryDataset d;
  d.max_sleep_us = max_sleep_us;
  for (int i = 0; i < n; ++i) {
    DetectionRecord r;
    r.image_id = 100 + i;
    r.image_path = "mem://" + std::to_string(i);
    const bool wide = (i * 7) % 3 != 0;
    r.width = wide ? 40 + i : 30;
    r.height = wide ? 30 : 40 + i;
    r.boxes = {{1.0f + float(i % 5), 2.0f, 20.0f, 25.0f}};
    r.labels = {i % 3};
    r.ignore = {0};
    if (i % 2) {
      r.boxes.push_back({5, 5, 9, 11});
      r.labels.push_back(2);
      r.ignore.push_back(1);
    }
    d.records.push_back(r);
  }
  return d;
}

Image read_memory(const DetectionRecord& r) {
  return drcnn::test::hashed_image(r.width, r.height, uint32_t(r.image_id));
}

Pipeline small_train_pipeline() {
  return train_pipeline(ResizeOptions::multi_scale(64, {32, 40, 48}), 0.5);
}

/// Everything a batch holds, flattened for equality checks.
struct Flat {
  std::vector<int64_t> indices;
  std::vector<float> pixels, boxes;
  std::vector<int64_t> labels, sizes;
  std::vector<int> flags;
  bool operator==(const Flat&) const = default;
};

std::vector<Flat> run_epoch(const DetectionDataset& d, const GroupSampler& sampler, int workers, uint64_t epoch,
                            int prefetch = 2) {
  LoaderOptions o;
  o.batch_size = sampler.options().batch_size;
  o.num_workers = workers;
  o.prefetch_batches = prefetch;
  o.seed = 11;
  o.read = read_memory;
  DataLoader loader(d, sampler, small_train_pipeline(), o);
  loader.start_epoch(epoch);
  std::vector<Flat> out;
  Batch b;
  while (loader.next(b)) {
    Flat f;
    f.indices = b.indices;
    f.pixels = b.images.tensor().to_vector<float>();
    for (const auto& s : b.images.image_sizes()) {
      f.sizes.push_back(s.height);
      f.sizes.push_back(s.width);
    }
    for (const auto& t : b.targets) {
      const auto bx = t.boxes.tensor().to_vector<float>();
      f.boxes.insert(f.boxes.end(), bx.begin(), bx.end());
      const auto lb = t.labels.to_vector<int64_t>();
      f.labels.insert(f.labels.end(), lb.begin(), lb.end());
      for (int v : t.ignore.to_vector<int>()) f.flags.push_back(v);
    }
    for (const auto& m : b.metas) {
      f.flags.push_back(m.flipped);
      f.flags.push_back(m.scale_index);
    }
    CHECK(b.data_time_seconds >= 0.0);
    out.push_back(std::move(f));
  }
  CHECK(loader.stats().batches == int64_t(out.size()));
  CHECK(loader.stats().skipped_images == 0);
  return out;
}

fs::path temp_dir(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / ("drcnn_test_loader_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

}  // namespace

TEST_CASE("DataLoader gives the same batches for 0, 1 and 3 workers", "[data][loader]") {
  // record() sleeps 0..3 ms pseudo-randomly (a function of a global call counter, so the timing
  // differs between runs and worker counts): order and content must not.
  const auto d = make_dataset(13, 3000);
  GroupSamplerOptions so;
  so.batch_size = 2;
  so.seed = 11;
  const GroupSampler sampler(d, so);
  const auto inline_run = run_epoch(d, sampler, 0, 1);
  REQUIRE(int64_t(inline_run.size()) == sampler.num_batches());
  // Batches are the sampler's order.
  std::vector<int64_t> joined;
  for (const auto& f : inline_run) joined.insert(joined.end(), f.indices.begin(), f.indices.end());
  CHECK(joined == sampler.indices(1));
  // Some flipped, some not; more than one scale drawn (the streams are live).
  std::set<int> flips, scales;
  for (const auto& f : inline_run)
    for (std::size_t i = f.flags.size() - 2 * f.indices.size(); i < f.flags.size(); i += 2) {
      flips.insert(f.flags[i]);
      scales.insert(f.flags[i + 1]);
    }
  CHECK(flips.size() == 2);
  CHECK(scales.size() >= 2);
  CHECK(run_epoch(d, sampler, 1, 1) == inline_run);
  CHECK(run_epoch(d, sampler, 3, 1) == inline_run);
  CHECK(run_epoch(d, sampler, 3, 1, 1) == inline_run);
  // Another epoch: another order and other draws.
  CHECK(run_epoch(d, sampler, 3, 2) != inline_run);
}

TEST_CASE("DataLoader resumes an epoch at a batch with the same batches", "[data][loader]") {
  // What exact resume needs: start_epoch(e, b) delivers batches b.. of epoch e exactly as the
  // uninterrupted epoch does (same indices, pixels, boxes, flips and scales), for any workers.
  const auto d = make_dataset(13, 1000);
  GroupSamplerOptions so;
  so.batch_size = 2;
  so.seed = 11;
  const GroupSampler sampler(d, so);
  const auto full = run_epoch(d, sampler, 0, 2);
  REQUIRE(full.size() >= 4);
  for (const int workers : {0, 2}) {
    LoaderOptions o;
    o.batch_size = 2;
    o.num_workers = workers;
    o.seed = 11;
    o.read = read_memory;
    DataLoader loader(d, sampler, small_train_pipeline(), o);
    loader.start_epoch(2, 3);
    CHECK(loader.epoch() == 2);
    CHECK(loader.next_batch() == 3);
    Batch b;
    for (std::size_t k = 3; k < full.size(); ++k) {
      REQUIRE(loader.next(b));
      CHECK(b.batch_index == int64_t(k));
      CHECK(b.indices == full[k].indices);
      CHECK(b.images.tensor().to_vector<float>() == full[k].pixels);
      CHECK(loader.next_batch() == int64_t(k) + 1);
    }
    CHECK_FALSE(loader.next(b));
    // Starting at the end gives an empty epoch; past the end is an error naming the bounds.
    loader.start_epoch(2, loader.num_batches());
    CHECK_FALSE(loader.next(b));
    CHECK_THROWS_WITH(loader.start_epoch(2, loader.num_batches() + 1), Contains("first_batch") && Contains("batches"));
    CHECK_THROWS_WITH(loader.start_epoch(2, -1), Contains("first_batch -1 is outside"));
  }
}

TEST_CASE("DataLoader batches hold padded images, targets and metas", "[data][loader]") {
  const auto d = make_dataset(4);
  LoaderOptions o;
  o.batch_size = 3;
  o.num_workers = 2;
  o.read = read_memory;
  // Evaluation order with a short last batch; no flip; one scale.
  DataLoader loader(d, sequential_indices(4), test_pipeline(ResizeOptions::multi_scale(64, {32})), o);
  CHECK(loader.num_batches() == 2);
  Batch b;
  REQUIRE(loader.next(b));  // starts epoch 0 implicitly
  CHECK(b.batch_index == 0);
  CHECK(b.indices == std::vector<int64_t>{0, 1, 2});
  // Image 0 is 30x40 (w x h): s = min(64/40, 32/30) = 1.0667 -> 32 x int(42.67 + 0.5) = 43;
  // image 1 is 41x30: s = min(64/41, 32/30) = 1.0667 -> int(43.73 + 0.5) = 44 x 32.
  CHECK(b.images.image_sizes()[0] == ImageSize{43, 32});
  CHECK(b.images.image_sizes()[1] == ImageSize{32, 44});
  CHECK(b.images.tensor().size(0) == 3);
  CHECK(b.images.padded_size().height % 32 == 0);
  CHECK(b.images.padded_size().width % 32 == 0);
  REQUIRE(b.targets.size() == 3);
  CHECK(b.targets[1].boxes.size() == 2);
  CHECK(b.targets[1].labels.to_vector<int64_t>() == std::vector<int64_t>{1, 2});
  CHECK(b.targets[1].ignore.to_vector<int>() == std::vector<int>{0, 1});
  CHECK(b.targets[1].image_size == ImageSize{32, 44});
  CHECK(b.metas[2].image_id == 102);
  CHECK(b.metas[2].image_path == "mem://2");
  CHECK_FALSE(b.metas[2].flipped);
  REQUIRE(loader.next(b));
  CHECK(b.indices == std::vector<int64_t>{3});
  CHECK_FALSE(loader.next(b));
  CHECK(loader.stats().batches == 2);
  CHECK(loader.stats().samples == 4);
  CHECK(loader.stats().data_time_seconds >= 0.0);
}

TEST_CASE("DataLoader shuts down mid-epoch and restarts", "[data][loader]") {
  const auto d = make_dataset(20, 2000);
  GroupSamplerOptions so;
  so.batch_size = 2;
  const GroupSampler sampler(d, so);
  LoaderOptions o;
  o.num_workers = 3;
  o.prefetch_batches = 4;
  o.read = read_memory;
  Batch first;
  {
    DataLoader loader(d, sampler, small_train_pipeline(), o);
    REQUIRE(loader.next(first));
    // Leaving the scope with workers busy and batches queued: the destructor joins them.
  }
  DataLoader loader(d, sampler, small_train_pipeline(), o);
  Batch b;
  REQUIRE(loader.next(b));
  REQUIRE(loader.next(b));
  loader.stop();
  CHECK_FALSE(loader.next(b));  // the epoch ended with stop()
  loader.stop();                // idempotent
  loader.start_epoch(0);
  REQUIRE(loader.next(b));
  CHECK(b.indices == first.indices);
  CHECK(b.images.tensor().to_vector<float>() == first.images.tensor().to_vector<float>());
}

TEST_CASE("DataLoader propagates worker errors with the image path", "[data][loader]") {
  const auto d = make_dataset(9);
  for (int workers : {0, 2}) {
    LoaderOptions o;
    o.batch_size = 2;
    o.num_workers = workers;
    o.skip_corrupt_images = false;  // evaluation: no skipping
    o.read = [](const DetectionRecord& r) -> Image {
      if (r.image_path == "mem://5") DRCNN_FAIL("decode_image: mem://5: not a JPEG or PNG");
      return read_memory(r);
    };
    DataLoader loader(d, sequential_indices(9), test_pipeline(ResizeOptions::multi_scale(64, {32})), o);
    Batch b;
    REQUIRE(loader.next(b));  // 0, 1
    REQUIRE(loader.next(b));  // 2, 3
    CHECK_THROWS_WITH(loader.next(b), Contains("cannot read image mem://5") && Contains("dataset index 5") &&
                                          Contains("not a JPEG or PNG"));
    CHECK_FALSE(loader.next(b));
  }
}

TEST_CASE("DataLoader skips unreadable images deterministically in training", "[data][loader]") {
  const auto d = make_dataset(12);
  GroupSamplerOptions so;
  so.batch_size = 2;
  so.seed = 4;
  const GroupSampler sampler(d, so);
  auto run = [&](int workers) {
    LoaderOptions o;
    o.num_workers = workers;
    o.seed = 4;
    o.print_warnings = false;
    o.read = [](const DetectionRecord& r) -> Image {
      if (r.image_path == "mem://3" || r.image_path == "mem://8") DRCNN_FAIL("decode_image: ", r.image_path, ": corrupt");
      return read_memory(r);
    };
    DataLoader loader(d, sampler, small_train_pipeline(), o);
    std::vector<int64_t> seen;
    Batch b;
    while (loader.next(b)) seen.insert(seen.end(), b.indices.begin(), b.indices.end());
    return std::make_pair(seen, loader.stats());
  };
  const auto [seen0, stats0] = run(0);
  const auto [seen2, stats2] = run(2);
  CHECK(seen0 == seen2);
  CHECK(stats0.warnings == stats2.warnings);
  CHECK(stats0.skipped_images == stats2.skipped_images);
  CHECK(int64_t(seen0.size()) == sampler.num_samples());
  for (int64_t i : seen0) CHECK((i != 3 && i != 8));
  REQUIRE(stats0.skipped_images >= 2);  // both appear in the epoch (coverage), maybe more by replacement
  REQUIRE(!stats0.warnings.empty());
  CHECK_THAT(stats0.warnings[0], Contains("skipped unreadable image mem://") && Contains("corrupt"));
}

TEST_CASE("DataLoader gives up after consecutive unreadable images", "[data][loader]") {
  const auto d = make_dataset(6);
  LoaderOptions o;
  o.batch_size = 2;
  o.num_workers = 1;
  o.max_consecutive_failures = 3;
  o.print_warnings = false;
  o.read = [](const DetectionRecord& r) -> Image { DRCNN_FAIL("decode_image: ", r.image_path, ": truncated"); };
  DataLoader loader(d, sequential_indices(6), small_train_pipeline(), o);
  Batch b;
  CHECK_THROWS_WITH(loader.next(b), Contains("3 consecutive unreadable images") && Contains("mem://0") &&
                                        Contains("truncated"));
  CHECK(loader.stats().skipped_images == 2);  // two replacements before the third failure
  LoaderOptions zero;
  zero.batch_size = 0;
  CHECK_THROWS_WITH(DataLoader(d, sequential_indices(6), small_train_pipeline(), zero),
                    Contains("batch_size must be >= 1"));
  CHECK_THROWS_WITH(DataLoader(d, std::vector<int64_t>{7}, small_train_pipeline(), o), Contains("index 7"));
}

TEST_CASE("DataLoader skips a garbage file read through read_image", "[data][loader]") {
  // Real files: PNGs written with write_png, one garbage file; the default reader (read_image).
  const fs::path dir = temp_dir("corrupt");
  drcnn::test::MemoryDataset d;
  for (int i = 0; i < 5; ++i) {
    DetectionRecord r;
    r.image_id = i;
    r.width = 24 + 2 * i;
    r.height = 20;
    r.image_path = (dir / ("img" + std::to_string(i) + (i == 2 ? ".jpg" : ".png"))).string();
    r.boxes = {{2, 2, 10, 12}};
    r.labels = {1};
    if (i == 2) {
      std::ofstream(r.image_path, std::ios::binary) << "this is not a JPEG file at all";
    } else {
      write_png(r.image_path, drcnn::test::hashed_image(r.width, r.height, uint32_t(i)));
    }
    d.records.push_back(r);
  }
  LoaderOptions o;
  o.batch_size = 1;
  o.num_workers = 2;
  o.print_warnings = false;
  DataLoader loader(d, sequential_indices(5), test_pipeline(ResizeOptions::multi_scale(64, {32})), o);
  std::vector<int64_t> seen;
  Batch b;
  while (loader.next(b)) seen.push_back(b.indices[0]);
  REQUIRE(seen.size() == 5);
  CHECK(seen[2] != 2);
  CHECK(loader.stats().skipped_images == 1);
  REQUIRE(loader.stats().warnings.size() == 1);
  CHECK_THAT(loader.stats().warnings[0], Contains("img2.jpg"));
  // Without skipping, the same file is an error naming it.
  LoaderOptions strict = o;
  strict.skip_corrupt_images = false;
  DataLoader eval(d, sequential_indices(5), test_pipeline(ResizeOptions::multi_scale(64, {32})), strict);
  REQUIRE(eval.next(b));
  REQUIRE(eval.next(b));
  CHECK_THROWS_WITH(eval.next(b), Contains("img2.jpg"));
  fs::remove_all(dir);
}

TEST_CASE("DataLoader over a generated COCO shapes set moves every box with its image", "[data][loader]") {
  // End to end: generate_shapes_dataset (PNG + COCO JSON) -> load_coco -> CocoDataset ->
  // GroupSampler -> DataLoader (2 workers, multi-scale, flip). Every target must be the
  // record's boxes times the meta's float32 factors, mirrored when flipped, clipped.
  const fs::path dir = temp_dir("shapes");
  ShapesOptions so;
  so.width = 64;
  so.height = 48;
  so.train_images = 6;
  so.val_images = 1;
  so.threads = 1;
  generate_shapes_dataset(so, dir);
  const CocoFile file = load_coco(dir / "annotations" / "instances_train.json");
  CocoDatasetOptions co;
  co.image_root = dir / "train";
  co.min_size = 0;
  const CocoDataset dataset(file, co);
  REQUIRE(dataset.size() >= 5);
  GroupSamplerOptions gso;
  gso.batch_size = 2;
  gso.seed = 1;
  const GroupSampler sampler(dataset, gso);
  LoaderOptions o;
  o.num_workers = 2;
  o.seed = 1;
  DataLoader loader(dataset, sampler, train_pipeline(ResizeOptions::multi_scale(128, {64, 80}), 0.5), o);
  Batch b;
  int64_t boxes_checked = 0;
  while (loader.next(b)) {
    for (std::size_t i = 0; i < b.indices.size(); ++i) {
      const DetectionRecord r = dataset.record(std::size_t(b.indices[i]));
      const ImageMeta& m = b.metas[i];
      CHECK(m.image_id == r.image_id);
      CHECK(m.original_width == 64);
      CHECK(m.height == std::array<int32_t, 2>{64, 80}[std::size_t(m.scale_index)]);
      const auto got = b.targets[i].boxes.tensor().to_vector<float>();
      const auto labels = b.targets[i].labels.to_vector<int64_t>();
      REQUIRE(got.size() == r.boxes.size() * 4);  // shapes boxes are inside the image: none dropped
      for (std::size_t k = 0; k < r.boxes.size(); ++k) {
        std::array<float, 4> e = {r.boxes[k][0] * m.scale_w, r.boxes[k][1] * m.scale_h, r.boxes[k][2] * m.scale_w,
                                  r.boxes[k][3] * m.scale_h};
        for (int j = 0; j < 4; ++j) e[std::size_t(j)] = std::clamp(e[std::size_t(j)], 0.0f, float(j % 2 ? m.height : m.width));
        if (m.flipped) e = {float(m.width) - e[2], e[1], float(m.width) - e[0], e[3]};
        for (int j = 0; j < 4; ++j) CHECK(got[k * 4 + std::size_t(j)] == e[std::size_t(j)]);
        CHECK(labels[k] == r.labels[k]);
        ++boxes_checked;
      }
    }
  }
  CHECK(boxes_checked >= 5);
  CHECK(loader.stats().skipped_images == 0);
  fs::remove_all(dir);
}
