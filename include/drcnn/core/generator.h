// Seeded counter-based random numbers (Philox-4x32-10): element i of a draw depends only on
// (seed, offset + i), so CPU and CUDA produce the same numbers for the same generator state.
#pragma once
#include <cstdint>

namespace drcnn {

/// Generator state: a seed (the Philox key) and an offset (the next unused counter).
/// Each draw of n elements consumes counters [offset, offset + n) and advances offset by n.
/// Plain data: a checkpoint saves and restores it exactly.
struct Generator {
  uint64_t seed = 0;
  uint64_t offset = 0;
  explicit Generator(uint64_t s = 0, uint64_t o = 0) : seed(s), offset(o) {}
  /// Reserves n counters and returns the first.
  uint64_t advance(uint64_t n) {
    const uint64_t first = offset;
    offset += n;
    return first;
  }
};
}  // namespace drcnn
