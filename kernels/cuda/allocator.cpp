// The CUDA caching allocator: CachingPool (include/drcnn/core/allocator.h, tested on the CPU
// in tests/core/test_allocator.cpp) over cudaMalloc/cudaFree. Stream-ordered: a freed block is
// reused only for work on the stream it was allocated on, so queued kernels that still read
// it run before the new owner's kernels. Steady state makes no cudaMalloc calls. A tensor used
// on a second stream is declared with record_stream: at its free the pool records a CUDA event
// on that stream and reuses the block only once the event has completed. docs/cuda-memory.md.
#include <cuda_runtime_api.h>

#include <array>
#include <cstdlib>
#include <mutex>

#include "cuda/cuda_check.h"
#include "drcnn/core/allocator.h"
#include "drcnn/core/device.h"
#include "drcnn/core/error.h"

namespace drcnn {
namespace {
struct CudaBackend {
  int device;
  void* raw_allocate(size_t bytes) {
    DeviceGuard g(Device::cuda(device));
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, bytes);
    if (e == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // clear, so the pool can release its cache and retry
      return nullptr;
    }
    DRCNN_CUDA_CHECK(e);
    return p;
  }
  // Must not throw: CachingPool::flush_locked frees a whole list and clears it only
  // after the loop, so an exception part-way (DeviceGuard throws when cudaSetDevice reports a
  // sticky error from an earlier fault) would leave freed pointers in the cache to hand out again.
  void raw_free(void* p) noexcept {
    int previous = -1;
    const bool switched = cudaGetDevice(&previous) == cudaSuccess && previous != device &&
                          cudaSetDevice(device) == cudaSuccess;
    // cudaFree synchronises the device, so queued kernels still reading p finish first.
    // Its errors cannot be acted on here; clear them so the next launch check does not report them.
    if (cudaFree(p) != cudaSuccess) cudaGetLastError();
    if (switched) cudaSetDevice(previous);
  }
  // Events for record_stream (StreamEventBackend). The event is created on the stream's device
  // (the legacy default stream counts as this allocator's device). On any CUDA error the stream
  // is synchronised instead and nullptr (complete) returned, so these never throw.
  void* record_event(void* stream) noexcept {
    const auto s = static_cast<cudaStream_t>(stream);
    int stream_device = device;
    if (s != nullptr && cudaStreamGetDevice(s, &stream_device) != cudaSuccess) {
      cudaGetLastError();
      stream_device = device;
    }
    int previous = -1;
    if (cudaGetDevice(&previous) != cudaSuccess) previous = -1;
    const bool switched = previous >= 0 && previous != stream_device && cudaSetDevice(stream_device) == cudaSuccess;
    cudaEvent_t e = nullptr;
    if (cudaEventCreateWithFlags(&e, cudaEventDisableTiming) != cudaSuccess || cudaEventRecord(e, s) != cudaSuccess) {
      cudaGetLastError();
      if (e) cudaEventDestroy(e);
      e = nullptr;
      if (cudaStreamSynchronize(s) != cudaSuccess) cudaGetLastError();
    }
    if (switched) cudaSetDevice(previous);
    return e;
  }
  bool event_done(void* event) noexcept {
    const cudaError_t r = cudaEventQuery(static_cast<cudaEvent_t>(event));
    if (r == cudaErrorNotReady) return false;
    if (r != cudaSuccess) cudaGetLastError();  // a failed event will not complete: do not wait forever
    return true;
  }
  void event_wait(void* event) noexcept {
    if (cudaEventSynchronize(static_cast<cudaEvent_t>(event)) != cudaSuccess) cudaGetLastError();
  }
  void event_destroy(void* event) noexcept {
    if (cudaEventDestroy(static_cast<cudaEvent_t>(event)) != cudaSuccess) cudaGetLastError();
  }
};
static_assert(StreamEventBackend<CudaBackend>);

class CudaCachingAllocator final : public PoolAllocator<CudaBackend> {
 public:
  explicit CudaCachingAllocator(int device) : PoolAllocator(CudaBackend{device}, 512), m_device(device) {
    // DRCNN_CUDA_MAX_CACHED_MB caps the reusable cached bytes (default: no cap).
    if (const char* env = std::getenv("DRCNN_CUDA_MAX_CACHED_MB")) {
      char* end = nullptr;
      const unsigned long long mb = std::strtoull(env, &end, 10);
      DRCNN_CHECK(end != env && *end == '\0', "cuda allocator: DRCNN_CUDA_MAX_CACHED_MB must be a whole number of MiB, got '",
                  env, "'");
      set_max_cached_bytes(size_t(mb) << 20);
    }
  }

 private:
  [[noreturn]] void out_of_memory(size_t bytes) const override {
    size_t free_b = 0, total_b = 0;
    {
      DeviceGuard g(Device::cuda(m_device));  // cudaMemGetInfo reports the current device
      if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) cudaGetLastError();  // message only
    }
    DRCNN_FAIL("cuda allocator: out of memory on cuda:", m_device, " allocating ", bytes, " bytes (",
               m_pool.stats().bytes_in_use, " bytes in use by drcnn, ", free_b, " of ", total_b,
               " bytes free on the device)");
  }
  int m_device;
};
}  // namespace

Allocator& cuda_allocator(int index) {
  DRCNN_CHECK(cuda::device_count() > 0, "cuda_allocator(", index, "): ", cuda::unavailable_reason());
  DRCNN_CHECK(index >= 0 && index < cuda::device_count(), "cuda_allocator(", index, "): cuda:", index,
              " does not exist (", cuda::device_count(), " visible CUDA devices)");
  // Leaked at exit on purpose (like the CPU allocator): cudaFree after the runtime shut down fails.
  static std::array<CudaCachingAllocator*, 64> allocators{};
  static std::mutex mutex;
  std::lock_guard<std::mutex> lock(mutex);
  auto& slot = allocators[size_t(index)];
  if (!slot) slot = new CudaCachingAllocator(index);
  return *slot;
}
}  // namespace drcnn
