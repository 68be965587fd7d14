// RPN head and proposal generation (include/drcnn/models/rpn.h): the head's parameter names,
// shapes, initialisation and forward structure; proposal generation on hand-made inputs
// (counts, order, (y, x, a) layout, delta channels, clipping, per-level top-k before NMS,
// level-wise NMS, max_per_img, the two small-box rules, empty inputs, errors) and against an
// independent float64 loop reference of the whole mmdet _get_bboxes_single pipeline.
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "common/golden.h"
#include "drcnn/models/rpn.h"
#include "drcnn/ops/anchors.h"

using Catch::Contains;
using drcnn::DType;
using drcnn::Generator;
using drcnn::ImageSize;
using drcnn::Shape;
using drcnn::Tensor;
using drcnn::Variable;
using drcnn::models::generate_proposals;
using drcnn::models::RpnHead;
using drcnn::models::RpnHeadOptions;
using drcnn::models::RpnProposalConfig;
using drcnn::models::RpnProposals;
using drcnn::models::RpnSmallBoxRule;

namespace {

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

template <typename T>
Tensor make(const std::vector<double>& v, const Shape& s) {
  std::vector<T> c(v.begin(), v.end());
  return Tensor::from_vector<T>(c, s);
}

std::vector<double> dvec(const Tensor& t) {
  if (t.dtype() == DType::Float32) {
    auto f = t.contiguous().to_vector<float>();
    return {f.begin(), f.end()};
  }
  return t.contiguous().to_vector<double>();
}

// One level with A = 1, H = 1, W = n: logits and anchors given, zero deltas unless passed.
struct Level {
  Tensor obj, del, anc;
};
Level row_level(const std::vector<double>& logits, const std::vector<std::vector<double>>& boxes, int64_t images = 1) {
  const int64_t n = int64_t(logits.size());
  std::vector<double> o, a;
  for (int64_t i = 0; i < images; ++i) o.insert(o.end(), logits.begin(), logits.end());
  for (const auto& b : boxes) a.insert(a.end(), b.begin(), b.end());
  return {make<float>(o, {images, 1, 1, n}), Tensor::zeros({images, 4, 1, n}), make<float>(a, {n, 4})};
}

std::vector<RpnProposals> run(const std::vector<Level>& levels, const std::vector<ImageSize>& sizes,
                              const RpnProposalConfig& cfg) {
  std::vector<Tensor> o, d, a;
  for (const Level& l : levels) {
    o.push_back(l.obj);
    d.push_back(l.del);
    a.push_back(l.anc);
  }
  return generate_proposals(o, d, a, sizes, cfg);
}

RpnProposalConfig loose() {
  RpnProposalConfig c;
  c.nms_pre = 100;
  c.max_per_img = 100;
  return c;
}

// ----------------------------------------------------------------- float64 loop reference
// mmdet v2 RPNHead._get_bboxes_single for one image, written from the definition (spec B.7):
// per level sigmoid, (y, x, a) flattening, stable descending top-k, delta2bbox with clip,
// small-box rule, greedy NMS within each level (IoU > thr suppresses) over all selections in
// descending score order (stable in level-major selection order), first max_per_img.
struct RefBox {
  double score;
  double box[4];
  int64_t level;
};

std::vector<RefBox> reference(const std::vector<std::vector<double>>& obj, const std::vector<std::vector<double>>& del,
                              const std::vector<std::vector<double>>& anc, const std::vector<std::array<int64_t, 3>>& ahw,
                              int64_t image, ImageSize size, const RpnProposalConfig& cfg) {
  std::vector<RefBox> cand;
  for (size_t l = 0; l < obj.size(); ++l) {
    const int64_t A = ahw[l][0], H = ahw[l][1], W = ahw[l][2];
    std::vector<std::pair<double, int64_t>> s;  // (score, position (y * W + x) * A + a)
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x)
        for (int64_t a = 0; a < A; ++a)
          s.push_back({sigmoid(obj[l][size_t(((image * A + a) * H + y) * W + x)]), (y * W + x) * A + a});
    std::stable_sort(s.begin(), s.end(), [](const auto& p, const auto& q) { return p.first > q.first; });
    if (cfg.nms_pre > 0) s.resize(size_t(std::min<int64_t>(cfg.nms_pre, int64_t(s.size()))));
    for (const auto& [score, p] : s) {
      const int64_t a = p % A, x = (p / A) % W, y = p / A / W;
      double d[4];
      for (int k = 0; k < 4; ++k)
        d[k] = del[l][size_t(((image * 4 * A + 4 * a + k) * H + y) * W + x)] * cfg.stds[k] + cfg.means[k];
      const double r = std::abs(std::log(cfg.wh_ratio_clip));
      d[2] = std::min(std::max(d[2], -r), r);
      d[3] = std::min(std::max(d[3], -r), r);
      const double* an = &anc[l][size_t(p * 4)];
      const double pw = an[2] - an[0], ph = an[3] - an[1];
      const double cx = (an[0] + an[2]) * 0.5 + pw * d[0], cy = (an[1] + an[3]) * 0.5 + ph * d[1];
      const double w = pw * std::exp(d[2]), h = ph * std::exp(d[3]);
      RefBox b{score, {cx - w * 0.5, cy - h * 0.5, cx + w * 0.5, cy + h * 0.5}, int64_t(l)};
      for (int k = 0; k < 4; k += 2) b.box[k] = std::min(std::max(b.box[k], 0.0), double(size.width));
      for (int k = 1; k < 4; k += 2) b.box[k] = std::min(std::max(b.box[k], 0.0), double(size.height));
      const double bw = b.box[2] - b.box[0], bh = b.box[3] - b.box[1];
      const double m = cfg.min_bbox_size;
      if (cfg.small_box_rule == RpnSmallBoxRule::GreaterThanZeroOnly && m > 0 && !(bw >= m && bh >= m)) continue;
      if (cfg.small_box_rule == RpnSmallBoxRule::StrictAlways && !(bw > m && bh > m)) continue;
      cand.push_back(b);
    }
  }
  std::stable_sort(cand.begin(), cand.end(), [](const RefBox& p, const RefBox& q) { return p.score > q.score; });
  std::vector<RefBox> kept;
  for (const RefBox& c : cand) {
    bool suppressed = false;
    for (const RefBox& k : kept) {
      if (k.level != c.level) continue;
      const double iw = std::max(std::min(c.box[2], k.box[2]) - std::max(c.box[0], k.box[0]), 0.0);
      const double ih = std::max(std::min(c.box[3], k.box[3]) - std::max(c.box[1], k.box[1]), 0.0);
      const double inter = iw * ih;
      const double area_c = (c.box[2] - c.box[0]) * (c.box[3] - c.box[1]);
      const double area_k = (k.box[2] - k.box[0]) * (k.box[3] - k.box[1]);
      if (inter / std::max(area_c + area_k - inter, 1e-6) > cfg.nms_iou) suppressed = true;
    }
    if (!suppressed) kept.push_back(c);
    if (int64_t(kept.size()) == cfg.max_per_img) break;
  }
  if (cfg.max_per_img == 0) kept.clear();
  return kept;
}

}  // namespace

