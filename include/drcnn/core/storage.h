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
}  // namespace drcnn
