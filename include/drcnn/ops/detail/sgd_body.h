// The fused SGD step (src/train/sgd.cpp): one launch updates every parameter of one dtype and
// device. The element space is cut into blocks of kSgdBlock elements, each inside one
// parameter (a table built on the host), so a block finds its tensor in O(1). The arithmetic
// is the unfused step's, operation for operation, each rounded to T (no FMA contraction: on
// CUDA the *_rn intrinsics, on the host -ffp-contract=off): tests/train/test_sgd.cpp checks the
// fused step equals the per-parameter sequence of Tensor ops bit for bit on the CPU. The CPU
// launcher (kernels/cpu/sgd.cpp) runs sgd_update's formulas one at a time over chunks, vectorised.
#pragma once
#include <cstdint>
#include <type_traits>

#include "drcnn/core/device.h"
#include "drcnn/core/macros.h"

namespace drcnn::ops::detail {

inline constexpr int64_t kSgdBlock = 4096;

/// One parameter: contiguous arrays of n elements. buf == nullptr: first step (the buffer
/// starts as the update d); buf_out == nullptr when momentum == 0.
template <typename T>
struct SgdTensor {
  const T* param;
  const T* grad;
  const T* buf;
  T* param_out;
  T* buf_out;
  int64_t n;
};
/// A block: elements [offset, offset + kSgdBlock) of tensor `tensor` (clipped to its n).
struct SgdBlock {
  int64_t tensor;
  int64_t offset;
};
struct SgdHyper {
  double lr = 0, momentum = 0, weight_decay = 0, dampening = 0;
  bool nesterov = false;
};

template <typename T>
DRCNN_HD T sgd_mul(T a, T b) {
#if defined(__CUDA_ARCH__)
  if constexpr (std::is_same_v<T, float>) return __fmul_rn(a, b);
  else return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
template <typename T>
DRCNN_HD T sgd_add(T a, T b) {
#if defined(__CUDA_ARCH__)
  if constexpr (std::is_same_v<T, float>) return __fadd_rn(a, b);
  else return __dadd_rn(a, b);
#else
  return a + b;
#endif
}
template <typename T>
DRCNN_HD T sgd_sub(T a, T b) {
#if defined(__CUDA_ARCH__)
  if constexpr (std::is_same_v<T, float>) return __fsub_rn(a, b);
  else return __dsub_rn(a, b);
#else
  return a - b;
#endif
}

/// torch.optim.SGD's update of element e of t, as src/train/sgd.cpp's unfused step computed it:
///   d = g + p * wd;  buf = buf ? buf * m + d * (1 - dampening) : d;  d = nesterov ? d + buf * m : buf;
///   p = p - d * lr   (each scalar converted to T first, as the Tensor-scalar ops do).
template <typename T>
DRCNN_HD void sgd_update(const SgdTensor<T>& t, int64_t e, const SgdHyper& h) {
  const T p = t.param[e];
  T d = t.grad[e];
  if (h.weight_decay != 0) d = sgd_add(d, sgd_mul(p, T(h.weight_decay)));
  if (h.momentum != 0) {
    const T b = t.buf ? sgd_add(sgd_mul(t.buf[e], T(h.momentum)), sgd_mul(d, T(1.0 - h.dampening))) : d;
    t.buf_out[e] = b;
    d = h.nesterov ? sgd_add(d, sgd_mul(b, T(h.momentum))) : b;
  }
  t.param_out[e] = sgd_sub(p, sgd_mul(d, T(h.lr)));
}

template <typename T>
struct SgdLaunch {
  const SgdTensor<T>* tensors = nullptr;  // on the launch's device
  const SgdBlock* blocks = nullptr;       // on the launch's device
  int64_t num_blocks = 0;
  SgdHyper hyper;
};

/// One invocation = one element of the padded space [0, num_blocks * kSgdBlock) (CUDA; the CPU
/// runs a block per invocation, vectorised, kernels/cpu/sgd.cpp).
template <typename T>
struct SgdStepBody {
  SgdLaunch<T> l;
  DRCNN_HD void operator()(int64_t i) const {
    const SgdBlock b = l.blocks[i / kSgdBlock];
    const SgdTensor<T>& t = l.tensors[b.tensor];
    const int64_t e = b.offset + i % kSgdBlock;
    if (e < t.n) sgd_update(t, e, l.hyper);
  }
};

namespace cpu {
template <typename T> void sgd_step(const SgdLaunch<T>& l);
}  // namespace cpu
namespace cuda {
template <typename T> void sgd_step(Stream s, const SgdLaunch<T>& l);
}  // namespace cuda
}  // namespace drcnn::ops::detail