// ---------------------------------------------------------------------------------- head
TEST_CASE("models/rpn: head parameter names, shapes and mmdet initialisation", "[models][rpn][cpu]") {
  Generator gen(7);
  RpnHead<float> head(RpnHeadOptions{}, gen);
  const std::vector<std::pair<std::string, Shape>> expected{
      {"rpn_conv.weight", Shape{256, 256, 3, 3}}, {"rpn_conv.bias", Shape{256}},
      {"rpn_cls.weight", Shape{3, 256, 1, 1}},    {"rpn_cls.bias", Shape{3}},
      {"rpn_reg.weight", Shape{12, 256, 1, 1}},   {"rpn_reg.bias", Shape{12}}};
  const auto params = head.named_parameters();
  REQUIRE(params.size() == expected.size());
  for (size_t i = 0; i < params.size(); ++i) {
    INFO(params[i].first);
    CHECK(params[i].first == expected[i].first);
    CHECK(params[i].second.data().shape() == expected[i].second);
    CHECK(params[i].second.requires_grad());
    const std::vector<float> v = params[i].second.data().to_vector<float>();
    if (params[i].second.data().ndim() == 1) {
      CHECK(std::all_of(v.begin(), v.end(), [](float x) { return x == 0.0f; }));
      continue;
    }
    // N(0, 0.01^2): the sample mean's standard error is 0.01 / sqrt(n) (allow 5 of them); the
    // sample std's relative standard error is 1 / sqrt(2n) (n >= 768: 2.6%; allow 4 of them).
    double sum = 0, sq = 0;
    for (float x : v) sum += x, sq += double(x) * x;
    const double n = double(v.size());
    const double mean = sum / n, sd = std::sqrt(sq / n - mean * mean);
    CHECK(std::abs(mean) < 5 * 0.01 / std::sqrt(n));
    CHECK(std::abs(sd / 0.01 - 1) < 4 / std::sqrt(2 * n));
  }
}

