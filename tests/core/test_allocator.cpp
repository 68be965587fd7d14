// Allocators (include/drcnn/core/allocator.h): the size-class rule, CachingPool over a fake
// counting backend (reuse, streams, statistics, cache release, the OOM retry, the cap on cached
// bytes, uncached frees), over a fake backend with stream events (record_stream: cross-stream
// reuse waits for the events), call_with_flush_retry, and the process-wide CPU allocator
// (alignment, steady state).
#include <catch2/catch.hpp>

#include "drcnn/config.h"

#include <cstdlib>
#include <memory>
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

// FakeBackend plus stream events: an event belongs to a stream and completes when the test
// says that stream's work is done (complete()) or when the pool waits on it (event_wait).
struct FakeEvent {
  void* stream;
  bool done = false;
};
struct FakeEvents {
  std::vector<std::unique_ptr<FakeEvent>> events;
  size_t recorded = 0, waits = 0, destroyed = 0;
  bool already_complete = false;  // record_event returns nullptr (the backend waited itself)
  void complete(Stream s) {
    for (auto& e : events)
      if (e->stream == s.handle) e->done = true;
  }
};
struct FakeEventBackend : FakeBackend {
  FakeEvents* ev;
  void* record_event(void* s) {
    ++ev->recorded;
    if (ev->already_complete) return nullptr;
    ev->events.push_back(std::make_unique<FakeEvent>(FakeEvent{s}));
    return ev->events.back().get();
  }
  bool event_done(void* e) { return static_cast<FakeEvent*>(e)->done; }
  void event_wait(void* e) {
    ++ev->waits;
    static_cast<FakeEvent*>(e)->done = true;
  }
  void event_destroy(void*) { ++ev->destroyed; }
};
static_assert(drcnn::StreamEventBackend<FakeEventBackend>);
static_assert(!drcnn::StreamEventBackend<FakeBackend>);

// A PoolAllocator over the fake backend (out_of_memory throws like the real ones).
struct FakeAllocator final : drcnn::PoolAllocator<FakeBackend> {
  explicit FakeAllocator(FakeCounters* c) : PoolAllocator(FakeBackend{c}, 512) {}
  [[noreturn]] void out_of_memory(size_t bytes) const override { DRCNN_FAIL("fake allocator: out of memory, ", bytes); }
};
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

TEST_CASE("core/allocator: a block used on another stream is reused only after that stream's event", "[core][cpu]") {
  FakeCounters c;
  FakeEvents ev;
  CachingPool<FakeEventBackend> pool(FakeEventBackend{{&c}, &ev}, 512);
  void* a = pool.allocate(4096, stream(1));
  REQUIRE(pool.record_stream(a, stream(2)));
  REQUIRE(pool.record_stream(a, stream(2)));  // recorded once
  REQUIRE(pool.record_stream(a, stream(1)));  // the allocation stream needs no event
  REQUIRE(pool.deallocate(a));
  CHECK(ev.recorded == 1);
  CHECK(ev.events.at(0)->stream == stream(2).handle);
  auto s = pool.stats();
  CHECK(s.bytes_pending == 4096);
  CHECK(s.bytes_cached == 0);
  CHECK(s.bytes_in_use == 0);
  CHECK(s.bytes_reserved == 4096);
  // Stream 2 has not finished: the next request on stream 1 gets a new block.
  void* b = pool.allocate(4096, stream(1));
  CHECK(b != a);
  CHECK(c.allocs == 2);
  // Once the event has completed, the block is reusable on its allocation stream (only).
  ev.complete(stream(2));
  void* other = pool.allocate(4096, stream(2));
  CHECK(other != a);
  CHECK(ev.destroyed == 1);
  CHECK(pool.stats().bytes_pending == 0);
  CHECK(pool.stats().bytes_cached == 4096);
  void* a2 = pool.allocate(4096, stream(1));
  CHECK(a2 == a);
  CHECK(c.allocs == 3);
  CHECK(ev.waits == 0);  // never blocked
  for (void* p : {b, other, a2}) pool.deallocate(p);
  CHECK(ev.recorded == 1);  // a freed block forgets the streams recorded on it: a2 had none
}

TEST_CASE("core/allocator: a block recorded on two streams waits for both events", "[core][cpu]") {
  FakeCounters c;
  FakeEvents ev;
  CachingPool<FakeEventBackend> pool(FakeEventBackend{{&c}, &ev}, 512);
  void* a = pool.allocate(1000, stream(1));
  pool.record_stream(a, stream(2));
  pool.record_stream(a, stream(3));
  pool.deallocate(a);
  CHECK(ev.recorded == 2);
  ev.complete(stream(3));
  void* b = pool.allocate(1000, stream(1));
  CHECK(b != a);
  CHECK(pool.stats().bytes_pending == 1024);
  ev.complete(stream(2));
  void* a2 = pool.allocate(1000, stream(1));
  CHECK(a2 == a);
  CHECK(ev.destroyed == 2);
  pool.deallocate(b);
  pool.deallocate(a2);
  pool.release_cached();
  // A backend that reports the work complete at record time (nullptr) caches the block at once.
  ev.already_complete = true;
  void* d = pool.allocate(1000, stream(1));
  pool.record_stream(d, stream(2));
  pool.deallocate(d);
  CHECK(pool.stats().bytes_pending == 0);
  CHECK(pool.allocate(1000, stream(1)) == d);
  pool.deallocate(d);
}

