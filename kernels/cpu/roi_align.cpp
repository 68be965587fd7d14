// CPU launcher of RoIAlign (include/drcnn/ops/detail/roi_align_body.h).
//
// The sampling grid is separable: a sample's four bilinear taps are the products of a y tap
// and an x tap (detail::roi_axis_tap). So each RoI's PH * grid_h y taps and PW * grid_w x taps
// are computed once and applied to every channel with the shared sample_gather /
// sample_scatter: the same arithmetic, in the same order, as the CUDA bodies. RoIs are
// processed in chunks that bound the tap buffer (kept cache-resident). Within a chunk:
//   forward   parallel over (block of 8 channels, roi) with the block outermost, so a thread
//             walks all RoIs of a few channels while their planes stay in cache; each sample's
//             four taps are built once per block; each (roi, channel) writes its own PH x PW
//             outputs, with the values of RoiAlignForwardBody;
//   backward  parallel over (batch, block of 8 channels): the thread owning planes (b, c) of
//             every level walks the RoIs in index order and adds into each plane exactly as
//             RoiAlignBackwardPlaneBody does, so no two threads write one cell and the result
//             is the same for any thread count (and equal to the CUDA deterministic mode).
// Tests: tests/ops/test_roi_align.cpp.
#include <algorithm>
#include <vector>

#include "drcnn/config.h"
#include "drcnn/ops/detail/roi_align_body.h"

namespace drcnn::ops::cpu {

namespace {
using detail::RoiAxisTap;
using detail::RoiGeom;

/// Axis taps buffered per chunk (a chunk holds at least one RoI, however large).
constexpr int64_t kChunkTaps = int64_t(1) << 15;

template <typename T>
struct Taps {
  std::vector<RoiGeom<T>> geom;     // all RoIs
  std::vector<int64_t> first;       // per RoI of the chunk: its first y tap; x taps follow
  std::vector<RoiAxisTap<T>> taps;  // per RoI: PH * grid_h y taps, then PW * grid_w x taps
};

template <typename T>
int64_t tap_count(const RoiAlignLaunch& l, const RoiGeom<T>& g) {
  return g.valid ? l.PH * g.grid_h + l.PW * g.grid_w : 0;
}

/// Fills the axis taps of RoI r at t.taps[first..].
template <typename T>
void fill_taps(const RoiAlignLaunch& l, const RoiGeom<T>& g, RoiAxisTap<T>* out) {
  if (!g.valid) return;
  const RoiAlignLevel& lv = l.level[g.level];
  for (int64_t ph = 0; ph < l.PH; ++ph)
    for (int64_t iy = 0; iy < g.grid_h; ++iy)
      *out++ = detail::roi_axis_tap(detail::roi_sample_coord(g.start_h, ph, g.bin_h, iy, g.grid_h), lv.H, lv.stride[2]);
  for (int64_t pw = 0; pw < l.PW; ++pw)
    for (int64_t ix = 0; ix < g.grid_w; ++ix)
      *out++ = detail::roi_axis_tap(detail::roi_sample_coord(g.start_w, pw, g.bin_w, ix, g.grid_w), lv.W, lv.stride[3]);
}

/// Runs apply(taps, r0, r1) over chunks of RoIs whose taps are filled.
template <typename T, typename Apply>
void for_each_chunk(const RoiAlignLaunch& l, const Apply& apply) {
  Taps<T> t;
  t.geom.resize(size_t(l.R));
  bool bad = false;
  for (int64_t r = 0; r < l.R; ++r) {
    t.geom[size_t(r)] = detail::roi_geometry<T>(l, r);
    bad = bad || !t.geom[size_t(r)].valid;
  }
  if (bad) detail::raise_flag(l.error);
  for (int64_t r0 = 0; r0 < l.R;) {
    int64_t r1 = r0, total = 0;
    t.first.clear();
    while (r1 < l.R && (r1 == r0 || total + tap_count(l, t.geom[size_t(r1)]) <= kChunkTaps)) {
      t.first.push_back(total);
      total += tap_count(l, t.geom[size_t(r1)]);
      ++r1;
    }
    t.taps.resize(size_t(std::max<int64_t>(total, 1)));
    for (int64_t r = r0; r < r1; ++r) fill_taps(l, t.geom[size_t(r)], t.taps.data() + t.first[size_t(r - r0)]);
    apply(t, r0, r1);
    r0 = r1;
  }
}

/// RoIs r0 .. r1 - 1 sorted stably by (level, batch) when batches = N, by level alone when
/// batches = 1; invalid RoIs first.
template <typename T>
std::vector<int64_t> visit_order(const Taps<T>& t, int64_t r0, int64_t r1, int64_t batches) {
  std::vector<int64_t> order;
  for (int64_t r = r0; r < r1; ++r) order.push_back(r);
  auto key = [&](int64_t r) {
    const RoiGeom<T>& g = t.geom[size_t(r)];
    return g.valid ? 1 + g.level * batches + (batches > 1 ? g.b : 0) : 0;
  };
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return key(a) < key(b); });
  return order;
}

