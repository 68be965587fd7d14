// Transforms: mmcv's rescale_size rounding, bilinear resize (hand case, torch golden, cv2
// comparison), exact flips, normalisation against a float64 reference, boxes moved with the
// image and degenerate ones dropped, multi-scale choice by seed, whole pipelines.
#include <catch2/catch.hpp>
#include <fmt/core.h>

#include <cmath>
#include <set>

#include "common/golden.h"
#include "datasets/memory_dataset.h"
#include "drcnn/core/error.h"
#include "drcnn/data/transforms.h"
#include "drcnn/structures/image_list.h"

using namespace drcnn;
using namespace drcnn::data;
using Catch::Matchers::Contains;
using drcnn::test::make_image;

namespace {

Sample sample_of(Image img, std::vector<std::array<float, 4>> boxes, std::vector<int64_t> labels,
                 std::vector<uint8_t> ignore = {}) {
  DetectionRecord r;
  r.image_id = 7;
  r.image_path = "mem://7";
  r.width = img.width;
  r.height = img.height;
  r.boxes = std::move(boxes);
  r.labels = std::move(labels);
  r.ignore = std::move(ignore);
  return make_sample(r, std::move(img));
}

float at(const Tensor& chw, int64_t c, int64_t y, int64_t x) {
  return chw.data<float>()[(c * chw.size(1) + y) * chw.size(2) + x];
}

}  // namespace

TEST_CASE("rescale_size follows mmcv rounding", "[data][transforms]") {
  // Spec B.1: a 640x480 image with scale (1333, 800) becomes 1067x800 (s = min(1333/640, 800/480)
  // = 1.6667, 640 s + 0.5 = 1067.17 -> 1067).
  auto r = rescale_size(640, 480, 1333, 800);
  CHECK(r.width == 1067);
  CHECK(r.height == 800);
  CHECK(r.scale == Approx(800.0 / 480.0).epsilon(1e-15));
  // Portrait: the same, transposed.
  r = rescale_size(480, 640, 1333, 800);
  CHECK(r.width == 800);
  CHECK(r.height == 1067);
  // The order of the scale tuple does not matter (mmcv takes max and min).
  r = rescale_size(480, 640, 800, 1333);
  CHECK((r.width == 800 && r.height == 1067));
  // Long side limited: 2000x500 -> s = min(1333/2000, 800/500) = 0.6665: 1333 x int(333.25 + 0.5) = 333.
  r = rescale_size(2000, 500, 1333, 800);
  CHECK((r.width == 1333 && r.height == 333));
  // Rounds half up by int(x + 0.5): 3x3 with scale (5, 5) -> s = 5/3, 3 s = 5 (exact in rounding).
  r = rescale_size(3, 3, 5, 5);
  CHECK((r.width == 5 && r.height == 5));
  // 500x375 (a VOC size) with (1333, 800): s = min(2.666, 2.1333) = 2.1333 -> 1067 x 800.
  r = rescale_size(500, 375, 1333, 800);
  CHECK((r.width == 1067 && r.height == 800));
  CHECK_THROWS_WITH(rescale_size(0, 5, 10, 10), Contains("rescale_size"));
}

TEST_CASE("resize_bilinear 2x2 to 4x4 by hand", "[data][transforms]") {
  // One channel [[0, 100], [200, 40]]. Half-pixel centres: output x taps are
  // (1, 0) at 0 (source -0.25 clamped to 0), (0.75, 0.25), (0.25, 0.75), and pixel 1 at 3
  // (source 1.25, last pixel), the same for y.
  const Image img = make_image(2, 2, [](int32_t y, int32_t x, int32_t c) {
    const uint8_t v[2][2] = {{0, 100}, {200, 40}};
    return uint8_t(c == 0 ? v[y][x] : 10);
  });
  const Tensor out = resize_bilinear_float(img, 4, 4);
  REQUIRE(out.shape() == Shape{3, 4, 4});
  const float expected[4][4] = {{0, 25, 75, 100},
                                {50, 58.75f, 76.25f, 85},
                                {150, 126.25f, 78.75f, 55},
                                {200, 160, 80, 40}};
  // Every weight is a multiple of 1/16 and every product exact in float: equality.
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x) {
      CHECK(at(out, 0, y, x) == expected[y][x]);
      CHECK(at(out, 1, y, x) == 10.0f);
    }
  // The 8-bit version rounds half up: 58.75 -> 59, 76.25 -> 76, 126.25 -> 126, 78.75 -> 79.
  const Image u8 = resize_bilinear(img, 4, 4);
  CHECK(int(u8.pixel(1, 1)[0]) == 59);
  CHECK(int(u8.pixel(1, 2)[0]) == 76);
  CHECK(int(u8.pixel(2, 1)[0]) == 126);
  CHECK(int(u8.pixel(2, 2)[0]) == 79);
  CHECK(int(u8.pixel(3, 3)[0]) == 40);
}

