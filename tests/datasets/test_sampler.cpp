// RandomStream, Fisher-Yates permutations and the aspect-ratio group sampler: coverage, group
// purity of batches, determinism by (seed, epoch), sharding across ranks.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <set>

#include "datasets/memory_dataset.h"
#include "drcnn/core/error.h"
#include "drcnn/data/sampler.h"

using namespace drcnn;
using namespace drcnn::data;
using Catch::Matchers::Contains;

namespace {

/// n images, image i wide (w > h) when wide(i).
drcnn::test::MemoryDataset dataset_of(int n, bool (*wide)(int)) {
  drcnn::test::MemoryDataset d;
  for (int i = 0; i < n; ++i) {
    DetectionRecord r;
    r.image_id = i;
    r.width = wide(i) ? 640 : 480;
    r.height = wide(i) ? 480 : 640;
    d.records.push_back(r);
  }
  return d;
}

bool wide_every_third(int i) { return i % 3 != 0; }  // 2/3 wide

}  // namespace

TEST_CASE("RandomStream is a pure function of seed, stream and draw", "[data][sampler]") {
  RandomStream a(5, 9), b(5, 9), c(5, 10), d(6, 9);
  std::vector<uint32_t> va, vb, vc, vd;
  for (int i = 0; i < 10; ++i) {
    va.push_back(a.next_u32());
    vb.push_back(b.next_u32());
    vc.push_back(c.next_u32());
    vd.push_back(d.next_u32());
  }
  CHECK(va == vb);
  CHECK(va != vc);
  CHECK(va != vd);
  CHECK(a.draws() == 10);
  // below(n) stays in range and hits every value; uniform() in [0, 1).
  RandomStream r(1, 2);
  std::vector<int> counts(7, 0);
  for (int i = 0; i < 7000; ++i) ++counts[std::size_t(r.below(7))];
  for (int k : counts) {
    CHECK(k > 850);  // expectation 1000, sd 29: fixed stream, far from the bound
    CHECK(k < 1150);
  }
  for (int i = 0; i < 1000; ++i) {
    const double u = r.uniform();
    CHECK((u >= 0.0 && u < 1.0));
  }
  CHECK(r.below(1) == 0);
  CHECK_THROWS_WITH(r.below(0), Contains("n >= 1"));
  CHECK_THROWS_WITH(RandomStream::for_sample(0, uint64_t(1) << 24, 0), Contains("epoch < 2^24"));
}

TEST_CASE("random_permutation is a permutation and reproducible", "[data][sampler]") {
  RandomStream r1(3, 0), r2(3, 0);
  const auto p1 = random_permutation(100, r1), p2 = random_permutation(100, r2);
  CHECK(p1 == p2);
  auto sorted = p1;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 100; ++i) CHECK(sorted[std::size_t(i)] == i);
  std::vector<int64_t> identity(100);
  for (int64_t i = 0; i < 100; ++i) identity[std::size_t(i)] = i;
  CHECK(p1 != identity);
  // Every position of a 3-element permutation is uniform over its 6 orders.
  std::map<std::vector<int64_t>, int> seen;
  RandomStream r(11, 0);
  for (int i = 0; i < 6000; ++i) ++seen[random_permutation(3, r)];
  REQUIRE(seen.size() == 6);
  for (const auto& [perm, count] : seen) {
    CHECK(count > 850);  // expectation 1000, sd 29
    CHECK(count < 1150);
  }
  RandomStream r0(0, 0);
  CHECK(random_permutation(0, r0).empty());
  CHECK(random_permutation(1, r0) == std::vector<int64_t>{0});
}

TEST_CASE("GroupSampler covers every image and never mixes groups in a batch", "[data][sampler]") {
  const auto ds = dataset_of(23, wide_every_third);  // 8 tall (0, 3, ..., 21), 15 wide
  GroupSamplerOptions o;
  o.batch_size = 4;
  o.seed = 17;
  const GroupSampler s(ds, o);
  // mmdet: num_samples = sum ceil(size / batch) * batch = 8 + 16.
  CHECK(s.num_samples() == 24);
  CHECK(s.num_batches() == 6);
  for (uint64_t epoch = 0; epoch < 4; ++epoch) {
    const auto idx = s.indices(epoch);
    REQUIRE(int64_t(idx.size()) == s.num_samples());
    const std::set<int64_t> distinct(idx.begin(), idx.end());
    CHECK(distinct.size() == 23);  // every image at least once
    for (std::size_t b = 0; b < idx.size(); b += 4) {
      const uint8_t flag = s.flags()[std::size_t(idx[b])];
      for (std::size_t j = 1; j < 4; ++j) CHECK(s.flags()[std::size_t(idx[b + j])] == flag);
    }
    // The one padding slot repeats a wide image (15 -> 16).
    std::map<int64_t, int> count;
    for (int64_t i : idx) ++count[i];
    int repeats = 0;
    for (const auto& [i, c] : count)
      if (c > 1) {
        ++repeats;
        CHECK(c == 2);
        CHECK(s.flags()[std::size_t(i)] == 1);
      }
    CHECK(repeats == 1);
  }
}