TEST_CASE("models/rpn: head forward is conv, relu, then cls and reg, shared across levels", "[models][rpn][cpu]") {
  Generator gen(3);
  RpnHead<double> head(RpnHeadOptions{1, 1, 2}, gen);
  // rpn_conv = identity (centre tap 1), rpn_cls channel a = (a + 1) * h + 0.5 * a,
  // rpn_reg channel c = c * h - 1.
  head.load_state_dict(drcnn::NamedTensors{
      {"rpn_conv.weight", make<double>({0, 0, 0, 0, 1, 0, 0, 0, 0}, {1, 1, 3, 3})},
      {"rpn_conv.bias", make<double>({0}, {1})},
      {"rpn_cls.weight", make<double>({1, 2}, {2, 1, 1, 1})},
      {"rpn_cls.bias", make<double>({0, 0.5}, {2})},
      {"rpn_reg.weight", make<double>({0, 1, 2, 3, 4, 5, 6, 7}, {8, 1, 1, 1})},
      {"rpn_reg.bias", make<double>(std::vector<double>(8, -1.0), {8})}});
  const Tensor x0 = make<double>({1.5, -2.0, 0.25, 3.0, -0.5, 1.0}, {1, 1, 2, 3});
  const Tensor x1 = make<double>({-1.0, 2.0}, {1, 1, 1, 2});
  const auto out = head.forward({Variable(x0), Variable(x1)});
  REQUIRE(out.size() == 2);
  const std::vector<Tensor> xs{x0, x1};
  for (size_t l = 0; l < 2; ++l) {
    const Tensor& o = out[l].objectness.data();
    const Tensor& d = out[l].deltas.data();
    const int64_t H = xs[l].size(2), W = xs[l].size(3);
    REQUIRE(o.shape() == Shape{1, 2, H, W});
    REQUIRE(d.shape() == Shape{1, 8, H, W});
    const auto xv = xs[l].to_vector<double>();
    const auto ov = o.to_vector<double>();
    const auto dv = d.to_vector<double>();
    for (int64_t p = 0; p < H * W; ++p) {
      const double h = std::max(xv[size_t(p)], 0.0);
      for (int a = 0; a < 2; ++a) CHECK(ov[size_t(a * H * W + p)] == (a + 1) * h + 0.5 * a);
      for (int c = 0; c < 8; ++c) CHECK(dv[size_t(c * H * W + p)] == c * h - 1.0);
    }
  }
  CHECK_THROWS_WITH(head.forward({Variable(Tensor::zeros({1, 2, 2, 2}, DType::Float64))}),
                    Contains("RpnHead::forward") && Contains("[N, 1, H, W]"));
}