TEST_CASE("resize_bilinear equals torch interpolate bilinear align_corners False", "[data][transforms][golden]") {
  // tools/golden_transforms.py: torch 1.13 F.interpolate(bilinear, align_corners=False,
  // antialias=False) on float32. Tolerance 1e-4 on values 0..255: both compute the same
  // float expression; only the multiply-add grouping may differ (a few ulp of 255 = 1.5e-5 each).
  const auto g = drcnn::test::load_golden("datasets/transforms_resize");
  const auto cv = drcnn::test::load_golden("datasets/transforms_resize_cv2");
  int max_level_diff = 0;
  int64_t differing = 0, total = 0;
  for (int k = 0;; ++k) {
    const std::string name = fmt::format("case{}", k);
    if (!g.contains(name + ".input")) {
      REQUIRE(k == 8);
      break;
    }
    const Tensor in = g[name + ".input"];  // uint8 [H, W, 3]
    const Tensor expected = g[name + ".output"];
    Image img;
    img.height = int32_t(in.size(0));
    img.width = int32_t(in.size(1));
    img.pixels = in.to_vector<uint8_t>();
    const int32_t oh = int32_t(expected.size(1)), ow = int32_t(expected.size(2));
    drcnn::test::expect_golden_close(name, resize_bilinear_float(img, ow, oh), expected, 0.0, 1e-4);
    // The float CHW path gives the same numbers.
    drcnn::test::expect_golden_close(name + " (tensor)", resize_bilinear(to_float_chw(img), ow, oh), expected, 0.0,
                                     1e-4);
    // cv2.resize(INTER_LINEAR) on uint8 (fixed-point weights of 11 bits): our rounded result
    // may differ by one level where the float value sits near a .5.
    const Image ours = resize_bilinear(img, ow, oh);
    const std::vector<uint8_t> theirs = cv[name + ".output"].to_vector<uint8_t>();
    REQUIRE(theirs.size() == ours.pixels.size());
    for (std::size_t i = 0; i < theirs.size(); ++i) {
      const int d = std::abs(int(ours.pixels[i]) - int(theirs[i]));
      max_level_diff = std::max(max_level_diff, d);
      differing += d != 0;
      ++total;
    }
  }
  fmt::print("resize vs cv2 uint8: max difference {} level(s), {} of {} values differ\n", max_level_diff, differing,
             total);
  CHECK(max_level_diff <= 1);
}

