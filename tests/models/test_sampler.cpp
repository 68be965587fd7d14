// RandomSampler (include/drcnn/models/sampler.h): exact counts in every regime (enough / too few
// positives, too few negatives, neg_pos_ub), validity of the indices (right class, in range, no
// duplicates, ascending), reproducibility by seed, add_gt_as_proposals, and a frequency check
// that a random subset is uniform.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>
#include <vector>

#include "common/allclose.h"
#include "drcnn/models/assigner.h"
#include "drcnn/models/sampler.h"

using Catch::Contains;
using drcnn::DType;
using drcnn::Generator;
using drcnn::Shape;
using drcnn::Tensor;
using drcnn::models::AssignResult;
using drcnn::models::MaxIoUAssigner;
using drcnn::models::MaxIoUAssignerOptions;
using drcnn::models::RandomSampler;
using drcnn::models::SamplingResult;

namespace {

Tensor longs(const std::vector<int64_t>& v) { return Tensor::from_vector<int64_t>(v, Shape{int64_t(v.size())}); }
std::vector<int64_t> ints(const Tensor& t) { return t.to_vector<int64_t>(); }

// A hand-made assignment: `pos` positives (matched to GT j % num_gts), then `neg` negatives,
// then `ign` ignored candidates, interleaved by a fixed stride so the classes are mixed.
struct Setup {
  AssignResult assign;
  Tensor bboxes;
  Tensor gt;
  Tensor gt_labels;
};
Setup make(int64_t pos, int64_t neg, int64_t ign, int64_t num_gts = 3) {
  const int64_t n = pos + neg + ign;
  std::vector<int64_t> cls;  // 1 pos, 0 neg, -1 ignore
  for (int64_t i = 0; i < pos; ++i) cls.push_back(1);
  for (int64_t i = 0; i < neg; ++i) cls.push_back(0);
  for (int64_t i = 0; i < ign; ++i) cls.push_back(-1);
  // Deterministic shuffle (multiplicative stride coprime with n).
  std::vector<int64_t> gt_inds(size_t(n), 0), labels(size_t(n), -1);
  std::vector<double> box;
  int64_t p = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t c = cls[size_t((i * 7919) % n)];
    gt_inds[size_t(i)] = c == 1 ? 1 + (p++ % num_gts) : c;
    if (c == 1) labels[size_t(i)] = 10 + (gt_inds[size_t(i)] - 1);
    box.insert(box.end(), {double(i), 0, double(i) + 1, 1});
  }
  if (n > 0 && std::gcd(n, int64_t(7919)) != 1) FAIL("stride not coprime");
  Setup s;
  s.assign.num_gts = num_gts;
  s.assign.gt_inds = longs(gt_inds);
  s.assign.max_overlaps = Tensor::zeros({n});
  s.assign.labels = longs(labels);
  s.bboxes = Tensor::from_vector<double>(box, Shape{n, 4}).to(DType::Float32);
  std::vector<double> g;
  std::vector<int64_t> gl;
  for (int64_t j = 0; j < num_gts; ++j) {
    g.insert(g.end(), {1000.0 + double(j), 0, 1001.0 + double(j), 1});
    gl.push_back(10 + j);
  }
  s.gt = Tensor::from_vector<double>(g, Shape{num_gts, 4}).to(DType::Float32);
  s.gt_labels = longs(gl);
  return s;
}

// Every structural property of a sampling result against the assignment it came from.
void check_valid(const SamplingResult& r, const AssignResult& a) {
  const auto gi = ints(a.gt_inds);
  const auto pos = ints(r.pos_inds), neg = ints(r.neg_inds);
  CHECK(std::is_sorted(pos.begin(), pos.end()));
  CHECK(std::is_sorted(neg.begin(), neg.end()));
  CHECK(std::adjacent_find(pos.begin(), pos.end()) == pos.end());
  CHECK(std::adjacent_find(neg.begin(), neg.end()) == neg.end());
  for (int64_t i : pos) {
    REQUIRE(i >= 0);
    REQUIRE(i < int64_t(gi.size()));
    CHECK(gi[size_t(i)] > 0);
  }
  for (int64_t i : neg) {
    REQUIRE(i >= 0);
    REQUIRE(i < int64_t(gi.size()));
    CHECK(gi[size_t(i)] == 0);
  }
  const auto agi = ints(r.pos_assigned_gt_inds);
  REQUIRE(agi.size() == pos.size());
  for (size_t t = 0; t < pos.size(); ++t) CHECK(agi[t] == gi[size_t(pos[t])] - 1);
  CHECK(r.pos_bboxes.size(0) == int64_t(pos.size()));
  CHECK(r.neg_bboxes.size(0) == int64_t(neg.size()));
  CHECK(r.pos_gt_bboxes.size(0) == int64_t(pos.size()));
}

