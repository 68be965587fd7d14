// Allocators: a size-class caching pool shared by the CPU allocator (64-byte aligned) and the
// CUDA caching allocator (stream-ordered). The pool logic is backend-neutral and tested on the
// CPU with a fake backend (tests/core/test_allocator.cpp); only the raw allocate/free calls and
// the stream events differ per backend. docs/cuda-memory.md describes the CUDA side.
#pragma once
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <list>
#include <map>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "drcnn/core/device.h"
#include "drcnn/core/error.h"

namespace drcnn {

/// Byte counters every allocator reports.
struct AllocatorStats {
  size_t bytes_in_use = 0;     // handed out and not yet returned
  size_t peak_bytes_in_use = 0;
  size_t bytes_reserved = 0;   // obtained from the system (in use + cached + pending)
  size_t bytes_cached = 0;     // freed, kept for reuse, reusable now
  size_t bytes_pending = 0;    // freed, but another stream may still use them (see record_stream)
  size_t largest_cached_block = 0;
  size_t raw_allocations = 0;  // calls to the system allocator (malloc / cudaMalloc)
  size_t raw_frees = 0;
  size_t cache_flushes = 0;    // whole-cache releases: empty_cache() and out-of-memory retries
};

/// Base class: allocate/deallocate bytes on one device, plus statistics and cache control.
class Allocator {
 public:
  virtual ~Allocator() = default;
  /// Returns at least `bytes` bytes (never nullptr for bytes > 0; throws drcnn::Error on OOM).
  /// `stream` orders reuse on CUDA: a freed block is reused only by work on the same stream.
  virtual void* allocate(size_t bytes, Stream stream) = 0;
  virtual void deallocate(void* ptr) noexcept = 0;
  /// Returns the block to the system at once instead of caching it (for large one-off buffers,
  /// such as the cuDNN algorithm-search workspace). Waits for the streams recorded on it.
  virtual void deallocate_uncached(void* ptr) noexcept = 0;
  /// Declares that work queued on `stream` (other than the block's allocation stream) uses the
  /// block at `ptr`: once freed, the block is reused only after that work completes (an event
  /// recorded on `stream` at the free). Throws drcnn::Error when `ptr` is not a live block of
  /// this allocator. A no-op for the CPU (one host "stream").
  virtual void record_stream(void* ptr, Stream stream) = 0;
  virtual AllocatorStats stats() const = 0;
  /// Returns every cached, unused block to the system (waiting for recorded streams first).
  virtual void empty_cache() = 0;
  /// Resets the peak counter to the current bytes in use.
  virtual void reset_peak() = 0;
  /// Caps the bytes kept in the cache: freeing beyond it returns the least recently freed
  /// blocks to the system. Default: no cap (the out-of-memory flush is the only limit).
  virtual void set_max_cached_bytes(size_t bytes) = 0;
};

/// Rounds a request up to its size class: multiples of `granule` below 1 MiB, then to
/// 1/8-octave steps (at most 12.5% waste), so that repeated shapes hit the cache exactly.
size_t pool_size_class(size_t bytes, size_t granule);

/// A backend that can order reuse across streams: record_event(stream) returns an event that
/// completes when the work queued on `stream` so far has completed (nullptr when it is already
/// complete, or when the backend waited instead); event_done polls it, event_wait blocks on it,
/// event_destroy frees it. None of them may throw.
template <typename B>
concept StreamEventBackend = requires(B b, void* stream, void* event) {
  { b.record_event(stream) } -> std::same_as<void*>;
  { b.event_done(event) } -> std::same_as<bool>;
  b.event_wait(event);
  b.event_destroy(event);
};

/// A caching pool over a raw backend: blocks are kept per (size class, stream) when freed
/// and handed out again for the same size class and stream. Thread-safe.
/// Backend needs: void* raw_allocate(size_t) (nullptr on failure) and void raw_free(void*)
/// (noexcept); a StreamEventBackend also supports record_stream.
/// - Cross-stream use: a block recorded on other streams goes, when freed, to a pending list
///   with one event per recorded stream; it becomes reusable (on its allocation stream) only
///   when every event has completed. Pending blocks are polled at each allocation.
/// - Out of memory: waits for the pending blocks, returns the whole cache to the system and
///   tries once more; nullptr when that fails too.
/// - Cap: at most max_cached_bytes in reusable cached blocks; above it the least recently
///   freed go back to the system.
template <typename Backend>
class CachingPool {
 public:
  static constexpr bool kHasEvents = StreamEventBackend<Backend>;

  explicit CachingPool(Backend backend, size_t granule) : m_backend(backend), m_granule(granule) {}
  ~CachingPool() { release_cached(); }
  CachingPool(const CachingPool&) = delete;
  CachingPool& operator=(const CachingPool&) = delete;

