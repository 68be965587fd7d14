// CPU row sort: std::stable_sort of positions per row (rows in parallel). NaN is greater
// than every number, so it comes last ascending and first descending, as torch.sort.
// Tests: tests/ops/test_sort.cpp.
#include <algorithm>
#include <numeric>
#include <vector>

#include "drcnn/core/parallel_cpu.h"
#include "drcnn/ops/detail/math.h"
#include "drcnn/ops/launch.h"

namespace drcnn::ops::cpu {

void sort(DType dtype, const SortLaunch& l) {
  dispatch_arithmetic(dtype, "sort", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* keys = static_cast<const T*>(l.keys);
    T* values = static_cast<T*>(l.values);
    parallel_for_cpu(
        l.rows,
        [&](int64_t r) {
          const T* row = keys + r * l.len;
          std::vector<int64_t> order(static_cast<size_t>(l.len));
          std::iota(order.begin(), order.end(), int64_t(0));
          // Strict weak order with NaN as the greatest value (all NaNs equivalent).
          auto less = [row](int64_t a, int64_t b) {
            const T x = row[a], y = row[b];
            if (hd::isnan(x)) return false;
            if (hd::isnan(y)) return true;
            return x < y;
          };
          if (l.descending) std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return less(b, a); });
          else std::stable_sort(order.begin(), order.end(), less);
          for (int64_t i = 0; i < l.len; ++i) {
            values[r * l.len + i] = row[order[size_t(i)]];
            l.indices[r * l.len + i] = order[size_t(i)];
          }
        },
        // Threads only when the rows together are worth it (n log n work per row).
        l.len > 0 ? std::max<int64_t>(1, kParallelGrain / l.len) : kParallelGrain);
  });
}
}  // namespace drcnn::ops::cpu
