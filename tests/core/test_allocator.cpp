// Allocators (include/drcnn/core/allocator.h): the size-class rule, CachingPool over a fake
// counting backend (reuse, streams, statistics, cache release, the OOM retry), and the
// process-wide CPU allocator (alignment, steady state).
#include <catch2/catch.hpp>

#include "drcnn/config.h"

#include <cstdlib>
#include <random>
#include <set>

#include "drcnn/core/allocator.h"
#include "drcnn/core/tensor.h"

using drcnn::CachingPool;
using drcnn::pool_size_class;
using drcnn::Stream;

namespace {
constexpr size_t kMiB = size_t(1) << 20;

// Counts raw calls and can refuse allocations beyond a byte limit (to exercise OOM).
struct FakeCounters {
  size_t allocs = 0, frees = 0, live_bytes = 0, limit = 0;  // limit 0: unlimited
  std::map<void*, size_t> live;
};
struct FakeBackend {
  FakeCounters* c;
  void* raw_allocate(size_t bytes) {
    if (c->limit && c->live_bytes + bytes > c->limit) return nullptr;
    void* p = std::malloc(bytes);
    ++c->allocs;
    c->live_bytes += bytes;
    c->live[p] = bytes;
    return p;
  }
  void raw_free(void* p) {
    ++c->frees;
    c->live_bytes -= c->live.at(p);
    c->live.erase(p);
    std::free(p);
  }
};
Stream stream(uintptr_t id) { return Stream{reinterpret_cast<void*>(id)}; }
}  // namespace

TEST_CASE("core/allocator: pool_size_class rounds to granules below 1 MiB", "[core][cpu]") {
  CHECK(pool_size_class(1, 512) == 512);
  CHECK(pool_size_class(512, 512) == 512);
  CHECK(pool_size_class(513, 512) == 1024);
  CHECK(pool_size_class(1, 64) == 64);
  CHECK(pool_size_class(65, 64) == 128);
  CHECK(pool_size_class(kMiB, 512) == kMiB);
  CHECK(pool_size_class(kMiB - 1, 512) == kMiB);
}

TEST_CASE("core/allocator: pool_size_class uses 1/8-octave steps above 1 MiB", "[core][cpu]") {
  CHECK(pool_size_class(kMiB + 1, 512) == kMiB + kMiB / 8);
  CHECK(pool_size_class(2 * kMiB, 512) == 2 * kMiB);
  CHECK(pool_size_class(2 * kMiB + 1, 512) == 2 * kMiB + kMiB / 4);
  CHECK(pool_size_class(3 * kMiB + 1, 512) == 3 * kMiB + kMiB / 4);
  CHECK(pool_size_class(7 * kMiB, 512) == 7 * kMiB);
  // Properties over random sizes: covers the request, at most 12.5% waste above 1 MiB,
  // granule multiple, idempotent (a class maps to itself) and monotonic.
  std::mt19937_64 rng(5);
  std::uniform_int_distribution<size_t> dist(1, size_t(1) << 34);
  for (int i = 0; i < 20000; ++i) {
    const size_t b = i < 10000 ? dist(rng) >> (i % 24) : size_t(i);
    const size_t c = pool_size_class(b, 512);
    INFO("bytes " << b << " class " << c);
    REQUIRE(c >= b);
    REQUIRE(c % 512 == 0);
    if (b > kMiB) REQUIRE(c - b <= b / 8);
    else REQUIRE(c - b < 512);
    REQUIRE(pool_size_class(c, 512) == c);
    REQUIRE(pool_size_class(b + 1, 512) >= c);
  }
}

TEST_CASE("core/allocator: CachingPool reuses a freed block of the same class and stream", "[core][cpu]") {
  FakeCounters c;
  CachingPool<FakeBackend> pool(FakeBackend{&c}, 512);
  void* a = pool.allocate(1000, stream(1));
  REQUIRE(a != nullptr);
  CHECK(c.allocs == 1);
  CHECK(c.live.at(a) == 1024);  // the backend sees the size class
  REQUIRE(pool.deallocate(a));
  void* b = pool.allocate(900, stream(1));  // same class (1024), same stream
  CHECK(b == a);
  CHECK(c.allocs == 1);
  void* d = pool.allocate(1000, stream(1));  // the cached block is taken: a new raw block
  CHECK(d != b);
  CHECK(c.allocs == 2);
  REQUIRE(pool.deallocate(b));
  void* e = pool.allocate(2000, stream(1));  // other class: no reuse
  CHECK(e != b);
  CHECK(c.allocs == 3);
  pool.deallocate(d);
  pool.deallocate(e);
  CHECK(pool.stats().raw_allocations == 3);
}

TEST_CASE("core/allocator: CachingPool never reuses across streams", "[core][cpu]") {
  FakeCounters c;
  CachingPool<FakeBackend> pool(FakeBackend{&c}, 512);
  void* a = pool.allocate(4096, stream(1));
  pool.deallocate(a);
  void* b = pool.allocate(4096, stream(2));
  CHECK(b != a);
  CHECK(c.allocs == 2);
  void* a2 = pool.allocate(4096, stream(1));
  CHECK(a2 == a);
  CHECK(c.allocs == 2);
  pool.deallocate(b);
  pool.deallocate(a2);
}

