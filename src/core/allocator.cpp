// CPU allocator (64-byte aligned, cached by size class) and the size-class rule shared with
// the CUDA caching allocator.
#include "drcnn/core/allocator.h"

#include <cstdlib>
#include <new>

#include "drcnn/config.h"
#include "drcnn/core/error.h"

namespace drcnn {

size_t pool_size_class(size_t bytes, size_t granule) {
  constexpr size_t kSmall = size_t(1) << 20;
  if (bytes <= kSmall) return (bytes + granule - 1) / granule * granule;
  // Above 1 MiB: 8 steps per power of two.
  size_t pow2 = kSmall;
  while (pow2 * 2 < bytes) pow2 *= 2;
  const size_t step = pow2 / 8;
  return (bytes + step - 1) / step * step;
}

namespace {
struct AlignedHostBackend {
  static constexpr size_t kAlignment = 64;
  void* raw_allocate(size_t bytes) { return std::aligned_alloc(kAlignment, bytes); }
  void raw_free(void* p) { std::free(p); }
};

class CpuAllocator final : public PoolAllocator<AlignedHostBackend> {
 public:
  CpuAllocator() : PoolAllocator(AlignedHostBackend{}, 64) {}

 private:
  [[noreturn]] void out_of_memory(size_t bytes) const override {
    DRCNN_FAIL("cpu allocator: out of host memory allocating ", bytes, " bytes (", m_pool.stats().bytes_in_use,
               " bytes in use by drcnn)");
  }
};
}  // namespace

Allocator& cpu_allocator() {
  // Leaked on purpose: tensors held by static objects may be freed after main returns.
  static CpuAllocator* instance = new CpuAllocator();
  return *instance;
}

Allocator& allocator_for(Device device) {
  if (device.is_cpu()) return cpu_allocator();
  return cuda_allocator(device.index);
}

#if !DRCNN_WITH_CUDA
Allocator& cuda_allocator(int index) {
  DRCNN_FAIL("cuda_allocator(", index, "): drcnn was built without CUDA (DRCNN_WITH_CUDA=OFF)");
}
#endif
}  // namespace drcnn