  void* allocate(size_t bytes, Stream stream) {
    const size_t size = pool_size_class(bytes == 0 ? 1 : bytes, m_granule);
    std::lock_guard<std::mutex> lock(m_mutex);
    poll_pending_locked();
    const Key key{size, stream.handle};
    void* ptr = take_cached_locked(key);
    if (!ptr) {
      ptr = m_backend.raw_allocate(size);
      if (!ptr) {  // out of memory: give the cache back and try once more
        flush_locked();
        ptr = m_backend.raw_allocate(size);
      }
      if (!ptr) return nullptr;
      ++m_stats.raw_allocations;
      m_stats.bytes_reserved += size;
    }
    m_live.emplace(ptr, Block{size, stream.handle, {}});
    m_stats.bytes_in_use += size;
    if (m_stats.bytes_in_use > m_stats.peak_bytes_in_use) m_stats.peak_bytes_in_use = m_stats.bytes_in_use;
    return ptr;
  }
  /// Returns false when `ptr` was not allocated here.
  bool deallocate(void* ptr) noexcept {
    if (!ptr) return true;
    std::lock_guard<std::mutex> lock(m_mutex);
    auto it = m_live.find(ptr);
    if (it == m_live.end()) return false;
    Block b = std::move(it->second);
    m_live.erase(it);
    m_stats.bytes_in_use -= b.size;
    const Key key{b.size, b.stream};
    if constexpr (kHasEvents) {
      std::vector<void*> events;
      for (void* s : b.used_on)
        if (void* e = m_backend.record_event(s)) events.push_back(e);
      if (!events.empty()) {
        m_pending.push_back(Pending{key, ptr, std::move(events)});
        m_stats.bytes_pending += b.size;
        return true;
      }
    }
    put_cached_locked(key, ptr);
    enforce_cap_locked();
    return true;
  }
  /// Frees `ptr` to the backend now (after waiting for its recorded streams); false when
  /// `ptr` was not allocated here.
  bool deallocate_uncached(void* ptr) noexcept {
    if (!ptr) return true;
    std::lock_guard<std::mutex> lock(m_mutex);
    auto it = m_live.find(ptr);
    if (it == m_live.end()) return false;
    const Block b = std::move(it->second);
    m_live.erase(it);
    m_stats.bytes_in_use -= b.size;
    if constexpr (kHasEvents) {
      for (void* s : b.used_on)
        if (void* e = m_backend.record_event(s)) {
          m_backend.event_wait(e);
          m_backend.event_destroy(e);
        }
    }
    raw_free_locked(ptr, b.size);
    return true;
  }
  /// Records that `stream` uses the live block `ptr`; false when `ptr` is not live here.
  bool record_stream(void* ptr, Stream stream) {
    std::lock_guard<std::mutex> lock(m_mutex);
    auto it = m_live.find(ptr);
    if (it == m_live.end()) return false;
    if constexpr (kHasEvents) {
      Block& b = it->second;
      if (stream.handle == b.stream) return true;
      for (void* s : b.used_on)
        if (s == stream.handle) return true;
      b.used_on.push_back(stream.handle);
    }
    return true;
  }
  AllocatorStats stats() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    AllocatorStats s = m_stats;
    s.largest_cached_block = m_free.empty() ? 0 : m_free.rbegin()->first.size;
    return s;
  }
  /// Returns every cached block to the backend, waiting for the pending ones first.
  void release_cached() {
    std::lock_guard<std::mutex> lock(m_mutex);
    flush_locked();
  }
  void reset_peak() {
    std::lock_guard<std::mutex> lock(m_mutex);
    m_stats.peak_bytes_in_use = m_stats.bytes_in_use;
  }
  void set_max_cached_bytes(size_t bytes) {
    std::lock_guard<std::mutex> lock(m_mutex);
    m_max_cached = bytes;
    enforce_cap_locked();
  }

 private:
  struct Key {
    size_t size;
    void* stream;
    friend bool operator<(const Key& a, const Key& b) {
      return a.size != b.size ? a.size < b.size : a.stream < b.stream;
    }
  };
  struct Block {
    size_t size;
    void* stream;                // allocation stream: reuse is ordered on it
    std::vector<void*> used_on;  // other streams recorded with record_stream
  };
  struct Pending {
    Key key;
    void* ptr;
    std::vector<void*> events;  // not yet seen complete
  };
  using Lru = std::list<std::pair<Key, void*>>;  // cached blocks, least recently freed first

