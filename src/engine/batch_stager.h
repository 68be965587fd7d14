// BatchStager (engine-internal): training batches on their way to a GPU. Each batch is packed
// into page-locked host memory and copied on a copy stream of its own, asynchronously, so the
// copy of iteration N+1's batch overlaps iteration N's work on the compute stream; the compute
// stream waits for the copy on the device (an event), never the host. docs/training.md
// ("Batches on a GPU").
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <vector>

#include "drcnn/core/device.h"
#include "drcnn/core/tensor.h"
#include "drcnn/data/loader.h"

namespace drcnn::engine {

class BatchStager {
 public:
  /// A stager for CUDA device `device`. Throws drcnn::Error for a CPU device or a build
  /// without CUDA.
  explicit BatchStager(Device device);
  ~BatchStager();  // waits for copies in flight; never throws
  BatchStager(const BatchStager&) = delete;
  BatchStager& operator=(const BatchStager&) = delete;

  /// Starts the copy of `batch` (host tensors) to the device and returns at once. At most one
  /// batch is staged: stage() after stage() without take() is an error.
  void stage(data::Batch batch);
  bool has_staged() const { return m_staged.has_value(); }
  /// The staged batch with its images and targets on the device, usable on `compute`: the
  /// compute stream waits (on the device) for the copy, and the device tensors are recorded as
  /// used by it, so their memory is not reused before its work is done.
  data::Batch take(Stream compute);

 private:
  struct Slot {  // one page-locked buffer and the event after the copies out of it
    void* host = nullptr;
    size_t bytes = 0;
    void* done = nullptr;
    bool in_flight = false;
  };
  Device m_device;
  Stream m_copy;
  std::array<Slot, 2> m_slots;  // alternate: batch N+1 is packed while batch N's copy may run
  size_t m_next_slot = 0;
  std::optional<data::Batch> m_staged;
  std::vector<Tensor> m_staged_tensors;  // the device tensors of the staged batch
  void* m_staged_event = nullptr;
};

}  // namespace drcnn::engine