// ----------------------------------------------------------------- proposals, hand-made
TEST_CASE("models/rpn: proposals are sorted by score and carry sigmoid scores", "[models][rpn][cpu]") {
  const Level l = row_level({0, 3, -1, 2, 1}, {{0, 0, 4, 4}, {10, 0, 14, 4}, {20, 0, 24, 4}, {30, 0, 34, 4}, {40, 0, 44, 4}});
  const auto r = run({l}, {{50, 50}}, loose());
  REQUIRE(r.size() == 1);
  REQUIRE(r[0].boxes.shape() == Shape{5, 4});
  const auto s = dvec(r[0].scores);
  const auto b = dvec(r[0].boxes);
  const std::vector<int> order{1, 3, 4, 0, 2};
  const std::vector<double> logit{0, 3, -1, 2, 1};
  for (size_t j = 0; j < 5; ++j) {
    CHECK(s[j] == Approx(sigmoid(logit[size_t(order[j])])).margin(1e-7));  // float32 sigmoid
    CHECK(b[j * 4] == 10.0 * order[j]);
  }
  CHECK(r[0].levels.to_vector<int64_t>() == std::vector<int64_t>(5, 0));
}

TEST_CASE("models/rpn: (y, x, a) flattening and delta channels 4a..4a+3", "[models][rpn][cpu]") {
  // A = 2, H = 2, W = 2. Logit of (a, y, x) = 10 * y + 5 * x + a: the order is fully determined.
  // Anchors are row (y * W + x) * A + a; anchor index j is the box (10 j, 0, 10 j + 8, 8).
  std::vector<double> o(8), d(32, 0.0), anc;
  for (int a = 0; a < 2; ++a)
    for (int y = 0; y < 2; ++y)
      for (int x = 0; x < 2; ++x) o[size_t((a * 2 + y) * 2 + x)] = 10 * y + 5 * x + a;
  for (int j = 0; j < 8; ++j) anc.insert(anc.end(), {10.0 * j, 0, 10.0 * j + 8, 8});
  // Anchor a = 1 at (y 0, x 1) (row 3): dx = 0.25 -> shifted by 2 px; channel 4 * 1 + 0 = 4.
  d[size_t((4 * 1 + 0) * 4 + 0 * 2 + 1)] = 0.25;
  const Level l{make<float>(o, {1, 2, 2, 2}), make<float>(d, {1, 8, 2, 2}), make<float>(anc, {8, 4})};
  const auto r = run({l}, {{100, 100}}, loose());
  const auto b = dvec(r[0].boxes);
  REQUIRE(b.size() == 32);
  // Descending 10y + 5x + a: rows (y, x, a) = (1,1,1),(1,1,0),(1,0,1),(1,0,0),(0,1,1),(0,1,0),(0,0,1),(0,0,0).
  const std::vector<int> rows{7, 6, 5, 4, 3, 2, 1, 0};
  for (size_t j = 0; j < 8; ++j) {
    const double shift = rows[j] == 3 ? 2.0 : 0.0;
    CHECK(b[j * 4] == 10.0 * rows[j] + shift);
    CHECK(b[j * 4 + 2] == 10.0 * rows[j] + 8 + shift);
  }
}

TEST_CASE("models/rpn: proposals are clipped to each image's unpadded size", "[models][rpn][cpu]") {
  // Two images, one padded batch; the same anchors reach beyond both images.
  Level l = row_level({1, 0}, {{-5, -3, 30, 20}, {8, 6, 40, 40}}, 2);
  const auto r = run({l}, {{10, 12}, {16, 25}}, loose());
  REQUIRE(r.size() == 2);
  CHECK(dvec(r[0].boxes) == std::vector<double>{0, 0, 12, 10, 8, 6, 12, 10});
  CHECK(dvec(r[1].boxes) == std::vector<double>{0, 0, 25, 16, 8, 6, 25, 16});
}

