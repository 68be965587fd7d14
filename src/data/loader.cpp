// DataLoader: batch-level worker threads over a bounded window of claimed batches, delivered
// strictly in order; per-sample random streams; corrupt-image replacement with a bounded,
// deterministic refetch. See include/drcnn/data/loader.h and docs/data-loading.md.
#include "drcnn/data/loader.h"

#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "drcnn/core/error.h"

namespace drcnn::data {

namespace {
void check_options(const LoaderOptions& o) {
  DRCNN_CHECK(o.batch_size >= 1, "DataLoader: batch_size must be >= 1, got ", o.batch_size);
  DRCNN_CHECK(o.num_workers >= 0, "DataLoader: num_workers must be >= 0, got ", o.num_workers);
  DRCNN_CHECK(o.num_workers == 0 || o.prefetch_batches >= 1,
              "DataLoader: prefetch_batches must be >= 1 with worker threads, got ", o.prefetch_batches);
  DRCNN_CHECK(o.max_consecutive_failures >= 1, "DataLoader: max_consecutive_failures must be >= 1, got ",
              o.max_consecutive_failures);
}
}  // namespace

DataLoader::DataLoader(const DetectionDataset& dataset, const GroupSampler& sampler, Pipeline pipeline,
                       LoaderOptions options)
    : m_dataset(dataset), m_sampler(&sampler), m_pipeline(std::move(pipeline)), m_options(std::move(options)) {
  check_options(m_options);
  DRCNN_CHECK(sampler.options().batch_size == m_options.batch_size, "DataLoader: the sampler groups batches of ",
              sampler.options().batch_size, " images but the loader's batch_size is ", m_options.batch_size);
  DRCNN_CHECK(sampler.flags().size() == dataset.size(), "DataLoader: the sampler was built for ",
              sampler.flags().size(), " images but the dataset has ", dataset.size());
}

DataLoader::DataLoader(const DetectionDataset& dataset, std::vector<int64_t> indices, Pipeline pipeline,
                       LoaderOptions options, int64_t first_position)
    : m_dataset(dataset),
      m_fixed_indices(std::move(indices)),
      m_fixed_first_position(first_position),
      m_pipeline(std::move(pipeline)),
      m_options(std::move(options)) {
  check_options(m_options);
  DRCNN_CHECK(first_position >= 0, "DataLoader: first_position must be >= 0, got ", first_position);
  for (int64_t i : m_fixed_indices)
    DRCNN_CHECK(i >= 0 && uint64_t(i) < dataset.size(), "DataLoader: index ", i, " is outside the dataset of ",
                dataset.size(), " images");
}

DataLoader::~DataLoader() { stop(); }

int64_t DataLoader::num_batches() const {
  const int64_t n = m_sampler ? m_sampler->num_samples() : int64_t(m_fixed_indices.size());
  return (n + m_options.batch_size - 1) / m_options.batch_size;
}

void DataLoader::stop() {
  {
    std::lock_guard<std::mutex> lock(m_mutex);
    m_stopping = true;
  }
  m_cv_work.notify_all();
  for (auto& t : m_workers)
    if (t.joinable()) t.join();
  m_workers.clear();
  std::lock_guard<std::mutex> lock(m_mutex);
  m_slots.clear();
  m_stopping = false;
  m_next_to_deliver = m_num_batches;  // the epoch is over
}

void DataLoader::start_epoch(uint64_t epoch, int64_t first_batch) {
  DRCNN_CHECK(first_batch >= 0 && first_batch <= num_batches(), "DataLoader::start_epoch: first_batch ", first_batch,
              " is outside the epoch of ", num_batches(), " batches");
  stop();
  m_epoch = epoch;
  if (m_sampler) {
    m_indices = m_sampler->indices(epoch);
    m_first_position = m_sampler->first_position();
  } else {
    m_indices = m_fixed_indices;
    m_first_position = m_fixed_first_position;
  }
  m_num_batches = num_batches();
  m_next_to_deliver = first_batch;
  m_next_to_claim = first_batch;
  m_stats = LoaderStats{};
  m_started = true;
  for (int w = 0; w < m_options.num_workers; ++w) m_workers.emplace_back([this] { worker_loop(); });
}

void DataLoader::worker_loop() {
  for (;;) {
    int64_t b;
    {
      std::unique_lock<std::mutex> lock(m_mutex);
      m_cv_work.wait(lock, [&] {
        return m_stopping || m_next_to_claim >= m_num_batches ||
               m_next_to_claim < m_next_to_deliver + m_options.prefetch_batches;
      });
      if (m_stopping || m_next_to_claim >= m_num_batches) return;
      b = m_next_to_claim++;
      m_slots[b];  // claimed, not ready
    }
    Slot built;
    build_batch(b, built);
    {
      std::lock_guard<std::mutex> lock(m_mutex);
      if (m_stopping) return;
      Slot& slot = m_slots[b];
      slot = std::move(built);
      slot.ready = true;
    }
    m_cv_ready.notify_all();
  }
}

Sample DataLoader::load_sample(int64_t k, int64_t& index, std::vector<std::string>& warnings,
                               int64_t& skipped) const {
  const uint64_t position = uint64_t(m_sampler ? m_sampler->global_position(k) : m_first_position + k);
  index = m_indices[std::size_t(k)];
  RandomStream refetch =
      RandomStream::for_sample(m_options.seed, m_epoch, position, uint32_t(StreamDomain::Refetch));
  std::vector<std::string> failures;
  Sample sample;
  for (;;) {
    const DetectionRecord record = m_dataset.record(std::size_t(index));
    try {
      Image image = m_options.read ? m_options.read(record) : read_image(record.image_path);
      sample = make_sample(record, std::move(image));
      break;
    } catch (const std::exception& e) {
      if (!m_options.skip_corrupt_images)
        DRCNN_FAIL("DataLoader: epoch ", m_epoch, ", sample ", position, ": cannot read image ", record.image_path,
                   " (dataset index ", index, "): ", e.what());
      failures.push_back(fmt::format("{} (dataset index {}): {}", record.image_path, index, e.what()));
      if (int(failures.size()) >= m_options.max_consecutive_failures) {
        std::string all;
        for (const auto& f : failures) all += "\n  " + f;
        DRCNN_FAIL("DataLoader: epoch ", m_epoch, ", sample ", position, ": ", failures.size(),
                   " consecutive unreadable images (max_consecutive_failures ", m_options.max_consecutive_failures,
                   "):", all);
      }
      // Deterministic replacement: a uniform index from the sample's own refetch stream.
      const int64_t replacement = int64_t(refetch.below(m_dataset.size()));
      ++skipped;
      warnings.push_back(fmt::format("DataLoader: skipped unreadable image {} (dataset index {}, epoch {}, sample {}); "
                                     "using dataset index {} instead: {}",
                                     record.image_path, index, m_epoch, position, replacement, e.what()));
      index = replacement;
    }
  }
  try {
    RandomStream rng =
        RandomStream::for_sample(m_options.seed, m_epoch, position, uint32_t(StreamDomain::Transforms));
    m_pipeline.run(sample, rng);
  } catch (const std::exception& e) {
    DRCNN_FAIL("DataLoader: epoch ", m_epoch, ", sample ", position, ": transforming image ",
               sample.meta.image_path, " (dataset index ", index, ") failed: ", e.what());
  }
  return sample;
}

void DataLoader::build_batch(int64_t b, Slot& slot) const {
  try {
    const int64_t n = int64_t(m_indices.size());
    const int64_t begin = b * m_options.batch_size, end = std::min(n, begin + m_options.batch_size);
    std::vector<Tensor> tensors;
    Batch& batch = slot.batch;
    batch.batch_index = b;
    for (int64_t k = begin; k < end; ++k) {
      int64_t index = 0;
      Sample s = load_sample(k, index, slot.warnings, slot.skipped);
      tensors.push_back(s.tensor);
      batch.targets.push_back(to_instances(s));
      batch.metas.push_back(std::move(s.meta));
      batch.indices.push_back(index);
    }
    batch.images = ImageList::from_images(tensors, m_options.size_divisibility, 0.0);
  } catch (...) {
    slot.error = std::current_exception();
  }
}

bool DataLoader::next(Batch& out) {
  if (!m_started) start_epoch(0);
  if (m_next_to_deliver >= m_num_batches) return false;
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t b = m_next_to_deliver;
  Slot slot;
  if (m_options.num_workers == 0) {
    build_batch(b, slot);
    ++m_next_to_deliver;
  } else {
    std::unique_lock<std::mutex> lock(m_mutex);
    m_cv_ready.wait(lock, [&] {
      const auto it = m_slots.find(b);
      return it != m_slots.end() && it->second.ready;
    });
    const auto it = m_slots.find(b);
    slot = std::move(it->second);
    m_slots.erase(it);
    ++m_next_to_deliver;
    lock.unlock();
    m_cv_work.notify_all();
  }
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // Warnings and counts are taken in batch order, so they do not depend on thread timing.
  for (auto& w : slot.warnings) {
    if (m_options.print_warnings) fmt::print(stderr, "{}\n", w);
    m_stats.warnings.push_back(std::move(w));
  }
  m_stats.skipped_images += slot.skipped;
  if (slot.error) {
    stop();
    std::rethrow_exception(slot.error);
  }
  out = std::move(slot.batch);
  out.data_time_seconds = waited;
  ++m_stats.batches;
  m_stats.samples += int64_t(out.metas.size());
  m_stats.data_time_seconds += waited;
  return true;
}

}  // namespace drcnn::data
