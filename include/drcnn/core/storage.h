// Storage: a block of bytes on one device, returned to its allocator when the last owner goes.
#pragma once
#include <cstddef>
#include <memory>

#include "drcnn/core/allocator.h"

namespace drcnn {

class Storage {
 public:
  /// Allocates `bytes` on `device` (ordered on `stream` for CUDA).
  Storage(size_t bytes, Device device, Stream stream = {});
  ~Storage();  // never throws
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return m_data; }
  size_t bytes() const { return m_bytes; }
  Device device() const { return m_device; }

 private:
  void* m_data = nullptr;
  size_t m_bytes = 0;
  Device m_device;
  Allocator* m_allocator = nullptr;
};

/// Scratch memory of a backend launcher: `count` elements of T on `device`, ordered on
/// `stream`, from the same caching allocator as Tensor storage and given back to it when the
/// buffer goes. The backends (kernels/) sit below Tensor, so they take their temporaries here.
template <typename T>
class ScratchBuffer {
 public:
  ScratchBuffer() = default;  // no memory; data() is nullptr
  ScratchBuffer(int64_t count, Device device, Stream stream = {})
      : m_storage(std::make_unique<Storage>(size_t(count) * sizeof(T), device, stream)) {}
  T* data() const { return m_storage ? static_cast<T*>(m_storage->data()) : nullptr; }

 private:
  std::unique_ptr<Storage> m_storage;
};
}  // namespace drcnn