// Samples a Setup without adding the GTs.
SamplingResult draw(Setup& s, int64_t num, double pos_fraction, double neg_pos_ub, Generator& gen) {
  return RandomSampler(num, pos_fraction, neg_pos_ub, false).sample(s.assign, s.bboxes, s.gt, s.gt_labels, gen);
}

}  // namespace

TEST_CASE("sampler counts: enough positives, too few positives, too few negatives", "[models][sampler]") {
  struct Case {
    const char* what;
    int64_t pos, neg, ign, num;
    double pos_fraction, neg_pos_ub;
    int64_t want_pos, want_neg;
  };
  const Case cases[] = {
      {"enough of both: int(num * pos_fraction) positives, the rest negatives", 40, 200, 15, 64, 0.25, -1, 16, 48},
      {"too few positives: all of them, negatives fill up to num", 5, 200, 15, 64, 0.25, -1, 5, 59},
      {"too few negatives: a smaller batch, ignored candidates never drawn", 5, 10, 100, 64, 0.25, -1, 5, 10},
      {"int() truncates num * pos_fraction (2.5)", 40, 200, 0, 10, 0.25, -1, 2, 8},
      {"neg_pos_ub caps the negatives at int(ub * #pos)", 3, 200, 0, 64, 0.25, 2.0, 3, 6},
      {"neg_pos_ub with no positive uses max(1, #pos): int(2.5)", 0, 200, 0, 64, 0.25, 2.5, 0, 2},
      {"no candidates", 0, 0, 0, 64, 0.25, -1, 0, 0},
  };
  Generator gen(1);
  for (const Case& c : cases) {
    INFO(c.what);
    Setup s = make(c.pos, c.neg, c.ign);
    const SamplingResult r = draw(s, c.num, c.pos_fraction, c.neg_pos_ub, gen);
    CHECK(r.pos_inds.numel() == c.want_pos);
    CHECK(r.neg_inds.numel() == c.want_neg);
    CHECK(r.pos_bboxes.shape() == Shape{c.want_pos, 4});
    check_valid(r, s.assign);
  }
}

TEST_CASE("sampler is reproducible by seed and advances the generator", "[models][sampler]") {
  const Setup s0 = make(300, 3000, 50);
  auto run = [&](uint64_t seed, uint64_t offset = 0) {
    Setup s = s0;
    Generator gen(seed, offset);
    SamplingResult r = draw(s, 512, 0.25, -1, gen);
    CHECK(gen.offset == offset + 3350);  // one key per candidate
    check_valid(r, s.assign);
    return std::pair{ints(r.pos_inds), ints(r.neg_inds)};
  };
  const auto a = run(7), b = run(7), c = run(8), d = run(7, 3350);
  CHECK(a.first.size() == 128);
  CHECK(a.second.size() == 384);
  CHECK(a == b);
  CHECK(a.first != c.first);  // P(equal) = 1 / C(300, 128): never by chance
  CHECK(a.second != c.second);
  CHECK(a.first != d.first);  // the next draw of the same stream differs too
}

