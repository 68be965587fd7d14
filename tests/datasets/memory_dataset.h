// Test helpers for the transforms, sampler and loader tests: 8-bit images filled by a formula
// and an in-memory DetectionDataset (optionally slow, with pseudo-random sleeps in record()).
#pragma once
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "drcnn/data/dataset.h"
#include "drcnn/data/image.h"

namespace drcnn::test {

/// An image whose pixel (y, x) channel c is value(y, x, c) (fields filled directly, so the
/// tests do not depend on image_io.cpp).
inline data::Image make_image(int32_t width, int32_t height,
                              const std::function<uint8_t(int32_t, int32_t, int32_t)>& value) {
  data::Image img;
  img.width = width;
  img.height = height;
  img.pixels.resize(std::size_t(width) * std::size_t(height) * 3);
  for (int32_t y = 0; y < height; ++y)
    for (int32_t x = 0; x < width; ++x)
      for (int32_t c = 0; c < 3; ++c) img.pixels[(std::size_t(y) * std::size_t(width) + std::size_t(x)) * 3 + std::size_t(c)] = value(y, x, c);
  return img;
}

/// A deterministic "photo": every pixel a hash of (y, x, c, salt).
inline data::Image hashed_image(int32_t width, int32_t height, uint32_t salt) {
  return make_image(width, height, [salt](int32_t y, int32_t x, int32_t c) {
    uint32_t h = uint32_t(y) * 73856093u ^ uint32_t(x) * 19349663u ^ uint32_t(c) * 83492791u ^ salt * 2654435761u;
    h ^= h >> 13;
    h *= 0x5bd1e995u;
    h ^= h >> 15;
    return uint8_t(h & 0xff);
  });
}

/// Records held in memory; record() optionally sleeps a pseudo-random 0..max_sleep_us
/// microseconds (a function of the index and a call counter) to shuffle worker timing.
class MemoryDataset : public data::DetectionDataset {
 public:
  std::vector<data::DetectionRecord> records;
  std::vector<std::string> names{"a", "b", "c"};
  int max_sleep_us = 0;

  MemoryDataset() = default;
  MemoryDataset(const MemoryDataset& o) : records(o.records), names(o.names), max_sleep_us(o.max_sleep_us) {}

  std::size_t size() const override { return records.size(); }
  data::DetectionRecord record(std::size_t index) const override {
    if (max_sleep_us > 0) {
      uint64_t h = (uint64_t(index) + 1) * 0x9E3779B97F4A7C15ull ^ uint64_t(m_calls++) * 0xBF58476D1CE4E5B9ull;
      h ^= h >> 29;
      std::this_thread::sleep_for(std::chrono::microseconds(int64_t(h % uint64_t(max_sleep_us))));
    }
    return records.at(index);
  }
  std::array<int32_t, 2> image_size(std::size_t index) const override {
    return {records.at(index).width, records.at(index).height};
  }
  const std::vector<std::string>& class_names() const override { return names; }

 private:
  mutable std::atomic<uint64_t> m_calls{0};
};

}  // namespace drcnn::test
