// atomic_add: atomicAdd on the device, plain += on the host (the CPU launchers partition
// work so that no two threads ever update the same element).
#pragma once
#include <cstdint>

#include "drcnn/core/macros.h"

namespace drcnn::ops::detail {
template <typename T>
DRCNN_HD void atomic_add(T* address, T value) {
#if DRCNN_ON_DEVICE
  if constexpr (sizeof(T) == 8 && !std::is_floating_point_v<T>) {
    atomicAdd(reinterpret_cast<unsigned long long*>(address), static_cast<unsigned long long>(value));
  } else {
    atomicAdd(address, value);
  }
#else
  *address += value;
#endif
}
}  // namespace drcnn::ops::detail
