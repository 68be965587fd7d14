// Private: the cuDNN handle of the current device and thread, bound to `stream`.
#pragma once
#include <cudnn.h>

#include "drcnn/core/device.h"

namespace drcnn::cudnn_detail {
cudnnHandle_t handle(Stream stream);
}  // namespace drcnn::cudnn_detail
