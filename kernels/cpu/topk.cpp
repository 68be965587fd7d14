// CPU segmented top-k: keys from the shared transform (ops/detail/topk_body.h), then per
// segment (in parallel) nth_element + sort of the first k under the strict total order
// (key, index), which is exactly the stable order CUB's radix sort gives on CUDA; the shared
// gather body writes the padded [S, k] result. Tests: tests/ops/test_topk.cpp.
#include <algorithm>
#include <numeric>
#include <vector>

#include "drcnn/core/parallel_cpu.h"
#include "drcnn/ops/detail/topk_body.h"

namespace drcnn::ops::cpu {

void segment_topk(DType dtype, const SegmentTopKLaunch& l) {
  dispatch_floating(dtype, "segment_topk", [&](auto tag) {
    using T = typename decltype(tag)::type;
    using K = typename detail::TopKKeyType<T>::type;
    auto cpu = [](int64_t n, const auto& body) { parallel_for_cpu(n, body); };
    std::vector<int64_t> order(size_t(l.n));
    if (l.k > 0 && l.n > 0) {
      std::vector<K> keys(size_t(l.n));
      cpu(l.n, detail::TopKKeyBody<T>{static_cast<const T*>(l.scores), keys.data(), nullptr});
      const int64_t* off = l.offsets;
      parallel_for_cpu(
          l.segments,
          [&](int64_t s) {
            const auto first = order.begin() + off[s], last = order.begin() + off[s + 1];
            std::iota(first, last, off[s]);
            const auto before = [&keys](int64_t a, int64_t b) {
              return keys[size_t(a)] < keys[size_t(b)] || (keys[size_t(a)] == keys[size_t(b)] && a < b);
            };
            const auto kth = first + std::min<int64_t>(l.k, last - first);
            if (kth < last) std::nth_element(first, kth, last, before);
            std::sort(first, kth, before);
          },
          1);  // segments are few and large (images x levels): one each per thread
    }
    detail::run_topk_gather<T>(l, order.data(), cpu);
  });
}
}  // namespace drcnn::ops::cpu