TEST_CASE("GroupSampler order depends only on seed and epoch", "[data][sampler]") {
  const auto ds = dataset_of(40, wide_every_third);
  GroupSamplerOptions o;
  o.batch_size = 2;
  o.seed = 5;
  const GroupSampler a(ds, o), b(ds, o);
  CHECK(a.indices(3) == b.indices(3));
  CHECK(a.indices(3) != a.indices(4));
  GroupSamplerOptions other = o;
  other.seed = 6;
  CHECK(GroupSampler(ds, other).indices(3) != a.indices(3));
  // Without shuffling: groups in index order (tall first), padding by repeating from the start.
  GroupSamplerOptions plain = o;
  plain.shuffle = false;
  const auto seq = GroupSampler(ds, plain).indices(0);
  const std::vector<int64_t> head(seq.begin(), seq.begin() + 4);
  CHECK(head == std::vector<int64_t>{0, 3, 6, 9});
  CHECK(GroupSampler(ds, plain).indices(0) == GroupSampler(ds, plain).indices(9));
}

TEST_CASE("GroupSampler shards are disjoint, equal and cover the epoch", "[data][sampler]") {
  const auto ds = dataset_of(37, wide_every_third);  // 13 tall, 24 wide
  GroupSamplerOptions o;
  o.batch_size = 2;
  o.world_size = 3;
  o.seed = 99;
  // DistributedGroupSampler: per rank sum ceil(size / (batch * world)) * batch = 3*2 + 4*2 = 14.
  std::vector<int64_t> joined;
  for (int64_t rank = 0; rank < 3; ++rank) {
    o.rank = rank;
    const GroupSampler s(ds, o);
    CHECK(s.num_samples() == 14);
    CHECK(s.first_position() == rank * 14);
    const auto idx = s.indices(2);
    REQUIRE(idx.size() == 14);
    for (std::size_t b = 0; b < idx.size(); b += 2)
      CHECK(s.flags()[std::size_t(idx[b])] == s.flags()[std::size_t(idx[b + 1])]);
    joined.insert(joined.end(), idx.begin(), idx.end());
    // The slices are the global order's slices (every rank computes the same global order).
    const auto global = s.global_indices(2);
    CHECK(std::vector<int64_t>(global.begin() + rank * 14, global.begin() + (rank + 1) * 14) == idx);
  }
  // Disjoint slices of one padded epoch: 42 slots = 37 images + 5 repeats, every image present.
  CHECK(joined.size() == 42);
  const std::set<int64_t> distinct(joined.begin(), joined.end());
  CHECK(distinct.size() == 37);
  // Grouping off: a single group, any batch composition allowed.
  GroupSamplerOptions flat;
  flat.batch_size = 4;
  flat.group_by_aspect_ratio = false;
  CHECK(GroupSampler(ds, flat).num_samples() == 40);
}

TEST_CASE("GroupSampler interleaved ranks: W ranks of B images = one process of W * B", "[data][sampler]") {
  const auto ds = dataset_of(37, wide_every_third);  // 13 tall, 24 wide: padding in both groups
  GroupSamplerOptions one;
  one.batch_size = 6;
  one.seed = 99;
  one.interleave_ranks = true;
  const GroupSampler single(ds, one);
  for (uint64_t epoch : {0u, 3u}) {
    const auto ref = single.indices(epoch);
    std::vector<int64_t> joined;
    for (int64_t rank = 0; rank < 3; ++rank) {
      GroupSamplerOptions o = one;
      o.batch_size = 2;
      o.world_size = 3;
      o.rank = rank;
      const GroupSampler s(ds, o);
      REQUIRE(s.num_samples() * 3 == single.num_samples());
      const auto idx = s.indices(epoch);
      const auto global = s.global_indices(epoch);
      CHECK(global == ref);  // the same global order as one process with the total batch
      for (int64_t k = 0; k < s.num_samples(); ++k) {
        // Sample k of rank r: global batch k / 2, places [2r, 2r + 2) of it.
        const int64_t pos = (k / 2) * 6 + rank * 2 + k % 2;
        CHECK(s.global_position(k) == pos);
        CHECK(idx[std::size_t(k)] == ref[std::size_t(pos)]);
      }
      joined.insert(joined.end(), idx.begin(), idx.end());
    }
    // Every image once, plus the groups' padding (24 -> 24, 13 -> 18: 42 slots).
    CHECK(joined.size() == 42);
    CHECK(std::set<int64_t>(joined.begin(), joined.end()).size() == 37);
  }
  // Not interleaved, global_position is the contiguous slice's.
  GroupSamplerOptions c = one;
  c.interleave_ranks = false;
  c.batch_size = 2;
  c.world_size = 3;
  c.rank = 1;
  const GroupSampler contiguous(ds, c);
  CHECK(contiguous.global_position(5) == contiguous.first_position() + 5);
}

TEST_CASE("GroupSampler rejects bad options and sequential_indices shards", "[data][sampler]") {
  const auto ds = dataset_of(5, wide_every_third);
  GroupSamplerOptions o;
  o.rank = 1;
  CHECK_THROWS_WITH(GroupSampler(ds, o), Contains("rank < world_size"));
  o = {};
  o.batch_size = 0;
  CHECK_THROWS_WITH(GroupSampler(ds, o), Contains("batch_size >= 1"));
  CHECK_THROWS_WITH(GroupSampler(std::vector<uint8_t>{}, GroupSamplerOptions{}), Contains("empty"));
  CHECK_THROWS_WITH(GroupSampler(std::vector<uint8_t>{0, 2}, GroupSamplerOptions{}), Contains("expected 0 or 1"));
  CHECK(sequential_indices(5) == std::vector<int64_t>{0, 1, 2, 3, 4});
  CHECK(sequential_indices(5, 2, 1) == std::vector<int64_t>{1, 3});
}
