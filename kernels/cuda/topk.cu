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
// Before those, the partial top-k, when there are kFewSegments segments or fewer and k is at
// most a quarter of the longest (the RPN's 2000 of ~200k per level; CUB 13 has no top-k): a
// radix select over all segments at once (8-bit digits, per-segment shared-memory histograms,
// the shared bodies of ops/detail/topk_body.h) finds each segment's k-th key, the survivors are
// compacted in index order (scan + DeviceSelect), and only those are sorted, by key and then
// stably by segment, and scattered to where the gather reads them. About 30 launches whatever
// the segment count; the thresholds are a guess until measured on a GPU.
// Covered by tests/ops/test_topk.cpp (same bodies, CPU) and tests/cuda/test_cuda_topk.cpp
// (every strategy: CPU == CUDA exactly).
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>
#include <cub/device/device_segmented_radix_sort.cuh>
#include <cub/device/device_select.cuh>
#include <thrust/iterator/counting_iterator.h>

#include <algorithm>
#include <climits>

#include "cuda/launch.cuh"
#include "drcnn/core/storage.h"
#include "drcnn/ops/detail/topk_body.h"

namespace drcnn::ops::cuda {
namespace {
constexpr int64_t kFewSegments = 64, kLargeSegment = 8192;
constexpr int64_t kPartialRatio = 4;  // radix select when k <= len / 4

// Segment of each key-sorted position (the shared binary search).
struct SegmentOfPosition {
  const int64_t* offsets;
  const int64_t* positions;
  uint32_t* segment;
  int64_t segments;
  DRCNN_HD void operator()(int64_t i) const { segment[i] = uint32_t(detail::segment_of(offsets, segments, positions[i])); }
};

// Start of each segment's survivors in the compacted array: sum of min(k, len) before it
// (one thread per entry; S <= kFewSegments, so the quadratic sum is nothing).
struct CompactOffsets {
  const int64_t* offsets;
  int64_t* compact;  // [S + 1]
  int64_t k;
  DRCNN_HD void operator()(int64_t s) const {
    int64_t c = 0;
    for (int64_t t = 0; t < s; ++t) c += hd::min(k, offsets[t + 1] - offsets[t]);
    compact[s] = c;
  }
};

// order[offsets[s] + j] = sorted[compact[s] + j]: survivors back where the gather reads them.
struct ScatterSurvivors {
  const int64_t* offsets;
  const int64_t* compact;
  const int64_t* sorted;
  int64_t* order;
  int64_t segments;
  DRCNN_HD void operator()(int64_t c) const {
    const int64_t s = detail::segment_of(compact, segments, c);
    order[offsets[s] + (c - compact[s])] = sorted[c];
  }
};

// Histogram of the digit at `shift` over the keys of segment blockIdx.y that match its
// state's prefix: a 256-bin shared-memory histogram per block (integer atomics: the counts,
// hence the choices, do not depend on the order), added to the segment's global bins.
template <typename K>
__global__ void radix_select_histogram(const K* keys, const int64_t* offsets, const detail::RadixSelectState<K>* st,
                                       int shift, uint32_t* hist) {
  __shared__ uint32_t local[256];
  const int64_t seg = blockIdx.y;
  const detail::RadixSelectState<K> state = st[seg];
  if (state.remaining <= 0) return;  // an empty segment (the whole block agrees)
  for (int b = threadIdx.x; b < 256; b += blockDim.x) local[b] = 0;
  __syncthreads();
  const int64_t begin = offsets[seg], end = offsets[seg + 1];
  const int64_t step = int64_t(blockDim.x) * gridDim.x;
  for (int64_t i = begin + int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < end; i += step) {
    const K key = keys[i];
    if (detail::radix_matches(key, state)) atomicAdd(&local[detail::radix_digit(key, shift)], 1u);
  }
  __syncthreads();
  for (int b = threadIdx.x; b < 256; b += blockDim.x) {
    if (local[b] != 0) atomicAdd(&hist[seg * 256 + b], local[b]);
  }
}

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
    // Stable device-wide sort of `count` (key, position) pairs on bits [0, end_bit).
    auto sort_count = [&](int64_t count, const auto* kin, auto* kout, const int64_t* vin, int64_t* vout,
                          int end_bit) {
      size_t temp_bytes = 0;
      DRCNN_CUDA_CHECK(
          cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, kin, kout, vin, vout, int(count), 0, end_bit, stream));
      ScratchBuffer<uint8_t> temp(int64_t(temp_bytes) + 1, dev, s);
      DRCNN_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp.data(), temp_bytes, kin, kout, vin, vout, int(count), 0,
                                                       end_bit, stream));
    };
    auto sort_pairs = [&](const auto* kin, auto* kout, const int64_t* vin, int64_t* vout, int end_bit) {
      sort_count(n, kin, kout, vin, vout, end_bit);
    };
    constexpr int kKeyBits = int(sizeof(K) * 8);
    int64_t longest = 0;
    if (l.host_offsets) {
      for (int64_t i = 0; i < l.segments; ++i) longest = std::max(longest, l.host_offsets[i + 1] - l.host_offsets[i]);
    }
    if (l.host_offsets && l.segments <= kFewSegments && longest >= kLargeSegment && l.k * kPartialRatio <= longest) {
      const int64_t S = l.segments;
      int64_t survivors = 0;  // sum of min(k, len), known on the host
      for (int64_t i = 0; i < S; ++i) survivors += std::min(l.k, l.host_offsets[i + 1] - l.host_offsets[i]);
      using State = detail::RadixSelectState<K>;
      ScratchBuffer<State> state(S, dev, s);
      ScratchBuffer<uint32_t> hist(S * 256, dev, s);
      launch(S, detail::RadixSelectInitBody<K>{l.offsets, state.data(), l.k});
      constexpr int kThreads = 256;
      const dim3 grid(unsigned(std::min<int64_t>((longest + 4 * kThreads - 1) / (4 * kThreads), 512)), unsigned(S));
      for (int shift = kKeyBits - 8; shift >= 0; shift -= 8) {
        DRCNN_CUDA_CHECK(cudaMemsetAsync(hist.data(), 0, size_t(S) * 256 * sizeof(uint32_t), stream));
        radix_select_histogram<K><<<grid, kThreads, 0, stream>>>(k_in, l.offsets, state.data(), shift, hist.data());
        DRCNN_CUDA_CHECK(cudaGetLastError());
        launch(S, detail::RadixSelectStepBody<K>{hist.data(), state.data(), shift});
      }
      ScratchBuffer<uint32_t> equal(n, dev, s), rank(n, dev, s);
      ScratchBuffer<uint8_t> keep(n, dev, s);
      launch(n, detail::RadixSelectEqualBody<K>{k_in, l.offsets, S, state.data(), equal.data()});
      size_t scan_bytes = 0;
      DRCNN_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(nullptr, scan_bytes, equal.data(), rank.data(), int(n), stream));
      {
        ScratchBuffer<uint8_t> temp(int64_t(scan_bytes) + 1, dev, s);
        DRCNN_CUDA_CHECK(
            cub::DeviceScan::ExclusiveSum(temp.data(), scan_bytes, equal.data(), rank.data(), int(n), stream));
      }
      launch(n, detail::RadixSelectFlagBody<K>{k_in, l.offsets, S, rank.data(), state.data(), keep.data()});
      // Exactly `survivors` kept, compacted in index order (grouped by segment).
      ScratchBuffer<K> kept_keys(survivors, dev, s);
      ScratchBuffer<int64_t> kept_pos(survivors, dev, s), by_key(survivors, dev, s), sorted(survivors, dev, s);
      ScratchBuffer<int> selected(1, dev, s);
      auto select = [&](auto in, auto out) {
        size_t bytes = 0;
        DRCNN_CUDA_CHECK(
            cub::DeviceSelect::Flagged(nullptr, bytes, in, keep.data(), out, selected.data(), int(n), stream));
        ScratchBuffer<uint8_t> temp(int64_t(bytes) + 1, dev, s);
        DRCNN_CUDA_CHECK(
            cub::DeviceSelect::Flagged(temp.data(), bytes, in, keep.data(), out, selected.data(), int(n), stream));
      };
      select(k_in, kept_keys.data());
      select(thrust::counting_iterator<int64_t>(0), kept_pos.data());
      // Stably by key, then stably by segment: each segment's survivors in (key, index) order.
      const int64_t m = survivors;
      auto sort_m = [&](const auto* kin, auto* kout, const int64_t* vin, int64_t* vout, int end_bit) {
        sort_count(m, kin, kout, vin, vout, end_bit);
      };
      ScratchBuffer<K> keys_sorted(m, dev, s);
      sort_m(kept_keys.data(), keys_sorted.data(), kept_pos.data(), by_key.data(), kKeyBits);
      ScratchBuffer<uint32_t> seg(m, dev, s), seg_sorted(m, dev, s);
      launch(m, SegmentOfPosition{l.offsets, by_key.data(), seg.data(), S});
      sort_m(seg.data(), seg_sorted.data(), by_key.data(), sorted.data(), bits_for(S));
      ScratchBuffer<int64_t> compact(S + 1, dev, s);
      launch(S + 1, CompactOffsets{l.offsets, compact.data(), l.k});
      launch(m, ScatterSurvivors{l.offsets, compact.data(), sorted.data(), order.data(), S});
    } else if (l.segments == 1) {
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
