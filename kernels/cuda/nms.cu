// CUDA NMS (include/drcnn/ops/nms.h; spec C.3): the 64-bit mask kernel and the greedy sweep,
// both on the device. Nothing is copied to the host here (the dispatcher of nms reads the
// count once; nms_fixed reads nothing).
//   1. gather: one thread per sorted position k writes box order[k] into SoA arrays [4, N].
//   2. mask: grid (col_blocks, col_blocks), 64 threads a block; block (cb, rb) with rb <= cb
//      stages column block cb in shared memory and thread t writes the word of row rb*64 + t
//      against it (detail::nms_mask_word, the CPU's body). Lower-triangle blocks return at
//      once (the sweep never reads them). Memory: N * ceil(N/64) * 8 bytes (10k boxes: 12.6
//      MB; 100k: 1.25 GB).
//   3. sweep: one block (up to 1024 threads) walks the rows in score order with a `removed`
//      bit array (shared memory up to 6144 words = 393,216 boxes, else global scratch), as
//      mmcv's gather_keep_from_mask. The current block's word lives in a register that every
//      thread updates identically, and a kept row ORs its words only into later blocks, each
//      owned by one thread: so one __syncthreads per 64-row block, none per kept box. It
//      writes the compacted keep list, the count, and (nms_fixed) the -1 padding.
// Tests: tests/cuda/test_cuda_nms.cpp (identical keep lists vs the CPU); the bodies are
// covered on the CPU by tests/ops/test_nms.cpp.
#include <algorithm>

#include "cuda/launch.cuh"
#include "drcnn/core/storage.h"
#include "drcnn/ops/detail/nms_body.h"

namespace drcnn::ops::cuda {
namespace {
using cuda_detail::parallel_for_cuda;
using cuda_detail::to_cuda;
using detail::kNmsBlock;

constexpr int64_t kMaxSharedWords = 6144;  // 48 KB of removed bits
constexpr int kSweepThreads = 1024;

template <typename T>
__global__ void nms_mask_kernel(int64_t n, int64_t col_blocks, const T* soa, T thr, uint64_t* mask) {
  const int64_t rb = blockIdx.y, cb = blockIdx.x;
  if (rb > cb) return;
  __shared__ T cols[4][kNmsBlock];
  const int t = int(threadIdx.x);
  const int col_size = int(min(n - cb * kNmsBlock, int64_t(kNmsBlock)));
  const int row_size = int(min(n - rb * kNmsBlock, int64_t(kNmsBlock)));
  if (t < col_size)
    for (int c = 0; c < 4; ++c) cols[c][t] = soa[c * n + cb * kNmsBlock + t];
  __syncthreads();
  if (t >= row_size) return;
  const int64_t i = rb * kNmsBlock + t;
  const T p[4] = {soa[i], soa[n + i], soa[2 * n + i], soa[3 * n + i]};
  const int begin = rb == cb ? t + 1 : 0;
  mask[i * col_blocks + cb] =
      detail::nms_mask_word(p, detail::NmsColumns<T>{cols[0], cols[1], cols[2], cols[3]}, begin, col_size, thr);
}

__global__ void nms_sweep_kernel(int64_t n, int64_t col_blocks, const uint64_t* mask, const int64_t* order,
                                 int64_t capacity, int64_t* keep, int64_t* count, bool pad, uint64_t* removed_global) {
  extern __shared__ uint64_t removed_shared[];
  uint64_t* removed = removed_global ? removed_global : removed_shared;
  const int64_t tid = threadIdx.x, threads = blockDim.x;
  for (int64_t j = tid; j < col_blocks; j += threads) removed[j] = 0;
  int64_t kept = 0;
  for (int64_t nb = 0; nb < col_blocks && kept < capacity; ++nb) {
    __syncthreads();  // every OR into removed[nb] (from earlier blocks) is done
    uint64_t cur = removed[nb];
    const int rows = int(min(n - nb * kNmsBlock, int64_t(kNmsBlock)));
    for (int ib = 0; ib < rows; ++ib) {
      if ((cur >> ib) & 1) continue;
      const int64_t i = nb * kNmsBlock + ib;
      if (tid == 0) keep[kept] = order[i];
      if (++kept == capacity) break;
      const uint64_t* row = mask + i * col_blocks;
      cur |= row[nb];  // bits > ib of this block; the same value in every thread
      for (int64_t j = nb + 1 + tid; j < col_blocks; j += threads) removed[j] |= row[j];
    }
  }
  if (tid == 0) *count = kept;
  if (pad)
    for (int64_t k = kept + tid; k < capacity; k += threads) keep[k] = -1;
}
}  // namespace

void nms(Stream s, DType dtype, const NmsLaunch& l) {
  const cudaStream_t stream = to_cuda(s);
  const int64_t n = l.n;
  const int64_t col_blocks = (n + kNmsBlock - 1) / kNmsBlock;
  DRCNN_CHECK(col_blocks <= 65535, "nms: ", n, " boxes exceed the CUDA kernel's limit of ", 65535 * kNmsBlock,
              " (the mask grid's y extent)");
  int device = 0;
  DRCNN_CUDA_CHECK(cudaGetDevice(&device));
  const Device dev = Device::cuda(device);
  dispatch_floating(dtype, "nms", [&](auto tag) {
    using T = typename decltype(tag)::type;
    ScratchBuffer<T> soa(4 * std::max<int64_t>(n, 1), dev, s);                          // [4, N]
    ScratchBuffer<uint64_t> mask(std::max<int64_t>(n * col_blocks, 1), dev, s);           // [N, col_blocks]
    uint64_t* words = mask.data();
    parallel_for_cuda(stream, n, detail::NmsGatherBody<T>{static_cast<const T*>(l.boxes), l.order, soa.data(), n});
    if (n > 0) {
      const dim3 grid{unsigned(col_blocks), unsigned(col_blocks)};
      nms_mask_kernel<T><<<grid, kNmsBlock, 0, stream>>>(n, col_blocks, soa.data(), T(l.threshold), words);
      DRCNN_CUDA_CHECK(cudaGetLastError());
    }
    ScratchBuffer<uint64_t> scratch;
    uint64_t* removed_global = nullptr;
    size_t shared_bytes = size_t(col_blocks) * sizeof(uint64_t);
    if (col_blocks > kMaxSharedWords) {
      scratch = ScratchBuffer<uint64_t>(col_blocks, dev, s);
      removed_global = scratch.data();
      shared_bytes = 0;
    }
    const int threads = int(std::clamp<int64_t>((col_blocks + 31) / 32 * 32, 32, kSweepThreads));
    nms_sweep_kernel<<<1, threads, shared_bytes, stream>>>(n, col_blocks, words, l.order, l.capacity, l.keep, l.count,
                                                           l.pad, removed_global);
    DRCNN_CUDA_CHECK(cudaGetLastError());
#if DRCNN_SYNC_DEBUG
    DRCNN_CUDA_CHECK(cudaStreamSynchronize(stream));
#endif
  });
}
}  // namespace drcnn::ops::cuda
