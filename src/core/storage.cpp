#include "drcnn/core/storage.h"

namespace drcnn {

Storage::Storage(size_t bytes, Device device, Stream stream)
    : m_bytes(bytes), m_device(device), m_allocator(&allocator_for(device)) {
  m_data = m_allocator->allocate(bytes, stream);
}

Storage::~Storage() { m_allocator->deallocate(m_data); }
}  // namespace drcnn