TEST_CASE("models/rpn: the top-k per level is applied before NMS", "[models][rpn][cpu]") {
  // Level 0: six disjoint boxes with high scores; level 1: two boxes with lower scores.
  std::vector<std::vector<double>> b0, b1{{0, 50, 5, 55}, {10, 50, 15, 55}};
  for (int j = 0; j < 6; ++j) b0.push_back({10.0 * j, 0, 10.0 * j + 5, 5});
  const Level l0 = row_level({6, 5, 4, 3, 2, 1}, b0), l1 = row_level({-1, -2}, b1);
  RpnProposalConfig cfg = loose();
  cfg.nms_pre = 3;
  const auto r = run({l0, l1}, {{60, 60}}, cfg);
  REQUIRE(r[0].boxes.size(0) == 5);  // 3 from level 0 (not 6), both of level 1
  CHECK(r[0].levels.to_vector<int64_t>() == std::vector<int64_t>{0, 0, 0, 1, 1});
  const auto b = dvec(r[0].boxes);
  CHECK(b[0] == 0);
  CHECK(b[4] == 10);
  CHECK(b[8] == 20);
  CHECK(b[13] == 50);
}

TEST_CASE("models/rpn: NMS runs within a level, not across levels", "[models][rpn][cpu]") {
  // Level 0 holds the same box twice (scores 2, 1), level 1 holds it once more (score 1.5).
  const Level l0 = row_level({1, 2}, {{5, 5, 20, 20}, {5, 5, 20, 20}});
  const Level l1 = row_level({1.5}, {{5, 5, 20, 20}});
  const auto r = run({l0, l1}, {{30, 30}}, loose());
  REQUIRE(r[0].boxes.size(0) == 2);
  CHECK(r[0].levels.to_vector<int64_t>() == std::vector<int64_t>{0, 1});
  const auto s = dvec(r[0].scores);
  CHECK(s[0] == Approx(sigmoid(2)).margin(1e-7));
  CHECK(s[1] == Approx(sigmoid(1.5)).margin(1e-7));
  // An IoU of exactly the threshold does not suppress: boxes with IoU 0.5 at nms_iou 0.5.
  RpnProposalConfig cfg = loose();
  cfg.nms_iou = 0.5;
  const Level half = row_level({2, 1}, {{0, 0, 10, 10}, {0, 0, 10, 5}});
  CHECK(run({half}, {{30, 30}}, cfg)[0].boxes.size(0) == 2);
  cfg.nms_iou = 0.49;
  CHECK(run({half}, {{30, 30}}, cfg)[0].boxes.size(0) == 1);
}

TEST_CASE("models/rpn: max_per_img caps the proposals after NMS", "[models][rpn][cpu]") {
  std::vector<std::vector<double>> b;
  std::vector<double> logits;
  for (int j = 0; j < 7; ++j) b.push_back({10.0 * j, 0, 10.0 * j + 5, 5}), logits.push_back(j);
  RpnProposalConfig cfg = loose();
  cfg.max_per_img = 4;
  const auto r = run({row_level(logits, b)}, {{80, 80}}, cfg);
  REQUIRE(r[0].boxes.size(0) == 4);
  CHECK(dvec(r[0].boxes)[0] == 60);
  CHECK(dvec(r[0].boxes)[12] == 30);
  cfg.max_per_img = 0;
  CHECK(run({row_level(logits, b)}, {{80, 80}}, cfg)[0].boxes.size(0) == 0);
  cfg = loose();
  cfg.nms_pre = 0;  // mmdet: nms_pre <= 0 disables the top-k
  CHECK(run({row_level(logits, b)}, {{80, 80}}, cfg)[0].boxes.size(0) == 7);
  cfg.nms_pre = 2;
  CHECK(run({row_level(logits, b)}, {{80, 80}}, cfg)[0].boxes.size(0) == 2);
}

