// CUDA device queries, per-thread current streams, DeviceGuard and raw copies (host C++
// against the CUDA runtime; no kernels). Covered by tests/cuda/test_cuda_device.cpp.
#include <cuda_runtime_api.h>

#include <array>
#include <mutex>
#include <string>

#include "cuda/cuda_check.h"
#include "drcnn/core/device.h"
#include "drcnn/core/error.h"
#include "drcnn/ops/launch.h"

namespace drcnn {
namespace cuda {
namespace {
constexpr int kMaxDevices = 64;
struct DeviceInfo {
  int count = 0;
  std::string reason;
};
const DeviceInfo& device_info() {
  static const DeviceInfo info = [] {
    DeviceInfo d;
    const cudaError_t e = cudaGetDeviceCount(&d.count);
    if (e != cudaSuccess) {
      d.count = 0;
      int driver = 0;
      // Without a driver the runtime reports "driver version is insufficient", which reads as
      // if a driver were present but old: say what is really missing.
      if (cudaDriverGetVersion(&driver) == cudaSuccess && driver == 0)
        d.reason = "no CUDA device (no CUDA driver is installed)";
      else
        d.reason = std::string("no CUDA device (") + cudaGetErrorString(e) + ")";
      cudaGetLastError();  // clear the error so later calls start clean
    } else if (d.count == 0) {
      d.reason = "no CUDA device";
    }
    if (d.count > kMaxDevices) d.count = kMaxDevices;
    return d;
  }();
  return info;
}
thread_local std::array<void*, kMaxDevices> t_current_stream{};

void check_device(Device device, const char* op) {
  DRCNN_CHECK(device.is_cuda(), op, ": expected a CUDA device, got ", device);
  DRCNN_CHECK(device.index >= 0 && device.index < device_count(), op, ": ", device, " is not available (",
              device_count(), " visible CUDA devices", device_count() == 0 ? "; " : "",
              device_count() == 0 ? device_info().reason : std::string(), ")");
}
}  // namespace

int device_count() { return device_info().count; }
const char* unavailable_reason() { return device_info().count > 0 ? "" : device_info().reason.c_str(); }

Stream current_stream(Device device) {
  check_device(device, "current_stream");
  return Stream{t_current_stream[size_t(device.index)]};
}
void set_current_stream(Device device, Stream stream) {
  check_device(device, "set_current_stream");
  t_current_stream[size_t(device.index)] = stream.handle;
}
void synchronize(Device device) {
  check_device(device, "synchronize");
  DeviceGuard g(device);
  DRCNN_CUDA_CHECK(cudaDeviceSynchronize());
}
}  // namespace cuda

DeviceGuard::DeviceGuard(Device device) {
  if (!device.is_cuda()) return;
  cuda::check_device(device, "DeviceGuard");
  DRCNN_CUDA_CHECK(cudaGetDevice(&m_previous));
  if (m_previous != device.index) DRCNN_CUDA_CHECK(cudaSetDevice(device.index));
}
DeviceGuard::~DeviceGuard() {
  if (m_previous >= 0) cudaSetDevice(m_previous);  // destructors never throw
}
}  // namespace drcnn

namespace drcnn::ops::cuda {
namespace {
// True for ordinary (unregistered, pageable) host memory; false for cudaHostAlloc'd or
// cudaHostRegister'ed (page-locked) and managed memory, and when the query fails.
bool host_source_is_pageable(const void* src) {
  cudaPointerAttributes attr{};
  if (cudaPointerGetAttributes(&attr, src) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return attr.type == cudaMemoryTypeUnregistered;
}
}  // namespace

void memcpy_host_to_device(Stream s, void* dst, const void* src, size_t bytes) {
  const auto stream = static_cast<cudaStream_t>(s.handle);
  DRCNN_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream));
  // The caller may reuse or free `src` right after return. From pageable memory (drcnn's CPU
  // tensors, std::vector) cudaMemcpyAsync returns only once the source has been staged into the
  // driver's pinned buffer (CUDA "API synchronization behavior"), so no wait is needed and none
  // is done. Page-locked or managed memory is read by the DMA engine later: wait for those.
  if (!host_source_is_pageable(src)) DRCNN_CUDA_CHECK(cudaStreamSynchronize(stream));
}
void memcpy_device_to_host(Stream s, void* dst, const void* src, size_t bytes) {
  const auto stream = static_cast<cudaStream_t>(s.handle);
  DRCNN_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream));
  DRCNN_CUDA_CHECK(cudaStreamSynchronize(stream));
}
void memcpy_device_to_device(Stream s, void* dst, const void* src, size_t bytes) {
  const auto stream = static_cast<cudaStream_t>(s.handle);
  DRCNN_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream));
  // The source may be a temporary of another device's stream-ordered pool, free to be reused
  // by that stream as soon as the caller returns: finish reading it first.
  DRCNN_CUDA_CHECK(cudaStreamSynchronize(stream));
}
void memcpy_host_to_device_async(Stream s, void* dst, const void* src, size_t bytes) {
  DRCNN_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, static_cast<cudaStream_t>(s.handle)));
}
void* host_alloc_pinned(size_t bytes) {
  void* p = nullptr;
  DRCNN_CUDA_CHECK(cudaHostAlloc(&p, bytes == 0 ? 1 : bytes, cudaHostAllocPortable));
  return p;
}
void host_free_pinned(void* p) noexcept {
  if (p && cudaFreeHost(p) != cudaSuccess) cudaGetLastError();
}
Stream stream_create(Device device) {
  DeviceGuard guard(device);
  cudaStream_t s = nullptr;
  DRCNN_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  return Stream{s};
}
void stream_destroy(Stream s) noexcept {
  if (s.handle && cudaStreamDestroy(static_cast<cudaStream_t>(s.handle)) != cudaSuccess) cudaGetLastError();
}
void* event_create(Device device) {
  DeviceGuard guard(device);
  cudaEvent_t e = nullptr;
  DRCNN_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  return e;
}
void event_destroy(void* event) noexcept {
  if (event && cudaEventDestroy(static_cast<cudaEvent_t>(event)) != cudaSuccess) cudaGetLastError();
}
void event_record(void* event, Stream s) {
  DRCNN_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(event), static_cast<cudaStream_t>(s.handle)));
}
void stream_wait_event(Stream s, void* event) {
  DRCNN_CUDA_CHECK(cudaStreamWaitEvent(static_cast<cudaStream_t>(s.handle), static_cast<cudaEvent_t>(event), 0));
}
void event_synchronize(void* event) { DRCNN_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(event))); }
}  // namespace drcnn::ops::cuda