/// Channels pooled together for one RoI: each sample's taps are built once and applied to
/// kBlock planes, whose independent sums also hide the add latency.
constexpr int64_t kBlock = 8;

/// Pools RoI r (valid) for channels c0 .. c0 + KB - 1 (KB = kBlock, or 1 for the remainder):
/// per channel exactly the arithmetic of roi_bin_average.
template <int64_t KB, typename T>
void pool_block(const RoiAlignLaunch& l, const RoiGeom<T>& g, const RoiAxisTap<T>* ty, int64_t c0, T* out_rc) {
  const RoiAlignLevel& lv = l.level[g.level];
  const T* planes = static_cast<const T*>(lv.features) + g.b * lv.stride[0] + c0 * lv.stride[1];
  const int64_t sc = lv.stride[1], bins = l.PH * l.PW;
  const T count = detail::roi_count(g);
  const RoiAxisTap<T>* tx0 = ty + l.PH * g.grid_h;
  for (int64_t ph = 0; ph < l.PH; ++ph, ty += g.grid_h) {
    const RoiAxisTap<T>* tx = tx0;
    for (int64_t pw = 0; pw < l.PW; ++pw, tx += g.grid_w) {
      T acc[KB] = {};
      for (int64_t iy = 0; iy < g.grid_h; ++iy) {
        if (!ty[iy].valid) continue;
        for (int64_t ix = 0; ix < g.grid_w; ++ix) {
          if (!tx[ix].valid) continue;
          const detail::RoiTaps2d<T> s = detail::roi_taps_2d(ty[iy], tx[ix]);
          for (int64_t k = 0; k < KB; ++k) acc[k] += detail::sample_gather(planes + k * sc, s);
        }
      }
      for (int64_t k = 0; k < KB; ++k) out_rc[k * bins + ph * l.PW + pw] = acc[k] / count;
    }
  }
}

template <typename T>
void forward(const RoiAlignLaunch& l) {
  const int64_t bins = l.PH * l.PW;
  T* out = static_cast<T*>(l.out);
  const int64_t blocks = (l.C + kBlock - 1) / kBlock;
  for_each_chunk<T>(l, [&](const Taps<T>& t, int64_t r0, int64_t r1) {
    const int64_t nr = r1 - r0, n = nr * blocks;
    // Visit the RoIs of one (level, batch) together so their planes stay in cache (each
    // (roi, channel) writes its own outputs, so the order changes nothing).
    const std::vector<int64_t> order = visit_order(t, r0, r1, l.N);
#if DRCNN_WITH_OPENMP
#pragma omp parallel for schedule(static) if (n * bins > 512)
#endif
    for (int64_t i = 0; i < n; ++i) {
      const int64_t c0 = (i / nr) * kBlock, r = order[size_t(i % nr)], kc = std::min(kBlock, l.C - c0);
      const RoiGeom<T>& g = t.geom[size_t(r)];
      T* o = out + (r * l.C + c0) * bins;
      if (!g.valid) {
        std::fill(o, o + kc * bins, T(0));
        continue;
      }
      const RoiAxisTap<T>* ty = t.taps.data() + t.first[size_t(r - r0)];
      if (kc == kBlock) {
        pool_block<kBlock>(l, g, ty, c0, o);
      } else {
        for (int64_t k = 0; k < kc; ++k) pool_block<1>(l, g, ty, c0 + k, o + k * bins);
      }
    }
  });
}