TEST_CASE("models/rpn: small-box rules of mmdet v2 before and after 2.18", "[models][rpn][cpu]") {
  // Box 0 is 4 wide, box 1 is 2 wide, box 2 lies outside the image and clips to zero width.
  const Level l = row_level({3, 2, 1}, {{0, 0, 4, 6}, {10, 0, 12, 6}, {40, 0, 50, 6}});
  RpnProposalConfig cfg = loose();
  CHECK(run({l}, {{20, 20}}, cfg)[0].boxes.size(0) == 3);  // min 0, early rule: no filter
  cfg.min_bbox_size = 2;
  CHECK(run({l}, {{20, 20}}, cfg)[0].boxes.size(0) == 2);  // keeps w >= 2
  cfg.small_box_rule = RpnSmallBoxRule::StrictAlways;
  CHECK(run({l}, {{20, 20}}, cfg)[0].boxes.size(0) == 1);  // keeps w > 2
  cfg.min_bbox_size = 0;
  const auto r = run({l}, {{20, 20}}, cfg);  // keeps w > 0: the clipped box goes
  REQUIRE(r[0].boxes.size(0) == 2);
  CHECK(dvec(r[0].boxes)[4] == 10);
}

TEST_CASE("models/rpn: empty levels, empty images and an empty batch", "[models][rpn][cpu]") {
  const Level full = row_level({1, 2}, {{0, 0, 4, 4}, {10, 0, 14, 4}});
  const Level empty{Tensor::zeros({1, 1, 0, 3}), Tensor::zeros({1, 4, 0, 3}), Tensor::zeros({0, 4})};
  auto r = run({empty, full, empty}, {{20, 20}}, loose());
  CHECK(r[0].boxes.size(0) == 2);
  CHECK(r[0].levels.to_vector<int64_t>() == std::vector<int64_t>{1, 1});
  r = run({empty}, {{20, 20}}, loose());
  CHECK(r[0].boxes.shape() == Shape{0, 4});
  CHECK(r[0].scores.shape() == Shape{0});
  // A 0 x 0 image: every box clips to a point; IoU 0 never suppresses, so the early rule keeps them.
  r = run({full}, {{0, 0}}, loose());
  CHECK(r[0].boxes.size(0) == 2);
  CHECK(dvec(r[0].boxes) == std::vector<double>(8, 0.0));
  const Level none{Tensor::zeros({0, 1, 1, 2}), Tensor::zeros({0, 4, 1, 2}), full.anc};
  CHECK(run({none}, {}, loose()).empty());
}

TEST_CASE("models/rpn: the head-output overload matches the tensor one", "[models][rpn][cpu]") {
  Generator gen(11);
  RpnHead<float> head(RpnHeadOptions{4, 4, 3}, gen);
  const Tensor x = Tensor::randn({1, 4, 3, 5}, gen);
  const auto out = head.forward({Variable(x, true)});
  drcnn::ops::AnchorConfig ac;
  ac.strides = {8};
  const auto anchors = drcnn::ops::grid_anchors(ac, {{3, 5}});
  const auto a = generate_proposals(out, anchors, {{24, 40}}, loose());
  const auto b = generate_proposals({out[0].objectness.data()}, {out[0].deltas.data()}, anchors, {{24, 40}}, loose());
  CHECK(dvec(a[0].boxes) == dvec(b[0].boxes));
  CHECK(a[0].boxes.size(0) > 0);
}

