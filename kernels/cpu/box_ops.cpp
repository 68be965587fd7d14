// CPU launcher of the box-op bodies (include/drcnn/ops/detail/box_body.h): one body
// invocation per box or pair, OpenMP static partition. Tests: tests/ops/test_box_ops.cpp.
// IoU / IoF matrices have their own row loop: the second set is transposed once into
// structure-of-arrays form (x1, y1, x2, y2, area), so each row is a unit-stride loop the
// compiler vectorises (this file is built with -mavx2, like the GEMM's). Every element is the
// same expression as box_overlap() in the same operation order with no contraction, so the
// result is bitwise that of the body (and of NMS's IoU).
#include <algorithm>

#include "drcnn/core/parallel_cpu.h"
#include "drcnn/core/storage.h"
#include "drcnn/ops/detail/box_body.h"

namespace drcnn::ops::cpu {
namespace {
// Legacy is a template argument: as a run-time value the added offset kept the compiler from
// vectorising the row loop (box_iou 2000 x 100 went from 56 us to 470 us at one thread).
template <typename T, bool Iof, bool Legacy>
void overlap_matrix(const BoxLaunch& l) {
  const int64_t M = l.m, N = l.n / l.m;
  const T* a = static_cast<const T*>(l.a);
  const T* b = static_cast<const T*>(l.b);
  T* out = static_cast<T*>(l.out);
  constexpr T off = Legacy ? T(1) : T(0);  // + 0 is exact: MMDetection's values are unchanged
  ScratchBuffer<T> soa_holder(5 * M, Device::cpu());
  T* soa = soa_holder.data();
  T* __restrict bx1 = soa;
  T* __restrict by1 = soa + M;
  T* __restrict bx2 = soa + 2 * M;
  T* __restrict by2 = soa + 3 * M;
  T* __restrict barea = soa + 4 * M;
  for (int64_t j = 0; j < M; ++j) {
    const T* q = b + 4 * j;
    bx1[j] = q[0], by1[j] = q[1], bx2[j] = q[2], by2[j] = q[3];
    barea[j] = detail::box_mul(q[2] - q[0] + off, q[3] - q[1] + off);
  }
  const int64_t grain = std::max<int64_t>(2, kParallelGrain / std::max<int64_t>(M, 1) / 4);
  parallel_for_cpu(
      N,
      [&](int64_t i) {
        const T* p = a + 4 * i;
        const T px1 = p[0], py1 = p[1], px2 = p[2], py2 = p[3];
        const T area_p = detail::box_mul(px2 - px1 + off, py2 - py1 + off);
        T* __restrict row = out + i * M;
        for (int64_t j = 0; j < M; ++j) {
          const T iw = hd::max(hd::min(px2, bx2[j]) - hd::max(px1, bx1[j]) + off, T(0));
          const T ih = hd::max(hd::min(py2, by2[j]) - hd::max(py1, by1[j]) + off, T(0));
          const T inter = iw * ih;
          T denom = area_p;
          if constexpr (!Iof) denom = area_p + barea[j] - inter;
          row[j] = inter / hd::max(denom, T(1e-6));
        }
      },
      grain);
}
}  // namespace

void box_op(BoxKind kind, DType dtype, const BoxLaunch& l) {
  if ((kind == BoxKind::Iou || kind == BoxKind::Iof) && l.m > 0) {
    const bool iof = kind == BoxKind::Iof;
    const auto run = [&]<typename T>(T) {
      if (l.legacy) return iof ? overlap_matrix<T, true, true>(l) : overlap_matrix<T, false, true>(l);
      return iof ? overlap_matrix<T, true, false>(l) : overlap_matrix<T, false, false>(l);
    };
    if (dtype == DType::Float32) return run(float{});
    if (dtype == DType::Float64) return run(double{});
  }
  detail::run_box(kind, dtype, l, [](int64_t n, const auto& body) { parallel_for_cpu(n, body); });
}
}  // namespace drcnn::ops::cpu
