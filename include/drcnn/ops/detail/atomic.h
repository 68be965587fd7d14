// atomic_add: atomicAdd on the device, plain += on the host (the CPU launchers partition
// work so that no two threads ever update the same element).
#pragma once
#include <cstdint>
#include <type_traits>

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

/// Raises an error flag that many threads may set at once (all store the same value).
DRCNN_HD void raise_flag(int* flag) {
#if DRCNN_ON_DEVICE
  atomicExch(flag, 1);
#else
  __atomic_store_n(flag, 1, __ATOMIC_RELAXED);  // a relaxed atomic store: no data race
#endif
}
}  // namespace drcnn::ops::detail
