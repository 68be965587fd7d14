// Device queries for a build without CUDA: no devices, and a clear error on any CUDA use.
#include "drcnn/config.h"
#if !DRCNN_WITH_CUDA
#include "drcnn/core/device.h"
#include "drcnn/core/error.h"

namespace drcnn {
namespace cuda {
int device_count() { return 0; }
const char* unavailable_reason() { return "drcnn was built without CUDA (DRCNN_WITH_CUDA=OFF)"; }
Stream current_stream(Device device) {
  DRCNN_FAIL("current_stream(", device, "): ", unavailable_reason());
}
void set_current_stream(Device device, Stream) {
  DRCNN_FAIL("set_current_stream(", device, "): ", unavailable_reason());
}
RuntimeVersions runtime_versions() { return {}; }
void synchronize(Device device) { DRCNN_FAIL("synchronize(", device, "): ", unavailable_reason()); }
}  // namespace cuda

DeviceGuard::DeviceGuard(Device device) {
  DRCNN_CHECK(device.is_cpu(), "DeviceGuard(", device, "): ", cuda::unavailable_reason());
}
DeviceGuard::~DeviceGuard() = default;
}  // namespace drcnn
#endif
