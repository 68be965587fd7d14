// CPU launcher of NMS (include/drcnn/ops/nms.h, bodies in ops/detail/nms_body.h).
// Tests: tests/ops/test_nms.cpp (vs tests/reference/nms_ref.h), tests/cuda/test_cuda_nms.cpp.
//
// The 64-bit mask tiles of the CUDA kernel, computed lazily: the greedy sweep walks the row
// blocks in score order; within a block it resolves the rows one by one with their diagonal
// word, and only the rows it keeps compute their words against the later column blocks (in
// parallel over column blocks, OpenMP), OR-ing them into `removed`. A removed row never
// suppresses anything in greedy NMS, so skipping its words gives exactly the keep list of the
// full mask (the CUDA path), with the work of torchvision's loop (kept rows x later boxes),
// vectorised: the boxes are sorted into SoA arrays padded to a multiple of 64, and each word
// is nms_mask_word (8 float IoUs per AVX2 instruction). A column block whose 64 bits are all
// removed already is skipped (OR-ing into it changes nothing). Every word is a pure function
// of its row and block, and each block's `removed` word is owned by one thread, so the result
// does not depend on the thread count.
#include <algorithm>
#include <vector>

#include "drcnn/core/parallel_cpu.h"
#include "drcnn/ops/detail/nms_body.h"
#include "cpu_features.h"

namespace drcnn::ops::cpu {
namespace {
using detail::kNmsBlock;

/// Sorted boxes in SoA layout, each array padded with zero boxes to a multiple of 64.
template <typename T>
struct Soa {
  std::vector<T> data;  // [4, stride]
  int64_t stride = 0;
  const T* x1() const { return data.data(); }
  detail::NmsColumns<T> block(int64_t cb) const {
    const T* d = data.data() + cb * kNmsBlock;
    return {d, d + stride, d + 2 * stride, d + 3 * stride};
  }
  void row(int64_t i, T* p) const {
    for (int c = 0; c < 4; ++c) p[c] = data[size_t(c * stride + i)];
  }
};

/// w | the words of rows[0..nk) against column block cb (bits from `begin`), stopping once
/// every bit of `full` is set. Compiled twice: for AVX2 and for the baseline ISA.
template <typename T>
[[gnu::always_inline]] inline uint64_t or_words_impl(uint64_t w, uint64_t full, const Soa<T>& s, const int64_t* rows,
                                                     int nk, int64_t cb, int begin, int end, T thr) {
  const detail::NmsColumns<T> cols = s.block(cb);
  for (int k = 0; k < nk && (w & full) != full; ++k) {
    T p[4];
    s.row(rows[k], p);
    w |= detail::nms_mask_word(p, cols, begin, end, thr);
  }
  return w;
}

template <typename T>
uint64_t or_words_base(uint64_t w, uint64_t full, const Soa<T>& s, const int64_t* rows, int nk, int64_t cb, int begin,
                       int end, T thr) {
  return or_words_impl(w, full, s, rows, nk, cb, begin, end, thr);
}

#if defined(__x86_64__) && defined(__GNUC__)
template <typename T>
[[gnu::target("avx2")]] uint64_t or_words_avx2(uint64_t w, uint64_t full, const Soa<T>& s, const int64_t* rows, int nk,
                                                int64_t cb, int begin, int end, T thr) {
  return or_words_impl(w, full, s, rows, nk, cb, begin, end, thr);
}
#endif

template <typename T>
uint64_t or_words(uint64_t w, uint64_t full, const Soa<T>& s, const int64_t* rows, int nk, int64_t cb, int begin,
                  int end, T thr) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (cpu_supports_avx2()) return or_words_avx2(w, full, s, rows, nk, cb, begin, end, thr);
#endif
  return or_words_base(w, full, s, rows, nk, cb, begin, end, thr);
}

/// Below this many box pairs (~0.3 ms on one core) a column sweep runs on the calling thread:
/// waking a second thread can cost more than that on a busy machine.
constexpr int64_t kParallelPairs = int64_t(1) << 20;
/// Row blocks resolved together (see run()).
constexpr int64_t kGroup = 8;

template <typename T>
void run(const NmsLaunch& l) {
  const int64_t n = l.n;
  const T thr = T(l.threshold);
  const int64_t nb = (n + kNmsBlock - 1) / kNmsBlock;
  Soa<T> s;
  s.stride = nb * kNmsBlock;
  s.data.assign(size_t(4 * s.stride), T(0));
  parallel_for_cpu(n, detail::NmsGatherBody<T>{static_cast<const T*>(l.boxes), l.order, s.data.data(), s.stride});

  // Bits of rows that exist; padding rows count as removed from the start.
  std::vector<uint64_t> full(size_t(nb), ~uint64_t(0));
  if (n % kNmsBlock) full.back() = detail::nms_bit_range(0, int(n % kNmsBlock));
  std::vector<uint64_t> removed(static_cast<size_t>(nb), 0);
  for (int64_t b = 0; b < nb; ++b) removed[size_t(b)] = ~full[size_t(b)];

  // Row blocks are resolved in groups of kGroup: a kept row ORs its words into the rest of
  // its group on this thread, and the group's kept rows then OR into the later blocks in one
  // parallel loop (one OpenMP region per group rather than per block: fewer barriers).
  int64_t count = 0;
  std::vector<int64_t> kept;
  for (int64_t rb0 = 0; rb0 < nb && count < l.capacity; rb0 += kGroup) {
    const int64_t rb1 = std::min(nb, rb0 + kGroup);
    kept.clear();
    for (int64_t rb = rb0; rb < rb1 && count < l.capacity; ++rb) {
      const int rows = int(std::min<int64_t>(kNmsBlock, n - rb * kNmsBlock));
      for (int ib = 0; ib < rows && count < l.capacity; ++ib) {
        if ((removed[size_t(rb)] >> ib) & 1) continue;
        const int64_t i = rb * kNmsBlock + ib;
        l.keep[count++] = l.order[i];
        kept.push_back(i);
        removed[size_t(rb)] = or_words(removed[size_t(rb)], full[size_t(rb)], s, &i, 1, rb, ib + 1, rows, thr);
        for (int64_t cb = rb + 1; cb < rb1; ++cb)
          if (removed[size_t(cb)] != ~uint64_t(0))
            removed[size_t(cb)] = or_words(removed[size_t(cb)], ~uint64_t(0), s, &i, 1, cb, 0, kNmsBlock, thr);
      }
    }
    const int64_t later = nb - rb1;
    const int nk = int(kept.size());
    if (nk == 0 || later == 0 || count == l.capacity) continue;
    const int64_t grain = std::max<int64_t>(1, kParallelPairs / (int64_t(nk) * kNmsBlock));
    parallel_for_cpu(
        later,
        [&](int64_t k) {
          const size_t b = size_t(rb1 + k);
          if (removed[b] == ~uint64_t(0)) return;
          removed[b] = or_words(removed[b], ~uint64_t(0), s, kept.data(), nk, rb1 + k, 0, kNmsBlock, thr);
        },
        grain);
  }
  *l.count = count;
  if (l.pad)
    for (int64_t k = count; k < l.capacity; ++k) l.keep[k] = -1;
}
}  // namespace

void nms(DType dtype, const NmsLaunch& l) {
  dispatch_floating(dtype, "nms", [&](auto tag) { run<typename decltype(tag)::type>(l); });
}
}  // namespace drcnn::ops::cpu