TEST_CASE("flip_horizontal 3x5 is exact and flips boxes", "[data][transforms]") {
  const Image img = make_image(5, 3, [](int32_t y, int32_t x, int32_t c) { return uint8_t(100 * c + 10 * y + x); });
  const Image f = flip_horizontal(img);
  for (int y = 0; y < 3; ++y)
    for (int x = 0; x < 5; ++x)
      for (int c = 0; c < 3; ++c) CHECK(int(f.pixel(y, x)[c]) == 100 * c + 10 * y + (4 - x));
  const Tensor ft = flip_horizontal(to_float_chw(img));
  CHECK(at(ft, 2, 1, 0) == float(200 + 10 + 4));

  Sample s = sample_of(img, {{1, 0, 3, 2}, {0, 1, 5, 3}, {0.5f, 0.25f, 1.75f, 1}}, {0, 1, 2}, {0, 1, 0});
  RandomFlip always(1.0);
  RandomStream rng(1, 2);
  always.apply(s, rng);
  CHECK(s.meta.flipped);
  REQUIRE(s.boxes.size() == 3);
  // x1' = W - x2, x2' = W - x1 with W = 5 (continuous coordinates, no -1).
  CHECK(s.boxes[0] == std::array<float, 4>{2, 0, 4, 2});
  CHECK(s.boxes[1] == std::array<float, 4>{0, 1, 5, 3});
  CHECK(s.boxes[2] == std::array<float, 4>{3.25f, 0.25f, 4.5f, 1});
  CHECK(s.labels == std::vector<int64_t>{0, 1, 2});
  CHECK(s.ignore == std::vector<uint8_t>{0, 1, 0});
  for (int x = 0; x < 5; ++x) CHECK(int(s.image.pixel(2, x)[1]) == 100 + 20 + 4 - x);

  Sample t = sample_of(img, {{1, 0, 3, 2}}, {0});
  RandomFlip never(0.0);
  never.apply(t, rng);
  CHECK_FALSE(t.meta.flipped);
  CHECK(t.boxes[0] == std::array<float, 4>{1, 0, 3, 2});
  CHECK_THROWS_WITH(RandomFlip(1.5), Contains("RandomFlip"));
}

TEST_CASE("RandomFlip draws from the sample stream", "[data][transforms]") {
  // Each stream decides alone; over 2000 streams the fraction flipped is near p = 0.5
  // (binomial sd 0.011: the bounds are > 5 sd, and the streams are fixed, so no flakiness).
  const Image img = make_image(4, 2, [](int32_t, int32_t x, int32_t) { return uint8_t(x); });
  RandomFlip flip(0.5);
  int flipped = 0;
  for (uint64_t pos = 0; pos < 2000; ++pos) {
    Sample a = sample_of(img, {}, {}), b = sample_of(img, {}, {});
    RandomStream ra = RandomStream::for_sample(42, 3, pos), rb = RandomStream::for_sample(42, 3, pos);
    flip.apply(a, ra);
    flip.apply(b, rb);
    CHECK(a.meta.flipped == b.meta.flipped);
    flipped += a.meta.flipped;
  }
  CHECK(flipped > 880);
  CHECK(flipped < 1120);
}

TEST_CASE("Resize moves boxes by the float32 per-axis factors and clips them", "[data][transforms]") {
  const Image img = drcnn::test::hashed_image(64, 48, 1);
  // Scale (1333, 800) in miniature: (107, 80): s = min(107/64, 80/48) = 1.6667 -> 107 x 80.
  Sample s = sample_of(img,
                       {{10, 20, 50, 40},     // inside
                        {60, 40, 64, 48},     // touches the corner
                        {0.25f, 3, 0.5f, 9},  // tiny but kept: MMDetection v2 keeps small boxes
                        {5, 5, 5, 9}},        // zero width: dropped by make_sample already
                       {1, 2, 0, 1}, {0, 0, 1, 0});
  CHECK(s.meta.dropped_boxes == 1);
  REQUIRE(s.boxes.size() == 3);
  ResizeOptions o;
  o.scales = {{107, 80}};
  Resize resize(o);
  RandomStream rng(0, 0);
  resize.apply(s, rng);
  REQUIRE(s.height() == 80);
  REQUIRE(s.width() == 107);
  CHECK(s.meta.height == 80);
  CHECK(s.meta.width == 107);
  CHECK(rng.draws() == 0);  // one scale: no random draw
  // mmdet: scale_factor = np.float32([107/64, 80/48]); boxes (float32) * scale_factor.
  const float sx = float(107.0 / 64.0), sy = float(80.0 / 48.0);
  CHECK(s.meta.scale_w == sx);
  CHECK(s.meta.scale_h == sy);
  CHECK(s.boxes[0] == std::array<float, 4>{10 * sx, 20 * sy, 50 * sx, 40 * sy});
  CHECK(s.boxes[1] == std::array<float, 4>{60 * sx, 40 * sy, 107, 80});  // 64 sx = 107 exactly
  CHECK(s.boxes[2] == std::array<float, 4>{0.25f * sx, 3 * sy, 0.5f * sx, 9 * sy});
  CHECK(s.labels == std::vector<int64_t>{1, 2, 0});
  CHECK(s.ignore == std::vector<uint8_t>{0, 0, 1});
  // The same factors against float64: within float32 rounding.
  CHECK(double(s.boxes[0][2]) == Approx(50.0 * 107.0 / 64.0).epsilon(1e-6));

  // A stretch (keep_ratio false) with a box leaving the image and clipping.
  Sample t = sample_of(img, {{0, 0, 64, 48}, {30, 10, 40, 20}}, {0, 1});
  ResizeOptions stretch;
  stretch.scales = {{32, 24}};
  stretch.keep_ratio = false;
  Resize(stretch).apply(t, rng);
  CHECK(t.width() == 32);
  CHECK(t.height() == 24);
  CHECK(t.boxes[0] == std::array<float, 4>{0, 0, 32, 24});
  CHECK(t.boxes[1] == std::array<float, 4>{15, 5, 20, 10});
}

