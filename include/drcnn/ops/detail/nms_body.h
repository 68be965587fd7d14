// NMS bodies (include/drcnn/ops/nms.h), shared by kernels/cpu/nms.cpp and kernels/cuda/nms.cu:
// the suppression predicate, the 64-bit mask word (row box i against the 64 boxes of one column
// block) and the gather of the boxes into score order. Both backends compute every mask word
// with nms_mask_word, so their keep lists are identical. Also declares the backend launchers.
#pragma once
#include <cstdint>
#include <cstring>

#include "drcnn/core/device.h"
#include "drcnn/core/dtype.h"
#include "drcnn/ops/detail/box_body.h"

namespace drcnn::ops {

/// One NMS launch over boxes already ordered by the dispatcher.
struct NmsLaunch {
  int64_t n = 0;                  // number of boxes
  const void* boxes = nullptr;    // [N, 4] contiguous, dtype of the launch (input order)
  const int64_t* order = nullptr; // [N] input positions in descending score order (NaN last)
  double threshold = 0;           // suppress when IoU > threshold (converted to the box dtype)
  int64_t capacity = 0;           // keep list capacity (>= 1): min(N, max_output)
  int64_t* keep = nullptr;        // [capacity] kept input positions, score order
  int64_t* count = nullptr;       // [1] number kept (device memory on CUDA)
  bool pad = false;               // write -1 into keep[count..capacity)
};

namespace cpu {
void nms(DType dtype, const NmsLaunch& l);
}
namespace cuda {
/// Asynchronous: keep and count are written on the stream; nothing is copied to the host.
void nms(Stream s, DType dtype, const NmsLaunch& l);
}

namespace detail {

/// Boxes per mask word (bits of a uint64_t); also the CUDA block size of the mask kernel.
inline constexpr int kNmsBlock = 64;

/// Box q is suppressed by the kept box p when IoU(p, q) > thr. The IoU is box_overlap's, whose
/// operation order is torchvision's nms (see box_body.h); a NaN IoU (NaN coordinates)
/// suppresses nothing. The 1e-6 floor of box_overlap's union only matters when the union is
/// below 1e-6 (torchvision divides by it; see docs/kernels/nms.md).
template <typename T>
DRCNN_HD bool nms_suppresses(const T* p, const T* q, T thr) {
  return box_overlap(p, q, false) > thr;
}

/// A column block of boxes in SoA layout: box j is (x1[j], y1[j], x2[j], y2[j]).
template <typename T>
struct NmsColumns {
  const T* x1;
  const T* y1;
  const T* x2;
  const T* y2;
};

/// Bits j in [begin, end) (end <= 64).
DRCNN_HD uint64_t nms_bit_range(int begin, int end) {
  if (begin >= end) return 0;
  const uint64_t upto = end >= kNmsBlock ? ~uint64_t(0) : (uint64_t(1) << end) - 1;
  return upto & ~((uint64_t(1) << begin) - 1);
}

/// The mask word of row box p against column block c: bit j (begin <= j < end) is set when
/// p suppresses box j of the block. The row's own block passes begin = (row index in the
/// block) + 1, so a box never tests itself or an earlier box.
/// Device: a plain bit loop over [begin, end). Host: all 64 columns into a byte array (the
/// form GCC vectorises; the caller pads the SoA arrays to a multiple of 64 with finite
/// values), packed 8 bytes at a time, then masked to [begin, end): the same bits.
template <typename T>
DRCNN_HD uint64_t nms_mask_word(const T* p, const NmsColumns<T>& c, int begin, int end, T thr) {
#if DRCNN_ON_DEVICE
  uint64_t w = 0;
  for (int j = begin; j < end; ++j) {
    const T q[4] = {c.x1[j], c.y1[j], c.x2[j], c.y2[j]};
    if (nms_suppresses(p, q, thr)) w |= uint64_t(1) << j;
  }
  return w;
#else
  uint8_t flag[kNmsBlock];
  for (int j = 0; j < kNmsBlock; ++j) {
    const T q[4] = {c.x1[j], c.y1[j], c.x2[j], c.y2[j]};
    flag[j] = uint8_t(nms_suppresses(p, q, thr));
  }
  // Byte k (0 or 1) of x lands on bit 56 + k of x * 0x0102040810204080 (no carries).
  uint64_t w = 0;
  for (int g = 0; g < kNmsBlock / 8; ++g) {
    uint64_t x;
    std::memcpy(&x, flag + 8 * g, 8);
    w |= ((x * 0x0102040810204080ull) >> 56) << (8 * g);
  }
  return w & nms_bit_range(begin, end);
#endif
}

/// Writes box order[k] into position k of the SoA arrays (x1 at soa, y1 at soa + stride, x2
/// at soa + 2 stride, y2 at soa + 3 stride). One invocation per sorted position k.
template <typename T>
struct NmsGatherBody {
  const T* boxes;  // [N, 4]
  const int64_t* order;
  T* soa;          // [4, stride]
  int64_t stride;
  DRCNN_HD void operator()(int64_t k) const {
    const T* b = boxes + 4 * order[k];
    for (int c = 0; c < 4; ++c) soa[c * stride + k] = b[c];
  }
};
}  // namespace detail
}  // namespace drcnn::ops