TEST_CASE("models/rpn: generate_proposals rejects inconsistent inputs", "[models][rpn][cpu]") {
  const Level l = row_level({1, 2}, {{0, 0, 4, 4}, {10, 0, 14, 4}});
  CHECK_THROWS_WITH(run({l}, {{20, 20}, {20, 20}}, loose()), Contains("generate_proposals") && Contains("objectness"));
  const Level bad_anchors{l.obj, l.del, Tensor::zeros({3, 4})};
  CHECK_THROWS_WITH(run({bad_anchors}, {{20, 20}}, loose()), Contains("anchors[0]"));
  const Level bad_deltas{l.obj, Tensor::zeros({1, 2, 1, 2}), l.anc};
  CHECK_THROWS_WITH(run({bad_deltas}, {{20, 20}}, loose()), Contains("deltas[0]"));
  const Level mixed{l.obj, l.del, l.anc.to(DType::Float64)};
  CHECK_THROWS_WITH(run({mixed}, {{20, 20}}, loose()), Contains("every input must be"));
  RpnProposalConfig cfg = loose();
  cfg.max_per_img = -1;
  CHECK_THROWS_WITH(run({l}, {{20, 20}}, cfg), Contains("max_per_img"));
  CHECK_THROWS_WITH(generate_proposals(std::vector<Tensor>{}, {}, {}, {}, cfg), Contains("per level"));
}

// -------------------------------------------------------------- random vs loop reference
TEST_CASE("models/rpn: proposals match a float64 loop reference on random inputs", "[models][rpn][reference][cpu]") {
  // Two images of different sizes in a 40 x 48 padded batch, three levels (strides 4, 8, 16),
  // A = 3 real mmdet anchors; logits N(0, 2), deltas N(0, 0.4) so boxes overlap and NMS,
  // clipping, top-k and the cap all act. float64 throughout: the selections and the kept
  // sets must be identical; boxes agree to 1e-9 px (operation-order differences in the
  // decode are a few ulp of ~50 px, ~1e-14) and scores to 1e-15 (the sigmoid's formula).
  drcnn::ops::AnchorConfig ac;
  ac.strides = {4, 8, 16};
  const std::vector<drcnn::ops::FeatureSize> fs{{10, 12}, {5, 6}, {3, 3}};
  const std::vector<Tensor> anchors = drcnn::ops::grid_anchors(ac, fs, DType::Float64);
  const std::vector<ImageSize> sizes{{40, 48}, {29, 21}};
  const int64_t N = 2, A = 3;
  int compared = 0;
  for (int trial = 0; trial < 24; ++trial) {
    std::mt19937_64 rng(1000 + trial);
    std::normal_distribution<double> logit(0.0, 2.0), delta(0.0, 0.4);
    std::vector<std::vector<double>> obj, del, anc;
    std::vector<std::array<int64_t, 3>> ahw;
    std::vector<Tensor> to, td;
    for (size_t l = 0; l < fs.size(); ++l) {
      const int64_t H = fs[l].height, W = fs[l].width;
      std::vector<double> o(size_t(N * A * H * W)), d(size_t(N * 4 * A * H * W));
      for (double& v : o) v = logit(rng);
      // Some exact ties in the scores (ties must resolve by lower position).
      for (size_t j = 0; j + 7 < o.size(); j += 7) o[j + 7] = o[j];
      for (double& v : d) v = delta(rng);
      obj.push_back(o);
      del.push_back(d);
      anc.push_back(anchors[l].to_vector<double>());
      ahw.push_back({A, H, W});
      to.push_back(make<double>(o, {N, A, H, W}));
      td.push_back(make<double>(d, {N, 4 * A, H, W}));
    }
    RpnProposalConfig cfg;
    const int variant = trial % 6;
    cfg.nms_pre = std::vector<int64_t>{40, 1000, 15, 200, 0, 7}[size_t(variant)];
    cfg.nms_iou = std::vector<double>{0.85, 0.7, 0.5, 0.3, 0.85, 0.6}[size_t(variant)];
    cfg.max_per_img = std::vector<int64_t>{1000, 50, 12, 1000, 30, 1000}[size_t(variant)];
    if (trial % 4 == 1) cfg.min_bbox_size = 3;
    if (trial % 4 >= 2) cfg.small_box_rule = RpnSmallBoxRule::StrictAlways;
    if (trial % 4 == 3) cfg.min_bbox_size = 2;
    if (trial % 5 == 2) cfg.means = {0.1, -0.1, 0.05, 0}, cfg.stds = {0.5, 0.5, 1.5, 1.5};
    const auto got = generate_proposals(to, td, anchors, sizes, cfg);
    REQUIRE(got.size() == 2);
    for (int64_t i = 0; i < N; ++i) {
      INFO("trial " << trial << " image " << i);
      const auto ref = reference(obj, del, anc, ahw, i, sizes[size_t(i)], cfg);
      const auto gb = dvec(got[size_t(i)].boxes), gs = dvec(got[size_t(i)].scores);
      const auto gl = got[size_t(i)].levels.to_vector<int64_t>();
      REQUIRE(gs.size() == ref.size());
      for (size_t j = 0; j < ref.size(); ++j) {
        CHECK(gl[j] == ref[j].level);
        CHECK(std::abs(gs[j] - ref[j].score) <= 1e-15);
        for (int k = 0; k < 4; ++k) CHECK(std::abs(gb[j * 4 + k] - ref[j].box[k]) <= 1e-9);
      }
      compared += int(ref.size());
    }
  }
  CHECK(compared > 500);
}