TEST_CASE("boxes that lose their area are dropped with labels and ignore in sync", "[data][transforms]") {
  const Image img = drcnn::test::hashed_image(20, 10, 2);
  // Box 1 lies beyond the right edge: after clipping to [0, W] its width is 0 -> dropped.
  // (Datasets drop such boxes already; the transforms must not rely on it.)
  Sample s = sample_of(img, {{1, 1, 4, 4}, {21, 2, 25, 6}, {10, 0, 20, 10}}, {3, 4, 5}, {1, 0, 0});
  ResizeOptions o;
  o.scales = {{40, 20}};  // x2
  RandomStream rng(0, 0);
  Resize(o).apply(s, rng);
  CHECK(s.meta.dropped_boxes == 1);
  REQUIRE(s.boxes.size() == 2);
  CHECK(s.boxes[0] == std::array<float, 4>{2, 2, 8, 8});
  CHECK(s.boxes[1] == std::array<float, 4>{20, 0, 40, 20});
  CHECK(s.labels == std::vector<int64_t>{3, 5});
  CHECK(s.ignore == std::vector<uint8_t>{1, 0});
  const Instances inst = to_instances(s);
  CHECK(inst.image_size == ImageSize{20, 40});
  CHECK(inst.boxes.tensor().to_vector<float>() == std::vector<float>{2, 2, 8, 8, 20, 0, 40, 20});
  CHECK(inst.labels.dtype() == DType::Int64);
  CHECK(inst.labels.to_vector<int64_t>() == std::vector<int64_t>{3, 5});
  CHECK(inst.ignore.dtype() == DType::Bool);
  CHECK(inst.ignore.to_vector<int>() == std::vector<int>{1, 0});
}

TEST_CASE("multi-scale Resize chooses by the sample stream", "[data][transforms]") {
  // mmdet multiscale_mode='value': one of the listed scales, uniformly (small sizes: an 8x6
  // image whose short side always reaches the target because the long limit is never hit).
  const ResizeOptions o = ResizeOptions::multi_scale(64, {24, 28, 32, 36, 40, 44});
  REQUIRE(o.scales.size() == 6);
  const Resize resize(o);
  const Image img = drcnn::test::hashed_image(8, 6, 3);
  std::set<int32_t> seen;
  std::vector<int32_t> first, again, other_epoch;
  for (uint64_t pos = 0; pos < 60; ++pos) {
    for (int pass = 0; pass < 3; ++pass) {
      Sample s = sample_of(img, {}, {});
      RandomStream rng = RandomStream::for_sample(7, pass == 2 ? 1 : 0, pos);
      resize.apply(s, rng);
      const int32_t short_side = std::min(s.height(), s.width());
      CHECK(short_side == o.scales[std::size_t(s.meta.scale_index)][1]);
      (pass == 0 ? first : pass == 1 ? again : other_epoch).push_back(s.meta.scale_index);
      seen.insert(s.meta.scale_index);
    }
  }
  CHECK(first == again);        // same (seed, epoch, position): same choice
  CHECK(first != other_epoch);  // another epoch: other choices
  CHECK(seen.size() == 6);      // every scale is used
}

