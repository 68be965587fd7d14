// The CUDA caching allocator and host->device copies on a real device (docs/cuda-memory.md):
// record_stream keeps a block that another stream still reads out of reuse until that stream's
// event completes; an allocation that fails while the pool holds cached blocks succeeds after
// the flush; the cap on cached bytes returns freed blocks; deallocate_uncached frees at once;
// a host->device copy from pageable memory needs no wait (the source may be overwritten right
// after the call), and one from page-locked memory still waits.
// The pool logic itself is proven on the CPU (tests/core/test_allocator.cpp); these check the
// CUDA backend's events and cudaMalloc/cudaFree behave as the fake backend there assumes.
#include <catch2/catch.hpp>

#include "drcnn/config.h"

#if DRCNN_WITH_CUDA
#include <cuda_runtime_api.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <limits>
#include <thread>
#include <vector>

#include "drcnn/core/allocator.h"
#include "drcnn/core/tensor.h"
#include "drcnn/ops/launch.h"

using drcnn::Device;
using drcnn::DType;
using drcnn::Stream;
using drcnn::Tensor;

namespace {
const Device kGpu = Device::cuda(0);

#define REQUIRE_CUDA(expr) REQUIRE((expr) == cudaSuccess)

// Holds a stream busy from the host: a host function queued on it spins until open() is called,
// so work queued after it on that stream stays pending for as long as the test needs.
struct StreamGate {
  std::atomic<bool> open_flag{false};
  static void CUDART_CB wait(void* self) {
    auto* g = static_cast<StreamGate*>(self);
    while (!g->open_flag.load()) std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  void close_on(cudaStream_t s) { REQUIRE_CUDA(cudaLaunchHostFunc(s, &StreamGate::wait, this)); }
  void open() { open_flag.store(true); }
};

struct OwnedStream {
  cudaStream_t s = nullptr;
  OwnedStream() { REQUIRE_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking)); }
  ~OwnedStream() { cudaStreamDestroy(s); }
  Stream handle() const { return Stream{s}; }
};

// Restores the current stream of cuda:0 at scope exit.
struct CurrentStream {
  explicit CurrentStream(Stream s) { drcnn::cuda::set_current_stream(kGpu, s); }
  ~CurrentStream() { drcnn::cuda::set_current_stream(kGpu, Stream{}); }
};
}  // namespace

TEST_CASE("cuda/memory: a block another stream still reads is not reused until its event completes",
          "[cuda][memory]") {
  OwnedStream a, b;
  auto& alloc = drcnn::cuda_allocator(0);
  alloc.empty_cache();  // no block cached under a reused stream handle from an earlier test
  const CurrentStream current(a.handle());
  const int64_t n = 1 << 20;  // 4 MiB of float
  std::vector<float> expected(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) expected[size_t(i)] = float(i % 1000) * 0.5f;
  Tensor dst = Tensor::empty({n}, DType::Float32, kGpu);
  void* first = nullptr;
  StreamGate gate;
  {
    Tensor src = Tensor::from_vector(expected, {n}, kGpu);  // allocated on stream a
    REQUIRE_CUDA(cudaStreamSynchronize(a.s));
    first = src.data_ptr();
    // Stream b: wait at the gate, then copy src -> dst. src is read by b after it is freed.
    gate.close_on(b.s);
    REQUIRE_CUDA(cudaMemcpyAsync(dst.data_ptr(), src.data_ptr(), size_t(n) * 4, cudaMemcpyDeviceToDevice, b.s));
    src.record_stream(b.handle());
  }  // src freed here: pending on b's event
  CHECK(alloc.stats().bytes_pending >= size_t(n) * 4);
  // A new tensor of the same size on stream a must not get the block b has yet to read ...
  Tensor other = Tensor::full({n}, -7.0, DType::Float32, kGpu);
  CHECK(other.data_ptr() != first);
  REQUIRE_CUDA(cudaStreamSynchronize(a.s));
  // ... so b copies the original values once the gate opens.
  gate.open();
  REQUIRE_CUDA(cudaStreamSynchronize(b.s));
  CHECK(dst.to_vector<float>() == expected);
  // Now the event has completed: the block is reusable on stream a.
  Tensor again = Tensor::empty({n}, DType::Float32, kGpu);
  CHECK(again.data_ptr() == first);
  CHECK(alloc.stats().bytes_pending == 0);
}