TEST_CASE("sampler random subsets are uniform", "[models][sampler]") {
  // Choose 1 positive of 4 in 4000 draws: each is chosen 1000 times in expectation, binomial
  // standard deviation sqrt(4000 * 0.25 * 0.75) = 27.4; 6 sigma (164) never fails by chance for
  // a uniform choice but catches a biased one (e.g. always the first: 4000).
  const Setup s0 = make(4, 4, 0, 1);
  std::vector<int> hits(8, 0);
  Generator gen(123);
  for (int t = 0; t < 4000; ++t) {
    Setup s = s0;
    const SamplingResult r = draw(s, 2, 0.5, 0.0, gen);
    REQUIRE(r.pos_inds.numel() == 1);
    ++hits[size_t(r.pos_inds.item<int64_t>())];
  }
  const auto gi = ints(s0.assign.gt_inds);
  for (size_t i = 0; i < 8; ++i) {
    INFO("candidate " << i << " chosen " << hits[i] << " times");
    if (gi[i] > 0)
      CHECK(std::abs(hits[i] - 1000) <= 164);
    else
      CHECK(hits[i] == 0);
  }
}

TEST_CASE("sampler add_gt_as_proposals prepends the GTs as positives", "[models][sampler]") {
  // Real assignment: two GTs, proposals with one positive (IoU 0.9) and negatives.
  const Tensor gt = Tensor::from_vector<float>({0, 0, 10, 10, 20, 20, 30, 30}, Shape{2, 4});
  const Tensor gt_labels = longs({4, 9});
  const Tensor props =
      Tensor::from_vector<float>({0, 0, 10, 9, 50, 50, 60, 60, 70, 70, 80, 80, 90, 90, 95, 95}, Shape{4, 4});
  AssignResult a = MaxIoUAssigner(MaxIoUAssignerOptions::rcnn(0.5)).assign(props, gt, gt_labels);
  Generator gen(5);
  const SamplingResult r = RandomSampler(512, 0.25, -1, true).sample(a, props, gt, gt_labels, gen);
  CHECK(gen.offset == 6);
  CHECK(a.num_preds() == 6);  // modified in place, as mmdet
  CHECK(r.num_gts == 2);
  CHECK(r.bboxes.shape() == Shape{6, 4});
  drcnn::test::expect_equal(r.bboxes.narrow(0, 0, 2), gt.to_vector<double>());
  CHECK(ints(r.pos_inds) == std::vector<int64_t>{0, 1, 2});
  CHECK(ints(r.neg_inds) == std::vector<int64_t>{3, 4, 5});
  CHECK(r.pos_is_gt.to_vector<uint8_t>() == std::vector<uint8_t>{1, 1, 0});
  CHECK(ints(r.pos_assigned_gt_inds) == std::vector<int64_t>{0, 1, 0});
  CHECK(ints(r.pos_gt_labels) == std::vector<int64_t>{4, 9, 4});
  drcnn::test::expect_equal(r.pos_gt_bboxes, {0, 0, 10, 10, 20, 20, 30, 30, 0, 0, 10, 10});
  drcnn::test::expect_equal(r.pos_bboxes, {0, 0, 10, 10, 20, 20, 30, 30, 0, 0, 10, 9});
  check_valid(r, a);

  // An image without GT: nothing is prepended, everything is negative.
  const Tensor no_gt = Tensor::empty({0, 4});
  AssignResult e = MaxIoUAssigner(MaxIoUAssignerOptions::rcnn(0.5)).assign(props, no_gt, longs({}));
  const SamplingResult re = RandomSampler(512, 0.25, -1, true).sample(e, props, no_gt, longs({}), gen);
  CHECK(re.pos_inds.numel() == 0);
  CHECK(re.neg_inds.numel() == 4);
  CHECK(re.pos_gt_bboxes.shape() == Shape{0, 4});
}

TEST_CASE("sampler rejects mismatched inputs naming the op", "[models][sampler]") {
  Setup s = make(3, 3, 0);
  Generator gen(0);
  const Tensor fewer = s.bboxes.narrow(0, 0, 4);
  CHECK_THROWS_WITH(RandomSampler(8, 0.5, -1, false).sample(s.assign, fewer, s.gt, s.gt_labels, gen),
                    Contains("RandomSampler::sample") && Contains("covers 6 candidates"));
  CHECK_THROWS_WITH(RandomSampler(8, 1.5), Contains("pos_fraction"));
  CHECK_THROWS_WITH(RandomSampler(8, 0.5, -1, true).sample(s.assign, s.bboxes, s.gt, Tensor(), gen),
                    Contains("needs gt_labels"));
}
