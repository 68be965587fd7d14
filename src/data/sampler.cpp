// RandomStream (Philox-4x32-10 counters), Fisher-Yates permutations and the aspect-ratio
// group sampler (MMDetection v2 DistributedGroupSampler's layout with our own shuffles).
#include "drcnn/data/sampler.h"

#include <algorithm>

#include "drcnn/core/error.h"
#include "drcnn/data/dataset.h"
#include "drcnn/ops/detail/philox.h"

namespace drcnn::data {

// ------------------------------------------------------------------ RandomStream

uint32_t RandomStream::next_u32() {
  if (m_buffered == 0) {
    // One Philox block gives four words; block b is counter (b, stream).
    const ops::detail::Philox4x32 r = ops::detail::philox4x32_10(m_counter / 4, m_stream, m_seed);
    for (int i = 0; i < 4; ++i) m_buffer[i] = r.v[i];
    m_buffered = 4;
  }
  const uint32_t word = m_buffer[4 - m_buffered];
  --m_buffered;
  ++m_counter;
  return word;
}

double RandomStream::uniform() {
  const uint32_t hi = next_u32(), lo = next_u32();
  return ops::detail::uniform_double(hi, lo);
}

uint64_t RandomStream::below(uint64_t n) {
  DRCNN_CHECK(n >= 1, "RandomStream::below: needs n >= 1, got ", n);
  if (n == 1) return 0;
  // 64-bit draws with rejection of the top partial range: exact uniformity.
  const uint64_t limit = UINT64_MAX - (UINT64_MAX % n);  // values >= limit are rejected
  for (;;) {
    const uint64_t v = (uint64_t(next_u32()) << 32) | uint64_t(next_u32());
    if (v < limit) return v % n;
  }
}

RandomStream RandomStream::for_sample(uint64_t seed, uint64_t epoch, uint64_t position, uint32_t domain) {
  DRCNN_CHECK(epoch < (uint64_t(1) << 24) && position < (uint64_t(1) << 36) && domain < 16,
              "RandomStream::for_sample: needs epoch < 2^24, position < 2^36 and domain < 16, got epoch ", epoch,
              ", position ", position, ", domain ", domain);
  return RandomStream(seed, (uint64_t(domain) << 60) | (epoch << 36) | position);
}

std::vector<int64_t> random_permutation(int64_t n, RandomStream& rng) {
  DRCNN_CHECK(n >= 0, "random_permutation: needs n >= 0, got ", n);
  std::vector<int64_t> p(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) p[std::size_t(i)] = i;
  for (int64_t i = n - 1; i > 0; --i) {
    const int64_t j = int64_t(rng.below(uint64_t(i) + 1));
    std::swap(p[std::size_t(i)], p[std::size_t(j)]);
  }
  return p;
}

// ------------------------------------------------------------------ GroupSampler

namespace {
int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
}  // namespace

GroupSampler::GroupSampler(const DetectionDataset& dataset, const GroupSamplerOptions& options)
    : m_options(options) {
  const std::size_t n = dataset.size();
  m_flags.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    const auto wh = dataset.image_size(i);
    // mmdet CustomDataset._set_group_flag: flag 1 when w / h > 1.
    m_flags[i] = (wh[1] > 0 && double(wh[0]) / double(wh[1]) > 1.0) ? 1 : 0;
  }
  init();
}

GroupSampler::GroupSampler(std::vector<uint8_t> flags, const GroupSamplerOptions& options)
    : m_flags(std::move(flags)), m_options(options) {
  init();
}