TEST_CASE("normalize matches a float64 reference", "[data][transforms]") {
  const Image img = drcnn::test::hashed_image(7, 5, 4);
  const NormalizeOptions o;
  const Tensor out = normalize(img, o.mean, o.std, true);
  REQUIRE(out.shape() == Shape{3, 5, 7});
  const Tensor bgr = normalize(img, o.mean, o.std, false);
  // (x - mean) / std in float64; ours is float32 (x - mean) * (1/std): two roundings of values
  // below 2.7 in magnitude (ulp 2.4e-7) plus the rounded reciprocal: 1e-6 is a safe bound.
  double max_err = 0;
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 5; ++y)
      for (int x = 0; x < 7; ++x) {
        const double v = img.pixel(y, x)[c];
        const double ref = (v - double(o.mean[std::size_t(c)])) / double(o.std[std::size_t(c)]);
        max_err = std::max(max_err, std::abs(double(at(out, c, y, x)) - ref));
        // BGR output: channel 0 holds blue normalised with mean[0]/std[0] as given.
        const double ref_bgr = (double(img.pixel(y, x)[2 - c]) - double(o.mean[std::size_t(c)])) /
                               double(o.std[std::size_t(c)]);
        CHECK(std::abs(double(at(bgr, c, y, x)) - ref_bgr) < 1e-6);
      }
  fmt::print("normalize vs float64: max abs error {:.3g}\n", max_err);
  CHECK(max_err < 1e-6);
  CHECK_THROWS_WITH(normalize(img, o.mean, {1, 0, 1}), Contains("std must be positive"));
}

TEST_CASE("train and test pipelines produce normalised tensors and metas", "[data][transforms]") {
  const Image img = drcnn::test::hashed_image(64, 48, 5);
  ResizeOptions r;
  r.scales = {{107, 80}};
  const Pipeline train = train_pipeline(r, 1.0);
  Sample s = sample_of(img, {{8, 8, 24, 40}}, {2});
  RandomStream rng = RandomStream::for_sample(0, 0, 0);
  train.run(s, rng);
  REQUIRE(s.is_tensor());
  CHECK(s.image.empty());
  CHECK(s.tensor.shape() == Shape{3, 80, 107});
  CHECK(s.meta.flipped);
  CHECK(s.meta.original_width == 64);
  CHECK(s.meta.original_height == 48);
  const float sx = float(107.0 / 64.0), sy = float(80.0 / 48.0);
  CHECK(s.boxes[0] == std::array<float, 4>{107 - 24 * sx, 8 * sy, 107 - 8 * sx, 40 * sy});
  // Pixel check: normalised (flipped, resized, rounded) value at (0, 0) channel 0.
  const Image resized = resize_bilinear(img, 107, 80);
  const float expected = (float(resized.pixel(0, 106)[0]) - 123.675f) * float(1.0 / double(58.395f));
  CHECK(at(s.tensor, 0, 0, 0) == expected);

  const Pipeline test = test_pipeline(ResizeOptions::multi_scale(107, {80, 60}));
  Sample t = sample_of(img, {{8, 8, 24, 40}}, {2});
  RandomStream rng2(0, 0);
  test.run(t, rng2);
  CHECK(t.tensor.shape() == Shape{3, 80, 107});  // first scale only
  CHECK_FALSE(t.meta.flipped);
  CHECK(rng2.draws() == 0);

  // Batching pads to a multiple of 32 with zeros (ImageList::from_images).
  const ImageList batch = ImageList::from_images({s.tensor, t.tensor});
  CHECK(batch.padded_size() == ImageSize{96, 128});
  CHECK(batch.image_sizes()[0] == ImageSize{80, 107});

  // A pipeline without Normalize still ends with a float tensor (0..255).
  Pipeline bare;
  Sample u = sample_of(img, {}, {});
  bare.run(u, rng2);
  CHECK(u.tensor.shape() == Shape{3, 48, 64});
  CHECK(at(u.tensor, 1, 2, 3) == float(img.pixel(2, 3)[1]));

  // A float Resize (round_to_uint8 false) keeps the unrounded values.
  ResizeOptions rf = r;
  rf.round_to_uint8 = false;
  Sample v = sample_of(img, {}, {});
  Resize(rf).apply(v, rng2);
  REQUIRE(v.is_tensor());
  CHECK(at(v.tensor, 0, 5, 5) == at(resize_bilinear_float(img, 107, 80), 0, 5, 5));
}

