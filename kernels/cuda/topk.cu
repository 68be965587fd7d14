// CUDA segmented top-k: the shared key transform (ops/detail/topk_body.h) maps scores to
// unsigned keys whose ascending order is the wanted order (descending score, NaN last), CUB's
// stable segmented radix sort sorts (key, position) pairs per segment, and the shared gather
// body takes the first k of each segment. Stability over index-ordered input gives ties by
// lower index, the same order as the CPU's (key, index) comparison. Temporaries come from
// drcnn's caching allocator. Covered by tests/ops/test_topk.cpp (same bodies, CPU) and
// tests/cuda/test_cuda_topk.cpp (CPU == CUDA exactly).
//
// Note: CUB's segmented radix sort gives each segment one thread block; with the RPN's few,
// large segments (2 images x 5 levels, up to ~200k scores) a global sort of (segment, key)
// composite keys would use the GPU better. Kept simple until a benchmark says otherwise.
#include <cub/device/device_segmented_radix_sort.cuh>

#include <climits>

#include "cuda/launch.cuh"
#include "drcnn/core/storage.h"
#include "drcnn/ops/detail/topk_body.h"

namespace drcnn::ops::cuda {

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
    size_t temp_bytes = 0;
    auto sort = [&](void* temp) {
      DRCNN_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairs(
          temp, temp_bytes, k_in, k_out, positions.data(), order.data(), int(n), int(l.segments),
          l.offsets, l.offsets + 1, 0, int(sizeof(K) * 8), stream));
    };
    sort(nullptr);  // size query
    ScratchBuffer<uint8_t> temp(int64_t(temp_bytes) + 1, dev, s);
    sort(temp.data());
#if DRCNN_SYNC_DEBUG
    DRCNN_CUDA_CHECK(cudaStreamSynchronize(stream));  // CUB's own launches are not covered by parallel_for_cuda
#endif
    detail::run_topk_gather<T>(l, order.data(), launch);
  });
}
}  // namespace drcnn::ops::cuda