  void* take_cached_locked(const Key& key) {
    auto it = m_free.find(key);
    if (it == m_free.end()) return nullptr;
    void* ptr = it->second.first;
    m_lru.erase(it->second.second);
    m_free.erase(it);
    m_stats.bytes_cached -= key.size;
    return ptr;
  }
  void put_cached_locked(const Key& key, void* ptr) {
    m_lru.emplace_back(key, ptr);
    m_free.emplace(key, std::make_pair(ptr, std::prev(m_lru.end())));
    m_stats.bytes_cached += key.size;
  }
  void raw_free_locked(void* ptr, size_t size) {
    m_backend.raw_free(ptr);
    m_stats.bytes_reserved -= size;
    ++m_stats.raw_frees;
  }
  // Returns the least recently freed cached blocks to the backend until under the cap.
  void enforce_cap_locked() {
    while (m_stats.bytes_cached > m_max_cached && !m_lru.empty()) {
      const auto [key, ptr] = m_lru.front();
      auto [it, end] = m_free.equal_range(key);
      while (it != end && it->second.first != ptr) ++it;
      m_free.erase(it);  // present: every LRU entry has its m_free entry
      m_lru.pop_front();
      m_stats.bytes_cached -= key.size;
      raw_free_locked(ptr, key.size);
    }
  }
  // Moves pending blocks whose events have all completed to the cache.
  void poll_pending_locked() {
    if constexpr (kHasEvents) {
      if (m_pending.empty()) return;
      bool moved = false;
      for (size_t i = 0; i < m_pending.size();) {
        Pending& p = m_pending[i];
        std::erase_if(p.events, [&](void* e) {
          if (!m_backend.event_done(e)) return false;
          m_backend.event_destroy(e);
          return true;
        });
        if (p.events.empty()) {
          m_stats.bytes_pending -= p.key.size;
          put_cached_locked(p.key, p.ptr);
          m_pending[i] = std::move(m_pending.back());
          m_pending.pop_back();
          moved = true;
        } else {
          ++i;
        }
      }
      if (moved) enforce_cap_locked();
    }
  }
  // Waits for every pending block, then returns the whole cache to the backend.
  void flush_locked() {
    if constexpr (kHasEvents) {
      for (Pending& p : m_pending) {
        for (void* e : p.events) {
          m_backend.event_wait(e);
          m_backend.event_destroy(e);
        }
        m_stats.bytes_pending -= p.key.size;
        put_cached_locked(p.key, p.ptr);
      }
      m_pending.clear();
    }
    for (auto& [key, entry] : m_free) raw_free_locked(entry.first, key.size);
    m_free.clear();
    m_lru.clear();
    m_stats.bytes_cached = 0;
    ++m_stats.cache_flushes;
  }

  Backend m_backend;
  size_t m_granule;
  size_t m_max_cached = std::numeric_limits<size_t>::max();
  mutable std::mutex m_mutex;
  std::multimap<Key, std::pair<void*, typename Lru::iterator>> m_free;
  Lru m_lru;
  std::vector<Pending> m_pending;
  std::unordered_map<void*, Block> m_live;
  AllocatorStats m_stats;
};

/// An Allocator over a CachingPool (the CPU and CUDA allocators are both this); a subclass
/// only says how running out of memory is reported.
template <typename Backend>
class PoolAllocator : public Allocator {
 public:
  PoolAllocator(Backend backend, size_t granule) : m_pool(backend, granule) {}
  void* allocate(size_t bytes, Stream stream) override {
    void* p = m_pool.allocate(bytes, stream);
    if (!p) out_of_memory(bytes);
    return p;
  }
  void deallocate(void* ptr) noexcept override { m_pool.deallocate(ptr); }
  void deallocate_uncached(void* ptr) noexcept override { m_pool.deallocate_uncached(ptr); }
  void record_stream(void* ptr, Stream stream) override {
    DRCNN_CHECK(m_pool.record_stream(ptr, stream), "record_stream: ", ptr,
                " is not a live block of this allocator (freed already, or from another device)");
  }
  AllocatorStats stats() const override { return m_pool.stats(); }
  void empty_cache() override { m_pool.release_cached(); }
  void reset_peak() override { m_pool.reset_peak(); }
  void set_max_cached_bytes(size_t bytes) override { m_pool.set_max_cached_bytes(bytes); }

 protected:
  /// Throws drcnn::Error describing the failed request (the pool already released its cache
  /// and retried once).
  [[noreturn]] virtual void out_of_memory(size_t bytes) const = 0;
  CachingPool<Backend> m_pool;
};

/// Runs `call()`; when `out_of_memory(result)` says that it failed for lack of memory, returns
/// `alloc`'s cached blocks to the system and runs it once more, returning the second result.
/// For library calls that allocate device memory themselves (cuBLAS, cuDNN), so that memory
/// the pool holds but does not use cannot make them fail.
template <typename Call, typename IsOutOfMemory>
auto call_with_flush_retry(Allocator& alloc, const Call& call, const IsOutOfMemory& out_of_memory) {
  auto result = call();
  if (!out_of_memory(result)) return result;
  alloc.empty_cache();
  return call();
}

/// The process-wide CPU allocator (64-byte aligned blocks, cached by size class).
Allocator& cpu_allocator();
/// The process-wide caching allocator of CUDA device `index` (throws when built without CUDA).
Allocator& cuda_allocator(int index);
/// The allocator for `device`.
Allocator& allocator_for(Device device);
}  // namespace drcnn
