// CUDA segmented top-k: the shared key transform (ops/detail/topk_body.h) maps scores to
// unsigned keys whose ascending order is the wanted order (descending score, NaN last), a
// stable CUB radix sort orders (key, position) pairs within each segment, and the shared
// gather body takes the first k of each segment. Stability over index-ordered input gives
// ties by lower index, the same order as the CPU's (key, index) comparison. Temporaries come
// from drcnn's caching allocator. Three strategies, as in sort.cu:
//   - one segment: cub::DeviceRadixSort over the whole device;
//   - few large segments (the RPN's 2 images x 5 levels, up to ~200k scores each: kFewSegments
//     or fewer, kLargeSegment or more scores on average): sort (key, position) by key over
//     the whole array, then stably by segment (ceil(log2(S)) bits; the segment of a position
//     found by binary search in the offsets), the two passes of an LSD radix sort;
//   - otherwise cub::DeviceSegmentedRadixSort (one block per segment; fine for many).
// Not done: a partial top-k (radix select of the k-th key, then sorting only the survivors);
// every strategy sorts whole segments.
// Covered by tests/ops/test_topk.cpp (same bodies, CPU) and tests/cuda/test_cuda_topk.cpp
// (every strategy: CPU == CUDA exactly).
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_segmented_radix_sort.cuh>

#include <climits>

#include "cuda/launch.cuh"
#include "drcnn/core/storage.h"
#include "drcnn/ops/detail/topk_body.h"

namespace drcnn::ops::cuda {
namespace {
constexpr int64_t kFewSegments = 64, kLargeSegment = 8192;

// Segment of each key-sorted position: the s with offsets[s] <= p < offsets[s + 1] (binary
// search; offsets[0] == 0 and offsets[S] == n, checked by the dispatcher). Empty segments
// hold no position, so the largest such s is the one.
struct SegmentOfPosition {
  const int64_t* offsets;
  const int64_t* positions;
  uint32_t* segment;
  int64_t segments;
  DRCNN_HD void operator()(int64_t i) const {
    const int64_t p = positions[i];
    int64_t lo = 0, hi = segments;  // answer in [lo, hi)
    while (hi - lo > 1) {
      const int64_t mid = (lo + hi) / 2;
      if (offsets[mid] <= p) lo = mid;
      else hi = mid;
    }
    segment[i] = uint32_t(lo);
  }
};

int bits_for(int64_t count) {
  int b = 1;
  while ((int64_t(1) << b) < count) ++b;
  return b;
}
}  // namespace

void segment_topk(Stream s, DType dtype, const SegmentTopKLaunch& l) {
  DRCNN_CHECK(l.n <= INT_MAX && l.segments <= INT_MAX, "segment_topk: ", l.n, " scores in ", l.segments,
              " segments exceed the CUDA sort's limit of ", INT_MAX);
  const cudaStream_t stream = cuda_detail::to_cuda(s);
  const cuda_detail::CudaLaunch launch{stream};
  int device = 0;
  DRCNN_CUDA_CHECK(cudaGetDevice(&device));
  const Device dev = Device::cuda(device);
  dispatch_floating(dtype, "segment_topk", [&](auto tag) {
    using T = typename decltype(tag)::type;
    using K = typename detail::TopKKeyType<T>::type;
    if (l.k == 0 || l.n == 0) {  // nothing to sort: counts and padding only
      detail::run_topk_gather<T>(l, nullptr, launch);
      return;
    }
    const int64_t n = l.n;
    ScratchBuffer<K> keys(n, dev, s);
    ScratchBuffer<K> sorted_keys(n, dev, s);
    ScratchBuffer<int64_t> positions(n, dev, s);
    ScratchBuffer<int64_t> order(n, dev, s);
    K* k_in = keys.data();
    K* k_out = sorted_keys.data();
    launch(n, detail::TopKKeyBody<T>{static_cast<const T*>(l.scores), k_in, positions.data()});
    auto sort_pairs = [&](const auto* kin, auto* kout, const int64_t* vin, int64_t* vout, int end_bit) {
      size_t temp_bytes = 0;
      DRCNN_CUDA_CHECK(
          cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, kin, kout, vin, vout, int(n), 0, end_bit, stream));
      ScratchBuffer<uint8_t> temp(int64_t(temp_bytes) + 1, dev, s);
      DRCNN_CUDA_CHECK(
          cub::DeviceRadixSort::SortPairs(temp.data(), temp_bytes, kin, kout, vin, vout, int(n), 0, end_bit, stream));
    };
    constexpr int kKeyBits = int(sizeof(K) * 8);
    if (l.segments == 1) {
      sort_pairs(k_in, k_out, positions.data(), order.data(), kKeyBits);
    } else if (l.segments <= kFewSegments && n >= kLargeSegment * l.segments) {
      ScratchBuffer<int64_t> by_key(n, dev, s);
      ScratchBuffer<uint32_t> seg(n, dev, s), sorted_seg(n, dev, s);
      sort_pairs(k_in, k_out, positions.data(), by_key.data(), kKeyBits);
      launch(n, SegmentOfPosition{l.offsets, by_key.data(), seg.data(), l.segments});
      sort_pairs(seg.data(), sorted_seg.data(), by_key.data(), order.data(), bits_for(l.segments));
    } else {
      size_t temp_bytes = 0;
      auto sort = [&](void* temp) {
        DRCNN_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairs(
            temp, temp_bytes, k_in, k_out, positions.data(), order.data(), int(n), int(l.segments), l.offsets,
            l.offsets + 1, 0, kKeyBits, stream));
      };
      sort(nullptr);  // size query
      ScratchBuffer<uint8_t> temp(int64_t(temp_bytes) + 1, dev, s);
      sort(temp.data());
    }
#if DRCNN_SYNC_DEBUG
    DRCNN_CUDA_CHECK(cudaStreamSynchronize(stream));  // CUB's own launches are not covered by parallel_for_cuda
#endif
    detail::run_topk_gather<T>(l, order.data(), launch);
  });
}
}  // namespace drcnn::ops::cuda
