// Private helpers of the dispatchers (src/ops/*.cpp) and of Tensor (src/core/tensor.cpp): device selection and building
// launch descriptors from Tensors. Not installed; not part of the public API.
#pragma once
#include <initializer_list>

#include "drcnn/config.h"
#include "drcnn/core/tensor.h"
#include "drcnn/ops/launch.h"

namespace drcnn::runtime {

/// Runs cpu_fn() for CPU tensors, cuda_fn(stream) under a DeviceGuard for CUDA tensors,
/// and fails clearly when the tensor is on CUDA in a build without it.
template <typename CpuFn, typename CudaFn>
void on_device(Device device, [[maybe_unused]] const char* op, CpuFn&& cpu_fn, CudaFn&& cuda_fn) {
  if (device.is_cpu()) {
    cpu_fn();
    return;
  }
#if DRCNN_WITH_CUDA
  DeviceGuard guard(device);
  cuda_fn(cuda::current_stream(device));
#else
  (void)cuda_fn;
  DRCNN_FAIL(op, ": tensor is on ", device, " but drcnn was built without CUDA (DRCNN_WITH_CUDA=OFF)");
#endif
}

/// Checks that all tensors are defined and on one device; names the op and the offender.
void check_same_device(const char* op, std::initializer_list<const Tensor*> tensors);
void check_same_dtype(const char* op, const Tensor& a, const Tensor& b);
void check_defined(const char* op, const Tensor& t, const char* name);

/// Elementwise launch over `out`'s shape; each input is broadcast to it (stride 0 along
/// broadcast dims). Dims that every operand can merge are collapsed, and size-1 dims dropped.
ops::ElementwiseLaunch make_elementwise_launch(const Tensor& out, std::initializer_list<const Tensor*> inputs);

/// Strides of `t` when broadcast to `shape` (0 where t has extent 1 or lacks the dim).
Strides broadcast_strides(const Tensor& t, const Shape& shape);
}  // namespace drcnn::runtime
