// Samplers: the order in which a training epoch visits the images, and the counter-based random
// streams that make every random choice of the data pipeline reproducible.
//
// GroupSampler follows MMDetection v2's DistributedGroupSampler (mmdet/datasets/samplers/
// group_sampler.py): images are split into two aspect-ratio groups (flag = width / height > 1),
// each group is shuffled and padded to a multiple of batch_size * world_size by repeating its
// own shuffled indices, the groups are concatenated, and whole batches are shuffled; rank r takes
// the r-th contiguous slice. Batches therefore never mix wide and tall images. The shuffles use
// our own Fisher-Yates over a Philox stream keyed by (seed, epoch), not torch.randperm, so the
// order is the same on every platform and standard library (but not the same as mmdet's).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace drcnn::data {

class DetectionDataset;

/// A reproducible random stream: draw k is Philox-4x32-10 of the 128-bit counter
/// (stream, k) under the key `seed`, so the numbers depend only on (seed, stream, k): never on
/// threads, timing or the standard library. Small and copyable.
class RandomStream {
 public:
  RandomStream(uint64_t seed, uint64_t stream) : m_seed(seed), m_stream(stream) {}
  /// The next 32 random bits.
  uint32_t next_u32();
  /// Uniform double in [0, 1) (53 random bits).
  double uniform();
  /// Uniform integer in [0, n) without modulo bias (rejection). Requires n >= 1.
  uint64_t below(uint64_t n);
  /// Draws taken so far.
  uint64_t draws() const { return m_counter; }

  /// The stream of one sample of one epoch: key `seed`, stream id built from (domain, epoch,
  /// position). Requires epoch < 2^24, position < 2^36, domain < 16 (checked).
  static RandomStream for_sample(uint64_t seed, uint64_t epoch, uint64_t position, uint32_t domain = 0);

 private:
  uint64_t m_seed;
  uint64_t m_stream;
  uint64_t m_counter = 0;
  uint32_t m_buffer[4] = {0, 0, 0, 0};
  int m_buffered = 0;  // unused words left in m_buffer (read from the back)
};

/// Domains of RandomStream::for_sample (separate streams for separate purposes).
enum class StreamDomain : uint32_t { Transforms = 0, Refetch = 1, Shuffle = 2 };

/// A uniformly random permutation of 0..n-1 (Fisher-Yates, i from n-1 down to 1 swaps i with
/// rng.below(i + 1)).
std::vector<int64_t> random_permutation(int64_t n, RandomStream& rng);

struct GroupSamplerOptions {
  int64_t batch_size = 2;   ///< images per batch on one rank (samples_per_gpu)
  int64_t world_size = 1;   ///< number of ranks (num_replicas)
  int64_t rank = 0;         ///< this rank, in [0, world_size)
  uint64_t seed = 0;        ///< the same on every rank
  bool shuffle = true;      ///< false: groups in index order, batches in order (still padded)
  bool group_by_aspect_ratio = true;  ///< false: a single group
  /// How the ranks share the global order. false (MMDetection's DistributedGroupSampler): rank r
  /// takes the r-th contiguous slice, whole batches of batch_size shuffled. true (drcnn_train's
  /// data parallelism): whole global batches of batch_size * world_size are shuffled and rank r
  /// takes images [r * batch_size, (r + 1) * batch_size) of each, so iteration i of W ranks with
  /// B images each sees the same images, at the same global positions, as iteration i of one
  /// process with W * B images (docs/distributed.md). With world_size 1 both are the same.
  bool interleave_ranks = false;
};

/// Aspect-ratio grouped, shuffled, sharded order of one rank (see the file comment).
class GroupSampler {
 public:
  /// Reads every image's size with dataset.image_size(i) once. Requires: a non-empty dataset,
  /// batch_size >= 1, world_size >= 1, 0 <= rank < world_size. Images of zero height count as
  /// tall (flag 0).
  GroupSampler(const DetectionDataset& dataset, const GroupSamplerOptions& options);
  /// From the flags directly (flag[i] = 1 when image i is wide, 0 otherwise; only 0/1).
  GroupSampler(std::vector<uint8_t> flags, const GroupSamplerOptions& options);

  /// This rank's dataset indices for `epoch`: num_samples() of them, a whole number of batches,
  /// each batch within one group. The same (seed, epoch) gives the same list.
  std::vector<int64_t> indices(uint64_t epoch) const;
  /// Every rank's indices concatenated (total_size()): rank r's list is the slice
  /// [r * num_samples(), (r + 1) * num_samples()).
  std::vector<int64_t> global_indices(uint64_t epoch) const;
  /// Position of this rank's first sample in global_indices (rank * num_samples()); the
  /// loader keys per-sample random streams by global position.
  int64_t first_position() const { return m_options.rank * m_num_samples; }
  /// Position in global_indices of this rank's k-th sample (first_position() + k when not
  /// interleaved); the loader keys each sample's random streams by it.
  int64_t global_position(int64_t k) const;

  /// Samples per rank and epoch: sum over groups of ceil(size / (batch * world)) * batch.
  int64_t num_samples() const { return m_num_samples; }
  int64_t total_size() const { return m_num_samples * m_options.world_size; }
  int64_t num_batches() const { return m_num_samples / m_options.batch_size; }
  const std::vector<uint8_t>& flags() const { return m_flags; }
  const GroupSamplerOptions& options() const { return m_options; }

 private:
  void init();
  std::vector<uint8_t> m_flags;
  GroupSamplerOptions m_options;
  int64_t m_num_samples = 0;
};

/// The test-time order: 0..n-1, rank r taking every index i with i % world_size == r (no
/// padding, so the evaluation sees every image once).
std::vector<int64_t> sequential_indices(int64_t n, int64_t world_size = 1, int64_t rank = 0);

}  // namespace drcnn::data
