// Argument errors that only a kernel can see (an out-of-range index in gather / index_select /
// scatter_add / index_add, a bad batch index or level in RoIAlign) are raised by the kernel in
// a device flag. On the CPU the op reads its flag and throws before it returns. On CUDA reading
// the flag at once would synchronise the stream after every such op, so by default the check is
// deferred: the flags of this thread's ops are read together (one small copy) by
// check_device_errors(), which runs at every device-to-host copy (Tensor::to(cpu), to_vector,
// item: the host waits there anyway), at each Sgd::step, and when 1024 checks are pending. The
// error then names the op that failed, as the eager check does. Kernels skip a bad element, so
// a deferred error never reads or writes out of bounds; the op's result is wrong until then.
// Tests: tests/ops/test_device_checks.cpp; on a GPU tests/cuda/test_cuda_parity.cpp.
#pragma once
#include <cstddef>
#include <functional>

#include "drcnn/core/tensor.h"

namespace drcnn::ops {

/// Reads the pending device error flags of this thread's ops and throws drcnn::Error for the
/// first one raised (in the order the ops ran); the others are dropped. No-op when none pend.
void check_device_errors();

/// When true, CUDA ops read their flag at once (synchronising), as the CPU does. Default:
/// false, or true when DRCNN_EAGER_CHECKS=1 is set or drcnn was built with DRCNN_SYNC_DEBUG
/// or without NDEBUG (debug builds).
void set_eager_device_checks(bool on);
bool eager_device_checks();

namespace detail {
/// Called by an op after its launch: `flag` is a one-element int32 tensor the kernel set
/// non-zero on error; `raise` throws the op's error (it may read the op's operands, which it
/// should capture by value). CPU flags, and all flags in eager mode, are checked now; others
/// are queued for check_device_errors().
void check_flag(const Tensor& flag, std::function<void()> raise);
/// Queues the check for check_device_errors() whatever the device (check_flag's CUDA path;
/// tests use it with CPU flags). At 1024 queued checks it runs check_device_errors().
void defer_flag(const Tensor& flag, std::function<void()> raise);
/// Number of checks queued on this thread (for tests).
size_t pending_device_checks();
}  // namespace detail
}  // namespace drcnn::ops
