// BatchStager: see batch_stager.h. The only CUDA runtime calls are the ops::cuda wrappers
// (pinned memory, a stream, events, an asynchronous copy); a build without CUDA refuses to make one.
#include "batch_stager.h"

#include <cstring>
#include <utility>

#include "drcnn/config.h"
#include "drcnn/core/error.h"
#include "drcnn/ops/launch.h"

namespace drcnn::engine {

#if DRCNN_WITH_CUDA
namespace {
constexpr size_t kAlign = 256;  // each tensor's offset in the page-locked buffer
size_t round_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

/// Every tensor of a batch that goes to the device, in a fixed order: the image batch, then
/// per target its boxes, labels, scores and ignore flags (undefined ones included, as holes).
std::vector<Tensor> device_fields(const data::Batch& b) {
  std::vector<Tensor> out{b.images.tensor()};
  for (const Instances& t : b.targets)
    for (const Tensor& f : {t.boxes.tensor(), t.labels, t.scores, t.ignore}) out.push_back(f);
  return out;
}

/// The batch rebuilt around `fields` (device_fields' order).
void rebind(data::Batch& b, const std::vector<Tensor>& fields) {
  size_t k = 0;
  b.images = ImageList(fields[k++], b.images.image_sizes());
  for (Instances& t : b.targets) {
    const Tensor& boxes = fields[k++];
    const Tensor& labels = fields[k++];
    const Tensor& scores = fields[k++];
    const Tensor& ignore = fields[k++];
    t = Instances(t.image_size, Boxes(boxes), labels, scores, ignore);
  }
}

/// Makes `stream` the current stream of `device` for the scope (allocations are ordered on it).
class CurrentStream {
 public:
  CurrentStream(Device d, Stream s) : m_device(d), m_previous(cuda::current_stream(d)) { cuda::set_current_stream(d, s); }
  ~CurrentStream() { cuda::set_current_stream(m_device, m_previous); }

 private:
  Device m_device;
  Stream m_previous;
};
}  // namespace

BatchStager::BatchStager(Device device) : m_device(device) {
  DRCNN_CHECK(device.is_cuda(), "BatchStager: expected a CUDA device, got ", device);
  m_copy = ops::cuda::stream_create(device);
  try {
    for (Slot& s : m_slots) s.done = ops::cuda::event_create(device);
  } catch (...) {
    for (Slot& s : m_slots) ops::cuda::event_destroy(s.done);
    ops::cuda::stream_destroy(m_copy);
    throw;
  }
}

BatchStager::~BatchStager() {
  for (Slot& s : m_slots) {
    if (s.in_flight) {
      try {
        ops::cuda::event_synchronize(s.done);
      } catch (...) {  // a destructor never throws; the device error surfaces elsewhere
      }
    }
    ops::cuda::host_free_pinned(s.host);
    ops::cuda::event_destroy(s.done);
  }
  ops::cuda::stream_destroy(m_copy);
}

void BatchStager::stage(data::Batch batch) {
  DRCNN_CHECK(!m_staged, "BatchStager::stage: a batch is already staged (take() it first)");
  std::vector<Tensor> host = device_fields(batch);
  size_t bytes = 0;
  for (Tensor& f : host) {
    if (!f.defined()) continue;
    DRCNN_CHECK(f.device().is_cpu(), "BatchStager::stage: expected the loader's host tensors, got one on ", f.device());
    f = f.contiguous();
    bytes += round_up(size_t(f.numel()) * dtype_size(f.dtype()));
  }
  Slot& slot = m_slots[m_next_slot];
  m_next_slot = (m_next_slot + 1) % m_slots.size();
  // The copy out of this buffer two batches ago is long done; the wait only makes it certain.
  if (slot.in_flight) ops::cuda::event_synchronize(slot.done);
  slot.in_flight = false;
  if (slot.bytes < bytes) {
    ops::cuda::host_free_pinned(slot.host);
    slot.host = nullptr;
    slot.bytes = 0;
    slot.host = ops::cuda::host_alloc_pinned(bytes + bytes / 4);  // some room for larger batches
    slot.bytes = bytes + bytes / 4;
  }
  std::vector<Tensor> dev(host.size());
  {
    // Allocated in the copy stream's pool; take() records the compute stream's use of them.
    CurrentStream on_copy(m_device, m_copy);
    size_t offset = 0;
    for (size_t i = 0; i < host.size(); ++i) {
      if (!host[i].defined()) continue;
      const size_t n = size_t(host[i].numel()) * dtype_size(host[i].dtype());
      char* pinned = static_cast<char*>(slot.host) + offset;
      if (n > 0) std::memcpy(pinned, host[i].data_ptr(), n);
      dev[i] = Tensor::empty(host[i].shape(), host[i].dtype(), m_device);
      if (n > 0) ops::cuda::memcpy_host_to_device_async(m_copy, dev[i].data_ptr(), pinned, n);
      offset += round_up(n);
    }
  }
  ops::cuda::event_record(slot.done, m_copy);
  slot.in_flight = true;
  m_staged_event = slot.done;
  rebind(batch, dev);
  m_staged_tensors.clear();
  for (const Tensor& t : dev)
    if (t.defined()) m_staged_tensors.push_back(t);
  m_staged = std::move(batch);
}

data::Batch BatchStager::take(Stream compute) {
  DRCNN_CHECK(m_staged.has_value(), "BatchStager::take: no batch is staged");
  ops::cuda::stream_wait_event(compute, m_staged_event);
  for (const Tensor& t : m_staged_tensors) t.record_stream(compute);
  m_staged_tensors.clear();
  data::Batch b = std::move(*m_staged);
  m_staged.reset();
  return b;
}

#else

BatchStager::BatchStager(Device device) : m_device(device) {
  DRCNN_FAIL("BatchStager: drcnn was built without CUDA (DRCNN_WITH_CUDA=OFF); batches for ", device,
             " cannot be staged");
}
BatchStager::~BatchStager() = default;
void BatchStager::stage(data::Batch) { DRCNN_FAIL("BatchStager: built without CUDA"); }
data::Batch BatchStager::take(Stream) { DRCNN_FAIL("BatchStager: built without CUDA"); }

#endif

}  // namespace drcnn::engine
