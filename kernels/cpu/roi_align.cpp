// CPU launcher of RoIAlign (include/drcnn/ops/detail/roi_align_body.h).
//
// The bilinear taps of every (roi, bin, sample) are computed once with the shared
// detail::roi_sample and then applied to every channel (they do not depend on the channel).
// RoIs are processed in chunks that bound the tap buffer. Within a chunk:
//   forward   parallel over (roi, channel): each pair writes its own PH x PW outputs, summing
//             the samples in the order of RoiAlignForwardBody (same values as the CUDA body);
//   backward  parallel over (batch, channel) planes: the thread owning plane (b, c) of every
//             level walks the RoIs in index order, exactly as RoiAlignBackwardPlaneBody does,
//             so no two threads write one cell and the result is the same for any thread count.
// Tests: tests/ops/test_roi_align.cpp.
#include <algorithm>
#include <vector>

#include "drcnn/config.h"
#include "drcnn/ops/detail/roi_align_body.h"

namespace drcnn::ops::cpu {

namespace {
using detail::RoiGeom;
using detail::RoiSample;

/// Taps buffered per chunk (a chunk holds at least one RoI, however large).
constexpr int64_t kChunkSamples = int64_t(1) << 19;

template <typename T>
struct Taps {
  std::vector<RoiGeom<T>> geom;     // all RoIs
  std::vector<int64_t> first;       // per RoI of the chunk: first slot in samples
  std::vector<int64_t> bin_end;     // per (roi of the chunk, bin): one past its last sample
  std::vector<RoiSample<T>> samples;
};

template <typename T>
int64_t capacity(const RoiGeom<T>& g, int64_t bins) {
  return g.valid ? bins * g.grid_h * g.grid_w : 0;
}

/// Fills the taps of RoIs [r0, r1) (t.first must hold their slots); parallel over RoIs.
template <typename T>
void fill_taps(const RoiAlignLaunch& l, Taps<T>& t, int64_t r0, int64_t r1) {
  const int64_t bins = l.PH * l.PW;
#if DRCNN_WITH_OPENMP
#pragma omp parallel for schedule(dynamic, 4) if (r1 - r0 > 8)
#endif
  for (int64_t r = r0; r < r1; ++r) {
    const RoiGeom<T>& g = t.geom[size_t(r)];
    int64_t cursor = t.first[size_t(r - r0)];
    int64_t* end = t.bin_end.data() + (r - r0) * bins;
    if (!g.valid) {
      for (int64_t k = 0; k < bins; ++k) end[k] = cursor;
      continue;
    }
    const RoiAlignLevel& lv = l.level[g.level];
    for (int64_t ph = 0; ph < l.PH; ++ph)
      for (int64_t pw = 0; pw < l.PW; ++pw) {
        for (int64_t iy = 0; iy < g.grid_h; ++iy) {
          const T y = detail::roi_sample_coord(g.start_h, ph, g.bin_h, iy, g.grid_h);
          for (int64_t ix = 0; ix < g.grid_w; ++ix) {
            const T x = detail::roi_sample_coord(g.start_w, pw, g.bin_w, ix, g.grid_w);
            if (detail::roi_sample(y, x, lv.H, lv.W, lv.stride[2], lv.stride[3], t.samples[size_t(cursor)])) ++cursor;
          }
        }
        end[ph * l.PW + pw] = cursor;
      }
  }
}

/// Runs apply(r0, r1) over chunks of RoIs whose taps are filled.
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
  const int64_t bins = l.PH * l.PW;
  for (int64_t r0 = 0; r0 < l.R;) {
    int64_t r1 = r0, total = 0;
    t.first.clear();
    while (r1 < l.R && (r1 == r0 || total + capacity(t.geom[size_t(r1)], bins) <= kChunkSamples)) {
      t.first.push_back(total);
      total += capacity(t.geom[size_t(r1)], bins);
      ++r1;
    }
    t.samples.resize(size_t(std::max<int64_t>(total, 1)));
    t.bin_end.resize(size_t((r1 - r0) * bins));
    fill_taps(l, t, r0, r1);
    apply(t, r0, r1);
    r0 = r1;
  }
}

template <typename T>
void forward(const RoiAlignLaunch& l) {
  const int64_t bins = l.PH * l.PW;
  T* out = static_cast<T*>(l.out);
  for_each_chunk<T>(l, [&](const Taps<T>& t, int64_t r0, int64_t r1) {
    const int64_t n = (r1 - r0) * l.C;
#if DRCNN_WITH_OPENMP
#pragma omp parallel for schedule(dynamic, 16) if (n * bins > 4096)
#endif
    for (int64_t i = 0; i < n; ++i) {
      const int64_t r = r0 + i / l.C, c = i % l.C;
      const RoiGeom<T>& g = t.geom[size_t(r)];
      T* o = out + (r * l.C + c) * bins;
      if (!g.valid) {
        std::fill(o, o + bins, T(0));
        continue;
      }
      const RoiAlignLevel& lv = l.level[g.level];
      const T* plane = static_cast<const T*>(lv.features) + g.b * lv.stride[0] + c * lv.stride[1];
      const T count = detail::roi_count(g);
      const RoiSample<T>* s = t.samples.data();
      const int64_t* end = t.bin_end.data() + (r - r0) * bins;
      int64_t k = t.first[size_t(r - r0)];
      for (int64_t bin = 0; bin < bins; ++bin) {
        T acc = T(0);
        for (; k < end[bin]; ++k) acc += detail::sample_gather(plane, s[k]);
        o[bin] = acc / count;
      }
    }
  });
}

template <typename T>
void backward(const RoiAlignLaunch& l) {
  const int64_t bins = l.PH * l.PW;
  for_each_chunk<T>(l, [&](const Taps<T>& t, int64_t r0, int64_t r1) {
    const int64_t planes = l.N * l.C;
#if DRCNN_WITH_OPENMP
#pragma omp parallel for schedule(static) if (planes > 1 && (r1 - r0) * bins > 256)
#endif
    for (int64_t p = 0; p < planes; ++p) {
      const int64_t b = p / l.C, c = p % l.C;
      for (int64_t r = r0; r < r1; ++r) {
        const RoiGeom<T>& g = t.geom[size_t(r)];
        if (!g.valid || g.b != b) continue;
        const RoiAlignLevel& lv = l.level[g.level];
        T* plane = static_cast<T*>(lv.grad) + b * lv.stride[0] + c * lv.stride[1];
        const T count = detail::roi_count(g);
        const RoiSample<T>* s = t.samples.data();
        const int64_t* end = t.bin_end.data() + (r - r0) * bins;
        int64_t k = t.first[size_t(r - r0)];
        for (int64_t ph = 0; ph < l.PH; ++ph)
          for (int64_t pw = 0; pw < l.PW; ++pw) {
            const T gc = detail::grad_out_at<T>(l, r, c, ph, pw) / count;
            for (const int64_t e = end[ph * l.PW + pw]; k < e; ++k) detail::sample_scatter<false>(plane, s[k], gc);
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