TEST_CASE("core/allocator: record_stream on a pointer the pool does not hold is refused", "[core][cpu]") {
  FakeCounters c;
  FakeEvents ev;
  CachingPool<FakeEventBackend> pool(FakeEventBackend{{&c}, &ev}, 512);
  int other = 0;
  CHECK_FALSE(pool.record_stream(&other, stream(2)));
  void* a = pool.allocate(10, stream(1));
  pool.deallocate(a);
  CHECK_FALSE(pool.record_stream(a, stream(2)));  // freed already
  FakeAllocator alloc(&c);
  REQUIRE_THROWS_WITH(alloc.record_stream(&other, stream(2)),
                      Catch::Contains("record_stream") && Catch::Contains("not a live block"));
  // Without stream events (the CPU) record_stream validates and otherwise does nothing.
  void* p = alloc.allocate(100, stream(0));
  alloc.record_stream(p, stream(5));
  alloc.deallocate(p);
  CHECK(alloc.allocate(100, stream(0)) == p);
  alloc.deallocate(p);
}

TEST_CASE("core/allocator: out of memory waits for pending blocks, flushes and retries", "[core][cpu]") {
  FakeCounters c;
  c.limit = 8 * 1024;
  FakeEvents ev;
  CachingPool<FakeEventBackend> pool(FakeEventBackend{{&c}, &ev}, 512);
  void* a = pool.allocate(4096, stream(1));
  void* b = pool.allocate(2048, stream(1));
  pool.record_stream(a, stream(2));
  pool.deallocate(a);  // pending on stream 2's event
  REQUIRE(pool.stats().bytes_pending == 4096);
  // 6 KiB more does not fit beside the 6 KiB held: the pool waits for stream 2, frees a, retries.
  void* big = pool.allocate(6144, stream(1));
  REQUIRE(big != nullptr);
  CHECK(ev.waits == 1);
  CHECK(ev.destroyed == 1);
  CHECK(c.frees == 1);
  const auto s = pool.stats();
  CHECK(s.cache_flushes == 1);
  CHECK(s.bytes_pending == 0);
  CHECK(s.bytes_cached == 0);
  CHECK(s.bytes_reserved == 6144 + 2048);
  pool.deallocate(big);
  pool.deallocate(b);
}

TEST_CASE("core/allocator: release_cached waits for pending blocks and frees them", "[core][cpu]") {
  FakeCounters c;
  FakeEvents ev;
  {
    CachingPool<FakeEventBackend> pool(FakeEventBackend{{&c}, &ev}, 512);
    void* a = pool.allocate(1024, stream(1));
    pool.record_stream(a, stream(2));
    pool.deallocate(a);
    pool.release_cached();
    CHECK(ev.waits == 1);
    CHECK(c.live_bytes == 0);
    CHECK(pool.stats().bytes_reserved == 0);
    void* d = pool.allocate(1024, stream(1));
    pool.record_stream(d, stream(3));
    pool.deallocate(d);
  }
  // The destructor too.
  CHECK(ev.waits == 2);
  CHECK(c.live_bytes == 0);
  CHECK(ev.destroyed == ev.recorded);
}

TEST_CASE("core/allocator: deallocate_uncached returns the block to the backend at once", "[core][cpu]") {
  FakeCounters c;
  FakeEvents ev;
  CachingPool<FakeEventBackend> pool(FakeEventBackend{{&c}, &ev}, 512);
  void* a = pool.allocate(3 * kMiB, stream(1));
  REQUIRE(pool.deallocate_uncached(a));
  CHECK(c.frees == 1);
  CHECK(c.live_bytes == 0);
  auto s = pool.stats();
  CHECK(s.bytes_reserved == 0);
  CHECK(s.bytes_cached == 0);
  CHECK(s.bytes_in_use == 0);
  // Recorded streams are waited for before the free.
  void* b = pool.allocate(100, stream(1));
  pool.record_stream(b, stream(2));
  REQUIRE(pool.deallocate_uncached(b));
  CHECK(ev.waits == 1);
  CHECK(ev.destroyed == 1);
  CHECK(c.live_bytes == 0);
  int other = 0;
  CHECK_FALSE(pool.deallocate_uncached(&other));
  CHECK(pool.deallocate_uncached(nullptr));
}