// ------------------------------------------------------------ golden: mmdet in torch float32
TEST_CASE("models/rpn: proposals match mmdet's _get_bboxes_single in torch", "[models][rpn][golden][cpu]") {
  // tools/golden_rpn_proposals.py: torch float32 mmdet v2 pipeline with torchvision's NMS on
  // random logits / deltas, 2 images (128 x 160 and 100 x 130), levels 16 x 20, 8 x 10, 4 x 5.
  // Counts and levels must be identical. Scores: within 2.5e-7 (4 ulp of a float32 in [0.5, 1); torch's
  // sigmoid and ours differ by up to 2 ulp, measured 1.2e-7). Boxes: within 1e-4 px (a few float32 ulps at 160
  // px; the decode's operation order differs slightly from torch's).
  const auto g = drcnn::test::load_golden("models/rpn_proposals");
  std::vector<Tensor> obj, del, anc;
  for (int l = 0; l < 3; ++l) {
    obj.push_back(g[fmt::format("obj.{}", l)]);
    del.push_back(g[fmt::format("del.{}", l)]);
    anc.push_back(g[fmt::format("anchors.{}", l)]);
  }
  const auto sz = g["image_sizes"].to_vector<int64_t>();
  const std::vector<ImageSize> sizes{{sz[0], sz[1]}, {sz[2], sz[3]}};
  struct C {
    int64_t nms_pre;
    double iou;
    int64_t max_per_img;
    double min_size;
  };
  const std::vector<C> configs{{300, 0.85, 200, 0.0}, {100, 0.7, 1000, 4.0}, {1000, 0.5, 50, 0.0}};
  for (size_t c = 0; c < configs.size(); ++c) {
    RpnProposalConfig cfg;
    cfg.nms_pre = configs[c].nms_pre;
    cfg.nms_iou = configs[c].iou;
    cfg.max_per_img = configs[c].max_per_img;
    cfg.min_bbox_size = configs[c].min_size;
    const auto got = generate_proposals(obj, del, anc, sizes, cfg);
    for (size_t i = 0; i < 2; ++i) {
      const std::string key = fmt::format("c{}.img{}", c, i);
      INFO(key);
      CHECK(got[i].levels.to_vector<int64_t>() == g[key + ".levels"].to_vector<int64_t>());
      drcnn::test::expect_golden_close(key + ".scores", got[i].scores, g[key + ".scores"], 0.0, 2.5e-7);
      drcnn::test::expect_golden_close(key + ".boxes", got[i].boxes, g[key + ".boxes"], 0.0, 1e-4);
    }
  }
}
