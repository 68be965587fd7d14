// Allocators: a size-class caching pool shared by the CPU allocator (64-byte aligned) and the
// CUDA caching allocator (stream-ordered). The pool logic is backend-neutral and tested on the
// CPU; only the raw allocate/free calls differ per backend.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <unordered_map>

#include "drcnn/core/device.h"

namespace drcnn {

/// Byte counters every allocator reports.
struct AllocatorStats {
  size_t bytes_in_use = 0;     // handed out and not yet returned
  size_t peak_bytes_in_use = 0;
  size_t bytes_reserved = 0;   // obtained from the system (in use + cached)
  size_t raw_allocations = 0;  // calls to the system allocator (malloc / cudaMalloc)
  size_t raw_frees = 0;
};

/// Base class: allocate/deallocate bytes on one device, plus statistics and cache control.
class Allocator {
 public:
  virtual ~Allocator() = default;
  /// Returns at least `bytes` bytes (never nullptr for bytes > 0; throws drcnn::Error on OOM).
  /// `stream` orders reuse on CUDA: a freed block is reused only by work on the same stream.
  virtual void* allocate(size_t bytes, Stream stream) = 0;
  virtual void deallocate(void* ptr) noexcept = 0;
  virtual AllocatorStats stats() const = 0;
  /// Returns every cached, unused block to the system.
  virtual void empty_cache() = 0;
  /// Resets the peak counter to the current bytes in use.
  virtual void reset_peak() = 0;
};

/// Rounds a request up to its size class: multiples of `granule` below 1 MiB, then to
/// 1/8-octave steps (at most 12.5% waste), so that repeated shapes hit the cache exactly.
size_t pool_size_class(size_t bytes, size_t granule);

/// A caching pool over a raw backend: blocks are kept per (size class, stream) when freed
/// and handed out again for the same size class and stream. Thread-safe.
/// Backend needs: void* raw_allocate(size_t) (nullptr on failure) and void raw_free(void*).
template <typename Backend>
class CachingPool {
 public:
  explicit CachingPool(Backend backend, size_t granule) : m_backend(backend), m_granule(granule) {}
  ~CachingPool() { release_cached(); }

  void* allocate(size_t bytes, Stream stream) {
    const size_t size = pool_size_class(bytes == 0 ? 1 : bytes, m_granule);
    std::lock_guard<std::mutex> lock(m_mutex);
    auto it = m_free.find(Key{size, stream.handle});
    void* ptr = nullptr;
    if (it != m_free.end()) {
      ptr = it->second;
      m_free.erase(it);
    } else {
      ptr = m_backend.raw_allocate(size);
      if (!ptr) {  // out of memory: give the cache back and try once more
        release_cached_locked();
        ptr = m_backend.raw_allocate(size);
      }
      if (!ptr) return nullptr;
      ++m_stats.raw_allocations;
      m_stats.bytes_reserved += size;
    }
    m_live.emplace(ptr, Block{size, stream.handle});
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
    const Block b = it->second;
    m_live.erase(it);
    m_stats.bytes_in_use -= b.size;
    m_free.emplace(Key{b.size, b.stream}, ptr);
    return true;
  }
  AllocatorStats stats() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_stats;
  }
  void release_cached() {
    std::lock_guard<std::mutex> lock(m_mutex);
    release_cached_locked();
  }
  void reset_peak() {
    std::lock_guard<std::mutex> lock(m_mutex);
    m_stats.peak_bytes_in_use = m_stats.bytes_in_use;
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
    void* stream;
  };
  void release_cached_locked() {
    for (auto& [key, ptr] : m_free) {
      m_backend.raw_free(ptr);
      m_stats.bytes_reserved -= key.size;
      ++m_stats.raw_frees;
    }
    m_free.clear();
  }

  Backend m_backend;
  size_t m_granule;
  mutable std::mutex m_mutex;
  std::multimap<Key, void*> m_free;
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
  AllocatorStats stats() const override { return m_pool.stats(); }
  void empty_cache() override { m_pool.release_cached(); }
  void reset_peak() override { m_pool.reset_peak(); }

 protected:
  /// Throws drcnn::Error describing the failed request (the pool already released its cache
  /// and retried once).
  [[noreturn]] virtual void out_of_memory(size_t bytes) const = 0;
  CachingPool<Backend> m_pool;
};

/// The process-wide CPU allocator (64-byte aligned blocks, cached by size class).
Allocator& cpu_allocator();
/// The process-wide caching allocator of CUDA device `index` (throws when built without CUDA).
Allocator& cuda_allocator(int index);
/// The allocator for `device`.
Allocator& allocator_for(Device device);
}  // namespace drcnn