TEST_CASE("core/allocator: the cap on cached bytes frees the least recently freed blocks", "[core][cpu]") {
  FakeCounters c;
  CachingPool<FakeBackend> pool(FakeBackend{&c}, 512);
  pool.set_max_cached_bytes(4096);
  void* a = pool.allocate(2048, stream(1));
  void* b = pool.allocate(1024, stream(1));
  void* d = pool.allocate(2048, stream(2));
  pool.deallocate(a);  // cached: a (2048)
  pool.deallocate(b);  // cached: a, b (3072)
  CHECK(c.frees == 0);
  CHECK(pool.stats().largest_cached_block == 2048);
  pool.deallocate(d);  // 5120 > 4096: a, the least recently freed, goes back
  CHECK(c.frees == 1);
  CHECK(c.live.count(a) == 0);
  auto s = pool.stats();
  CHECK(s.bytes_cached == 3072);
  CHECK(s.bytes_reserved == 3072);
  CHECK(pool.allocate(1024, stream(1)) == b);  // b and d are still cached
  CHECK(pool.allocate(2048, stream(2)) == d);
  CHECK(c.allocs == 3);
  pool.deallocate(b);  // cached: b
  pool.deallocate(d);  // cached: b, d
  // Lowering the cap evicts at once, oldest first.
  pool.set_max_cached_bytes(2048);
  CHECK(c.live.count(b) == 0);
  CHECK(c.live.count(d) == 1);
  CHECK(pool.stats().bytes_cached == 2048);
  // Cap 0: nothing is cached.
  pool.set_max_cached_bytes(0);
  CHECK(c.live_bytes == 0);
  void* e = pool.allocate(512, stream(1));
  pool.deallocate(e);
  CHECK(c.live_bytes == 0);
  CHECK(pool.stats().bytes_cached == 0);
  CHECK(pool.stats().largest_cached_block == 0);
}

TEST_CASE("core/allocator: the cap holds over random traffic", "[core][cpu]") {
  // Property: after every operation the cached bytes stay within the cap, the counters agree
  // with the backend, and no live block is handed out twice.
  FakeCounters c;
  FakeEvents ev;
  CachingPool<FakeEventBackend> pool(FakeEventBackend{{&c}, &ev}, 512);
  const size_t cap = 64 * 1024;
  pool.set_max_cached_bytes(cap);
  std::mt19937 rng(11);
  std::vector<void*> live;
  std::set<void*> live_set;
  for (int i = 0; i < 4000; ++i) {
    const int op = int(rng() % 10);
    if (op < 5 || live.empty()) {
      void* p = pool.allocate(size_t(1 + rng() % 20000), stream(1 + rng() % 2));
      REQUIRE(live_set.insert(p).second);
      live.push_back(p);
      if (rng() % 3 == 0) pool.record_stream(p, stream(3));
    } else if (op < 9) {
      const size_t k = rng() % live.size();
      live_set.erase(live[k]);
      pool.deallocate(live[k]);
      live[k] = live.back();
      live.pop_back();
    } else {
      ev.complete(stream(3));
    }
    const auto s = pool.stats();
    REQUIRE(s.bytes_cached <= cap);
    REQUIRE(s.bytes_reserved == c.live_bytes);
    REQUIRE(s.bytes_reserved == s.bytes_in_use + s.bytes_cached + s.bytes_pending);
  }
  for (void* p : live) pool.deallocate(p);
}

TEST_CASE("core/allocator: call_with_flush_retry flushes the cache once on out of memory", "[core][cpu]") {
  FakeCounters c;
  FakeAllocator alloc(&c);
  void* a = alloc.allocate(4096, stream(0));
  alloc.deallocate(a);  // cached
  REQUIRE(c.live_bytes == 4096);
  int calls = 0;
  // A library call that fails for memory while the cache holds anything (as cuBLAS would).
  auto library = [&] {
    ++calls;
    return c.live_bytes == 0 ? 0 : 3;
  };
  auto oom = [](int status) { return status == 3; };
  CHECK(drcnn::call_with_flush_retry(alloc, library, oom) == 0);
  CHECK(calls == 2);
  CHECK(c.frees == 1);
  CHECK(alloc.stats().cache_flushes == 1);
  // Success first time: no flush, one call.
  calls = 0;
  void* b = alloc.allocate(4096, stream(0));
  alloc.deallocate(b);
  CHECK(drcnn::call_with_flush_retry(alloc, [&] { ++calls; return 0; }, oom) == 0);
  CHECK(calls == 1);
  CHECK(alloc.stats().cache_flushes == 1);
  CHECK(c.live_bytes == 4096);
  // Failing twice returns the second failure (the caller reports it).
  calls = 0;
  CHECK(drcnn::call_with_flush_retry(alloc, [&] { ++calls; return 3; }, oom) == 3);
  CHECK(calls == 2);
  CHECK(alloc.stats().cache_flushes == 2);
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

TEST_CASE("core/allocator: Tensor::record_stream is a no-op on the CPU and refuses undefined tensors", "[core][cpu]") {
  auto& alloc = drcnn::cpu_allocator();
  const auto before = alloc.stats();
  {
    const drcnn::Tensor t = drcnn::Tensor::zeros({1000});
    t.record_stream(stream(3));
  }
  const auto after = alloc.stats();
  CHECK(after.bytes_pending == 0);
  CHECK(after.bytes_in_use == before.bytes_in_use);
  REQUIRE_THROWS_WITH(drcnn::Tensor().record_stream(stream(3)), Catch::Contains("record_stream: undefined tensor"));
}
