// DataLoader: worker threads read, decode and transform samples into a bounded prefetch queue;
// the consumer takes whole batches in the sampler's order, whatever the thread timing.
//
// Threading model (docs/data-loading.md):
//  - the epoch's index list is split into batches; batch b is built by one worker (batch-level
//    parallelism: workers take the next unclaimed batch number from an atomic counter);
//  - at most `prefetch_batches` batches are claimed ahead of the one the consumer waits for, so
//    memory stays bounded;
//  - next() waits for batch b exactly, so the output order is the sampler's order;
//  - every random choice of sample k of the epoch comes from RandomStream::for_sample(seed,
//    epoch, global position of k): the same batches for any num_workers and any timing;
//  - the destructor (or reset/start_epoch) stops the workers and joins them.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "drcnn/data/dataset.h"
#include "drcnn/data/image.h"
#include "drcnn/data/sampler.h"
#include "drcnn/data/transforms.h"
#include "drcnn/structures/image_list.h"
#include "drcnn/structures/instances.h"

namespace drcnn::data {

/// One batch, ready for the model.
struct Batch {
  ImageList images;                 ///< padded (size_divisor) float32 [B, 3, H, W]
  std::vector<Instances> targets;   ///< boxes float32 in the resized (+flipped) image, labels int64, ignore bool
  std::vector<ImageMeta> metas;
  std::vector<int64_t> indices;     ///< dataset index of each image (after any corrupt-image replacement)
  int64_t batch_index = 0;          ///< position in the epoch
  double data_time_seconds = 0.0;   ///< how long next() waited for this batch
};

struct LoaderStats {
  int64_t batches = 0;              ///< batches delivered this epoch
  int64_t samples = 0;
  int64_t skipped_images = 0;       ///< unreadable images replaced by another index (training)
  double data_time_seconds = 0.0;   ///< sum of the batches' data_time_seconds this epoch
  std::vector<std::string> warnings;  ///< one line per skipped image (path and error), in batch order
};

struct LoaderOptions {
  int64_t batch_size = 2;
  /// 0: everything runs inline in next(); n > 0: n worker threads.
  int num_workers = 2;
  /// Batches built ahead of the consumer (>= 1 when num_workers > 0).
  int prefetch_batches = 2;
  uint64_t seed = 0;
  /// Training: an unreadable image is skipped (warning, counted) and replaced by another index
  /// drawn deterministically; false (evaluation): the error propagates.
  bool skip_corrupt_images = true;
  /// A sample fails after this many consecutive unreadable images (the first and its
  /// replacements); the error names every path tried.
  int max_consecutive_failures = 10;
  /// Padding of the batch (ImageList::from_images).
  int64_t size_divisibility = 32;
  /// Print each skip warning to stderr as well as storing it in the stats.
  bool print_warnings = true;
  /// How an image is read (default: read_image(record.image_path)). Tests inject failures here.
  std::function<Image(const DetectionRecord&)> read;
};

class DataLoader {
 public:
  /// Training order from `sampler` (indices(epoch); random streams keyed by global position,
  /// from sampler.first_position()). The loader keeps references to `dataset` and `sampler`
  /// (both must outlive it) and copies the pipeline (its transforms are shared, read-only).
  /// Requires: sampler batch_size == options.batch_size, the sampler built for this dataset.
  DataLoader(const DetectionDataset& dataset, const GroupSampler& sampler, Pipeline pipeline,
             LoaderOptions options);
  /// Evaluation order: `indices` in this order (e.g. sequential_indices), the last batch may be
  /// short; random streams keyed by position in `indices` (+ first_position).
  DataLoader(const DetectionDataset& dataset, std::vector<int64_t> indices, Pipeline pipeline,
             LoaderOptions options, int64_t first_position = 0);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  /// Starts (or restarts) an epoch: stops any running workers, takes the sampler's order for
  /// `epoch`, resets the stats, and starts the workers. next() calls start_epoch(0) if needed.
  /// `first_batch` > 0 resumes the epoch there: the batches before it are never built, and
  /// batch b is the same as in an epoch started at 0 (its random streams depend only on
  /// (seed, epoch, position)), which is what an exact resume from a checkpoint needs.
  /// Requires: 0 <= first_batch <= num_batches().
  void start_epoch(uint64_t epoch, int64_t first_batch = 0);
  /// The next batch in order; false at the end of the epoch. Rethrows a worker's error (the
  /// message names the image path), after which the epoch is over.
  bool next(Batch& batch);
  /// Stops the workers (joins them); the epoch ends. Safe to call at any time, more than once.
  void stop();

  int64_t num_batches() const;
  const LoaderStats& stats() const { return m_stats; }
  uint64_t epoch() const { return m_epoch; }
  /// Position in the epoch: the index of the batch the next call to next() delivers (equal to
  /// num_batches() at the end of the epoch). (epoch(), next_batch()) is the loader state a
  /// checkpoint saves; start_epoch(epoch, next_batch) restores it.
  int64_t next_batch() const { return m_next_to_deliver; }

 private:
  struct Slot {
    bool ready = false;
    Batch batch;
    std::exception_ptr error;
    std::vector<std::string> warnings;
    int64_t skipped = 0;
  };

  void worker_loop();
  /// Builds batch b (any thread). Fills slot fields; never throws (errors go to slot.error).
  void build_batch(int64_t b, Slot& slot) const;
  /// Reads and transforms sample `k` of the epoch (position k in m_indices).
  Sample load_sample(int64_t k, int64_t& index, std::vector<std::string>& warnings, int64_t& skipped) const;

  const DetectionDataset& m_dataset;
  const GroupSampler* m_sampler = nullptr;
  std::vector<int64_t> m_fixed_indices;
  int64_t m_fixed_first_position = 0;
  Pipeline m_pipeline;
  LoaderOptions m_options;

  // Epoch state.
  uint64_t m_epoch = 0;
  bool m_started = false;
  std::vector<int64_t> m_indices;
  int64_t m_first_position = 0;
  int64_t m_num_batches = 0;
  int64_t m_next_to_deliver = 0;
  LoaderStats m_stats;

  // Worker state (guarded by m_mutex).
  std::mutex m_mutex;
  std::condition_variable m_cv_work;   // workers wait for room in the prefetch window
  std::condition_variable m_cv_ready;  // the consumer waits for its batch
  std::map<int64_t, Slot> m_slots;     // batches claimed and not yet delivered
  int64_t m_next_to_claim = 0;
  bool m_stopping = false;
  std::vector<std::thread> m_workers;
};

}  // namespace drcnn::data