void GroupSampler::init() {
  const auto& o = m_options;
  DRCNN_CHECK(!m_flags.empty(), "GroupSampler: the dataset is empty");
  DRCNN_CHECK(o.batch_size >= 1 && o.world_size >= 1 && o.rank >= 0 && o.rank < o.world_size,
              "GroupSampler: needs batch_size >= 1, world_size >= 1 and 0 <= rank < world_size, got batch_size ",
              o.batch_size, ", world_size ", o.world_size, ", rank ", o.rank);
  for (std::size_t i = 0; i < m_flags.size(); ++i) {
    DRCNN_CHECK(m_flags[i] <= 1, "GroupSampler: flag ", i, " is ", int(m_flags[i]), ", expected 0 or 1");
    if (!o.group_by_aspect_ratio) m_flags[i] = 0;
  }
  m_num_samples = 0;
  for (uint8_t g = 0; g < 2; ++g) {
    const int64_t size = int64_t(std::count(m_flags.begin(), m_flags.end(), g));
    m_num_samples += ceil_div(size, o.batch_size * o.world_size) * o.batch_size;
  }
}

std::vector<int64_t> GroupSampler::global_indices(uint64_t epoch) const {
  const auto& o = m_options;
  const int64_t per_group_multiple = o.batch_size * o.world_size;
  // One stream per epoch for the whole shuffle (every rank computes the same global order).
  RandomStream rng = RandomStream::for_sample(o.seed, epoch, 0, uint32_t(StreamDomain::Shuffle));
  std::vector<int64_t> all;
  all.reserve(std::size_t(total_size()));
  for (uint8_t g = 0; g < 2; ++g) {
    std::vector<int64_t> members;
    for (std::size_t i = 0; i < m_flags.size(); ++i)
      if (m_flags[i] == g) members.push_back(int64_t(i));
    const int64_t size = int64_t(members.size());
    if (size == 0) continue;
    if (o.shuffle) {
      const std::vector<int64_t> perm = random_permutation(size, rng);
      std::vector<int64_t> shuffled(members.size());
      for (int64_t k = 0; k < size; ++k) shuffled[std::size_t(k)] = members[std::size_t(perm[std::size_t(k)])];
      members = std::move(shuffled);
    }
    // Pad to a multiple of batch * world by repeating the (shuffled) group from its start,
    // as DistributedGroupSampler does (whole copies, then a prefix).
    const int64_t padded = ceil_div(size, per_group_multiple) * per_group_multiple;
    for (int64_t k = 0; k < padded; ++k) all.push_back(members[std::size_t(k % size)]);
  }
  if (o.shuffle) {
    // Units: batches (MMDetection), or global batches of every rank's images (interleaved).
    const int64_t unit = o.interleave_ranks ? per_group_multiple : o.batch_size;
    const int64_t batches = int64_t(all.size()) / unit;
    const std::vector<int64_t> order = random_permutation(batches, rng);
    std::vector<int64_t> out;
    out.reserve(all.size());
    for (int64_t b : order)
      for (int64_t j = 0; j < unit; ++j) out.push_back(all[std::size_t(b * unit + j)]);
    all = std::move(out);
  }
  return all;
}

int64_t GroupSampler::global_position(int64_t k) const {
  const auto& o = m_options;
  if (!o.interleave_ranks) return first_position() + k;
  return (k / o.batch_size) * o.batch_size * o.world_size + o.rank * o.batch_size + k % o.batch_size;
}

std::vector<int64_t> GroupSampler::indices(uint64_t epoch) const {
  const std::vector<int64_t> all = global_indices(epoch);
  std::vector<int64_t> out(static_cast<std::size_t>(m_num_samples));
  for (int64_t k = 0; k < m_num_samples; ++k) out[std::size_t(k)] = all[std::size_t(global_position(k))];
  return out;
}

std::vector<int64_t> sequential_indices(int64_t n, int64_t world_size, int64_t rank) {
  DRCNN_CHECK(n >= 0 && world_size >= 1 && rank >= 0 && rank < world_size,
              "sequential_indices: needs n >= 0, world_size >= 1 and 0 <= rank < world_size, got n ", n,
              ", world_size ", world_size, ", rank ", rank);
  std::vector<int64_t> out;
  for (int64_t i = rank; i < n; i += world_size) out.push_back(i);
  return out;
}

}  // namespace drcnn::data