/// Adds RoI r's (valid) gradient for channels c0 .. c0 + KB - 1 into their planes of batch
/// g.b: per channel exactly the arithmetic and order of roi_bin_scatter.
template <int64_t KB, typename T>
void scatter_block(const RoiAlignLaunch& l, const RoiGeom<T>& g, const RoiAxisTap<T>* ty, int64_t r, int64_t c0) {
  const RoiAlignLevel& lv = l.level[g.level];
  T* planes = static_cast<T*>(lv.grad) + g.b * lv.stride[0] + c0 * lv.stride[1];
  const int64_t sc = lv.stride[1];
  const T count = detail::roi_count(g);
  const RoiAxisTap<T>* tx0 = ty + l.PH * g.grid_h;
  for (int64_t ph = 0; ph < l.PH; ++ph, ty += g.grid_h) {
    const RoiAxisTap<T>* tx = tx0;
    for (int64_t pw = 0; pw < l.PW; ++pw, tx += g.grid_w) {
      T gc[KB];
      for (int64_t k = 0; k < KB; ++k) gc[k] = detail::grad_out_at<T>(l, r, c0 + k, ph, pw) / count;
      for (int64_t iy = 0; iy < g.grid_h; ++iy) {
        if (!ty[iy].valid) continue;
        for (int64_t ix = 0; ix < g.grid_w; ++ix) {
          if (!tx[ix].valid) continue;
          const detail::RoiTaps2d<T> s = detail::roi_taps_2d(ty[iy], tx[ix]);
          for (int64_t k = 0; k < KB; ++k) detail::sample_scatter<false>(planes + k * sc, s, gc[k]);
        }
      }
    }
  }
}

template <typename T>
void backward(const RoiAlignLaunch& l) {
  const int64_t blocks = (l.C + kBlock - 1) / kBlock;
  for_each_chunk<T>(l, [&](const Taps<T>& t, int64_t r0, int64_t r1) {
    const int64_t owners = l.N * blocks;  // (batch, block of channels): whole planes each
    // Level by level (stable, so each plane, which belongs to one level, still receives its
    // RoIs in index order: the sums are those of RoiAlignBackwardPlaneBody, bit for bit).
    const std::vector<int64_t> order = visit_order(t, r0, r1, 1);
#if DRCNN_WITH_OPENMP
#pragma omp parallel for schedule(static) if (owners > 1 && (r1 - r0) * l.PH * l.PW > 256)
#endif
    for (int64_t p = 0; p < owners; ++p) {
      const int64_t b = p / blocks, c0 = (p % blocks) * kBlock, kc = std::min(kBlock, l.C - c0);
      for (const int64_t r : order) {
        const RoiGeom<T>& g = t.geom[size_t(r)];
        if (!g.valid || g.b != b) continue;
        const RoiAxisTap<T>* ty = t.taps.data() + t.first[size_t(r - r0)];
        if (kc == kBlock) {
          scatter_block<kBlock>(l, g, ty, r, c0);
        } else {
          for (int64_t k = 0; k < kc; ++k) scatter_block<1>(l, g, ty, r, c0 + k);
        }
      }
    }
  });
}
}  // namespace

void roi_align_forward(DType dtype, const RoiAlignLaunch& l) {
  dispatch_floating(dtype, "roi_align", [&](auto tag) { forward<typename decltype(tag)::type>(l); });
}
void roi_align_backward(DType dtype, const RoiAlignLaunch& l) {
  dispatch_floating(dtype, "roi_align_backward", [&](auto tag) { backward<typename decltype(tag)::type>(l); });
}
}  // namespace drcnn::ops::cpu