TEST_CASE("core/allocator: CachingPool statistics and release_cached", "[core][cpu]") {
  FakeCounters c;
  {
    CachingPool<FakeBackend> pool(FakeBackend{&c}, 512);
    void* a = pool.allocate(100, stream(0));   // class 512
    void* b = pool.allocate(1500, stream(0));  // class 1536
    auto s = pool.stats();
    CHECK(s.bytes_in_use == 2048);
    CHECK(s.peak_bytes_in_use == 2048);
    CHECK(s.bytes_reserved == 2048);
    CHECK(s.raw_allocations == 2);
    CHECK(s.raw_frees == 0);
    pool.deallocate(b);
    s = pool.stats();
    CHECK(s.bytes_in_use == 512);
    CHECK(s.peak_bytes_in_use == 2048);
    CHECK(s.bytes_reserved == 2048);  // freed blocks stay reserved (cached)
    pool.reset_peak();
    CHECK(pool.stats().peak_bytes_in_use == 512);
    pool.release_cached();
    s = pool.stats();
    CHECK(s.bytes_reserved == 512);
    CHECK(s.raw_frees == 1);
    CHECK(c.frees == 1);
    CHECK(c.live_bytes == 512);
    // A pointer the pool never handed out is refused; nullptr is accepted.
    int other = 0;
    CHECK_FALSE(pool.deallocate(&other));
    CHECK(pool.deallocate(nullptr));
    pool.deallocate(a);
    CHECK(pool.stats().bytes_in_use == 0);
    // Zero-byte requests get a real (smallest-class) block.
    void* z = pool.allocate(0, stream(0));
    CHECK(z != nullptr);
    pool.deallocate(z);
  }
  // The destructor returns every cached block.
  CHECK(c.live_bytes == 0);
  CHECK(c.allocs == c.frees);
}

TEST_CASE("core/allocator: CachingPool retries after releasing its cache when out of memory", "[core][cpu]") {
  FakeCounters c;
  c.limit = 6 * 1024;
  CachingPool<FakeBackend> pool(FakeBackend{&c}, 512);
  void* a = pool.allocate(2048, stream(0));
  void* b = pool.allocate(1024, stream(0));
  pool.deallocate(a);  // 2048 cached, 1024 in use, 3072 held by the backend
  // 4096 more would exceed the 6 KiB limit unless the cached 2048 go back first.
  void* big = pool.allocate(4096, stream(0));
  REQUIRE(big != nullptr);
  CHECK(c.frees == 1);
  auto s = pool.stats();
  CHECK(s.bytes_in_use == 4096 + 1024);
  CHECK(s.bytes_reserved == 4096 + 1024);
  CHECK(s.raw_frees == 1);
  // Nothing left to release: the pool reports failure with nullptr.
  CHECK(pool.allocate(4096, stream(0)) == nullptr);
  CHECK(pool.stats().raw_allocations == 3);
  pool.deallocate(big);
  pool.deallocate(b);
}

TEST_CASE("core/allocator: cpu_allocator returns 64-byte aligned blocks", "[core][cpu]") {
  auto& alloc = drcnn::cpu_allocator();
  std::vector<void*> ptrs;
  for (size_t bytes : {size_t(1), size_t(3), size_t(63), size_t(64), size_t(65), size_t(1000), size_t(4097),
                       kMiB + 3, 3 * kMiB}) {
    void* p = alloc.allocate(bytes, Stream{});
    CHECK(reinterpret_cast<uintptr_t>(p) % 64 == 0);
    ptrs.push_back(p);
  }
  for (void* p : ptrs) alloc.deallocate(p);
  const drcnn::Tensor t = drcnn::Tensor::empty({3, 7}, drcnn::DType::Float64);
  CHECK(reinterpret_cast<uintptr_t>(t.data_ptr()) % 64 == 0);
}

TEST_CASE("core/allocator: cpu_allocator reaches a steady state on repeated shapes", "[core][cpu]") {
  auto& alloc = drcnn::cpu_allocator();
  auto iteration = [] {
    using drcnn::Tensor;
    Tensor a = Tensor::empty({128, 256});                      // 128 KiB
    Tensor b = Tensor::empty({3, 5}, drcnn::DType::Int64);
    Tensor c = Tensor::empty({1024, 1024});                    // 4 MiB (octave classes)
    Tensor d = Tensor::zeros({77});
    Tensor e = a.clone();
  };
  iteration();
  const auto before = alloc.stats();
  for (int i = 0; i < 50; ++i) iteration();
  const auto after = alloc.stats();
  CHECK(after.raw_allocations == before.raw_allocations);
  CHECK(after.bytes_in_use == before.bytes_in_use);
}

TEST_CASE("core/allocator: cpu_allocator reports out of memory as drcnn::Error", "[core][cpu]") {
  auto& alloc = drcnn::cpu_allocator();
  REQUIRE_THROWS_AS(alloc.allocate(size_t(1) << 62, Stream{}), drcnn::Error);
  REQUIRE_THROWS_WITH(alloc.allocate(size_t(1) << 62, Stream{}), Catch::Contains("out of host memory"));
}

TEST_CASE("core/allocator: CUDA allocators fail clearly without a device", "[core][cpu]") {
  // In a CPU-only build the reason is the build; in a CUDA build on a machine without a GPU
  // (ours) it is the missing device. With a device, tests/cuda covers the allocator.
  if (drcnn::cuda::device_count() > 0) {
    SUCCEED("a CUDA device is present: covered by tests/cuda");
    return;
  }
  const std::string reason = DRCNN_WITH_CUDA ? "no CUDA device" : "built without CUDA";
  REQUIRE_THROWS_WITH(drcnn::cuda_allocator(0), Catch::Contains("cuda_allocator(0)") && Catch::Contains(reason));
  REQUIRE_THROWS_WITH(drcnn::allocator_for(drcnn::Device::cuda(0)), Catch::Contains(reason));
  CHECK(&drcnn::allocator_for(drcnn::Device::cpu()) == &drcnn::cpu_allocator());
}