TEST_CASE("make_sample checks sizes and counts", "[data][transforms]") {
  DetectionRecord r;
  r.image_id = 3;
  r.image_path = "/data/img3.jpg";
  r.width = 10;
  r.height = 8;
  CHECK_THROWS_WITH(make_sample(r, drcnn::test::hashed_image(8, 10, 0)),
                    Contains("/data/img3.jpg") && Contains("8x10") && Contains("10x8"));
  r.boxes = {{0, 0, 1, 1}};
  CHECK_THROWS_WITH(make_sample(r, drcnn::test::hashed_image(10, 8, 0)), Contains("1 boxes, 0 labels"));
  r.labels = {0};
  const Sample s = make_sample(r, drcnn::test::hashed_image(10, 8, 0));
  CHECK(s.ignore == std::vector<uint8_t>{0});  // absent ignore flags mean none ignored
  CHECK(s.meta.image_id == 3);
  CHECK_THROWS_WITH(Resize(ResizeOptions{{}, true, true, true}), Contains("at least one scale"));
}

TEST_CASE("resize_bilinear matches a float64 reference on odd sizes", "[data][transforms]") {
  // The definition in float64 with the exact ratio in/out: source s = (d + 0.5) in/out - 0.5,
  // clamped to [0, in - 1] for the taps, weight s - floor(s). Ours rounds the ratio to float32
  // (as torch does): the source index moves by at most 2^-24 * in px, and in <= 97 here, so the
  // values (0..255) move by at most 255 * 97 * 6e-8 = 1.5e-3; plus float32 rounding (~1e-4).
  const std::vector<std::array<int32_t, 4>> sizes = {
      {1, 1, 5, 3}, {7, 1, 1, 1}, {1, 9, 4, 1}, {97, 13, 5, 60}, {3, 50, 61, 2}, {16, 16, 16, 16}, {40, 30, 13, 97}};
  for (const auto& [w, h, ow, oh] : sizes) {
    const Image img = drcnn::test::hashed_image(w, h, uint32_t(w * 131 + h));
    const Tensor out = resize_bilinear_float(img, ow, oh);
    auto taps = [](int32_t in, int32_t o, int32_t d, int32_t& i0, int32_t& i1, double& l1) {
      const double s = std::max((d + 0.5) * double(in) / double(o) - 0.5, 0.0);
      i0 = std::min(int32_t(std::floor(s)), in - 1);
      i1 = std::min(i0 + 1, in - 1);
      l1 = std::min(s - i0, 1.0);
    };
    double max_err = 0;
    for (int32_t y = 0; y < oh; ++y)
      for (int32_t x = 0; x < ow; ++x) {
        int32_t x0, x1, y0, y1;
        double lx, ly;
        taps(w, ow, x, x0, x1, lx);
        taps(h, oh, y, y0, y1, ly);
        for (int c = 0; c < 3; ++c) {
          auto p = [&](int32_t yy, int32_t xx) { return double(img.pixel(yy, xx)[c]); };
          const double ref = (1 - ly) * ((1 - lx) * p(y0, x0) + lx * p(y0, x1)) + ly * ((1 - lx) * p(y1, x0) + lx * p(y1, x1));
          max_err = std::max(max_err, std::abs(double(at(out, c, y, x)) - ref));
        }
      }
    INFO(w << "x" << h << " -> " << ow << "x" << oh << ": max error " << max_err);
    CHECK(max_err < 2e-3);
  }
}