TEST_CASE("cuda/memory: an allocation that fails while blocks are cached succeeds after the flush",
          "[cuda][memory]") {
  auto& alloc = drcnn::cuda_allocator(0);
  alloc.empty_cache();
  size_t free_b = 0, total_b = 0;
  REQUIRE_CUDA(cudaMemGetInfo(&free_b, &total_b));
  // Fill the device with 64 MiB blocks, keep them cached, then ask for one large block of
  // another size class: cudaMalloc fails until the pool returns its cache.
  const size_t chunk = size_t(64) << 20, big = size_t(1) << 30;
  REQUIRE(free_b > big + 4 * chunk);
  std::vector<Tensor> held;
  for (size_t used = 0; used + chunk < free_b - (big / 2); used += chunk)
    held.push_back(Tensor::empty({int64_t(chunk / 4)}, DType::Float32, kGpu));
  held.clear();  // all cached: reserved, not in use
  const auto before = alloc.stats();
  REQUIRE(before.bytes_cached + big > free_b);
  Tensor t = Tensor::empty({int64_t(big / 4)}, DType::Float32, kGpu);
  const auto after = alloc.stats();
  CHECK(after.cache_flushes == before.cache_flushes + 1);
  CHECK(after.raw_frees > before.raw_frees);
  CHECK(after.bytes_cached == 0);
  t = Tensor();
  alloc.empty_cache();
}

TEST_CASE("cuda/memory: the cap on cached bytes and uncached frees return memory to the device",
          "[cuda][memory]") {
  auto& alloc = drcnn::cuda_allocator(0);
  alloc.empty_cache();
  alloc.set_max_cached_bytes(0);
  {
    Tensor t = Tensor::empty({1 << 20}, DType::Float32, kGpu);
    REQUIRE(alloc.stats().bytes_in_use >= size_t(4) << 20);
  }
  auto s = alloc.stats();
  CHECK(s.bytes_cached == 0);
  CHECK(s.bytes_reserved == s.bytes_in_use + s.bytes_pending);
  alloc.set_max_cached_bytes(std::numeric_limits<size_t>::max());
  void* p = alloc.allocate(size_t(8) << 20, Stream{});
  const auto mid = alloc.stats();
  alloc.deallocate_uncached(p);
  const auto end = alloc.stats();
  CHECK(end.raw_frees == mid.raw_frees + 1);
  CHECK(end.bytes_reserved + (size_t(8) << 20) == mid.bytes_reserved);
  CHECK(end.bytes_cached == mid.bytes_cached);
}

TEST_CASE("cuda/memory: host->device copies from pageable memory need no wait", "[cuda][memory]") {
  // Tensor::to returns without synchronising for a pageable source: overwriting the source at
  // once must not change what arrives on the device.
  const int64_t n = 1 << 22;  // 16 MiB, larger than one staging chunk
  std::vector<float> values(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) values[size_t(i)] = float(i % 4093);
  Tensor host = Tensor::from_vector(values, {n});
  Tensor dev = host.to(kGpu);
  host.fill_(-1.0);  // the caller reuses the source right away
  CHECK(dev.to_vector<float>() == values);
  // From page-locked memory the copy waits, so the same holds.
  float* pinned = nullptr;
  REQUIRE_CUDA(cudaMallocHost(reinterpret_cast<void**>(&pinned), size_t(n) * sizeof(float)));
  std::copy(values.begin(), values.end(), pinned);
  Tensor dev2 = Tensor::empty({n}, DType::Float32, kGpu);
  drcnn::ops::cuda::memcpy_host_to_device(drcnn::cuda::current_stream(kGpu), dev2.data_ptr(), pinned,
                                          size_t(n) * sizeof(float));
  std::fill(pinned, pinned + n, -1.0f);
  CHECK(dev2.to_vector<float>() == values);
  cudaFreeHost(pinned);
}

TEST_CASE("cuda/memory: record_stream on a tensor not from the pool is an error naming record_stream",
          "[cuda][memory]") {
  auto& alloc = drcnn::cuda_allocator(0);
  int not_a_block = 0;
  REQUIRE_THROWS_WITH(alloc.record_stream(&not_a_block, Stream{}), Catch::Contains("record_stream"));
}
#endif
