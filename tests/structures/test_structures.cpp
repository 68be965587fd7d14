// Boxes, Instances, ImageList (include/drcnn/structures/): sizes, the padding of a batch (shape
// and every value), selection, ignore flags and the input checks.
#include <catch2/catch.hpp>

#include <vector>

#include "common/allclose.h"
#include "drcnn/structures/boxes.h"
#include "drcnn/structures/image_list.h"
#include "drcnn/structures/instances.h"

using Catch::Contains;
using drcnn::Boxes;
using drcnn::DType;
using drcnn::ImageList;
using drcnn::ImageSize;
using drcnn::Instances;
using drcnn::Shape;
using drcnn::Tensor;
using drcnn::test::expect_equal;

namespace {
Tensor longs(const std::vector<int64_t>& v) { return Tensor::from_vector<int64_t>(v, Shape{int64_t(v.size())}); }

// [c, h, w] image whose element (ch, y, x) is 1 + ch * 10000 + y * 100 + x (never the pad value).
Tensor ramp(int64_t c, int64_t h, int64_t w) {
  std::vector<float> v;
  for (int64_t ch = 0; ch < c; ++ch)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) v.push_back(float(1 + ch * 10000 + y * 100 + x));
  return Tensor::from_vector<float>(v, Shape{c, h, w});
}
}  // namespace

TEST_CASE("Boxes size, area and clip", "[structures]") {
  const Boxes b(Tensor::from_vector<float>({0, 0, 10, 5, -5, -5, 30, 40, 3, 3, 3, 8}, Shape{3, 4}));
  CHECK(b.size() == 3);
  expect_equal(b.area(), {50, 35 * 45, 0});
  expect_equal(b.clip(20, 25).tensor(), {0, 0, 10, 5, 0, 0, 25, 20, 3, 3, 3, 8});
  CHECK(Boxes().size() == 0);
  CHECK(Boxes().tensor().shape() == Shape{0, 4});
  CHECK_THROWS_WITH(Boxes(Tensor::zeros({3, 5})), Contains("Boxes") && Contains("[N, 4]"));
  CHECK_THROWS_WITH(Boxes(Tensor::zeros({3, 4}, DType::Int64)), Contains("float32 or float64"));
}

TEST_CASE("Instances checks, select and ignore flags", "[structures]") {
  const Boxes b(Tensor::from_vector<float>({0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3}, Shape{3, 4}));
  const Tensor ign = Tensor::from_vector<bool>({false, true, false}, Shape{3});
  const Instances inst(ImageSize{480, 640}, b, longs({5, 6, 7}), Tensor(), ign);
  CHECK(inst.size() == 3);
  CHECK(inst.has_ignore());
  CHECK_FALSE(inst.has_scores());
  const Instances kept = inst.without_ignored();
  CHECK(kept.size() == 2);
  CHECK(kept.image_size == ImageSize{480, 640});
  CHECK(kept.labels.to_vector<int64_t>() == std::vector<int64_t>{5, 7});
  expect_equal(kept.boxes.tensor(), {0, 0, 1, 1, 2, 2, 3, 3});
  expect_equal(inst.ignored_boxes().tensor(), {1, 1, 2, 2});
  const Instances sel = inst.select(longs({2, 2, 0}));
  CHECK(sel.labels.to_vector<int64_t>() == std::vector<int64_t>{7, 7, 5});
  CHECK(sel.ignore.to_vector<uint8_t>() == std::vector<uint8_t>{0, 0, 0});
  // Empty selections, also of an empty instance set.
  CHECK(inst.select(longs({})).size() == 0);
  const Instances none(ImageSize{10, 10}, Boxes(), longs({}));
  CHECK(none.select(longs({})).boxes.tensor().shape() == Shape{0, 4});
  CHECK(none.ignored_boxes().size() == 0);
  CHECK(none.without_ignored().size() == 0);

  CHECK_THROWS_WITH(Instances(ImageSize{1, 1}, b, longs({1, 2})), Contains("labels must be int64 [3]"));
  CHECK_THROWS_WITH(Instances(ImageSize{1, 1}, b, longs({1, 2, 3}), Tensor::zeros({2})),
                    Contains("scores must be float [3]"));
  CHECK_THROWS_WITH(Instances(ImageSize{1, 1}, b, longs({1, 2, 3}), Tensor(), Tensor::zeros({3})),
                    Contains("ignore flags must be bool [3]"));
}

TEST_CASE("ImageList pads to the batch maximum rounded up to the divisibility", "[structures]") {
  const Tensor a = ramp(3, 5, 7), b = ramp(3, 33, 10);
  const ImageList l = ImageList::from_images({a, b}, 32, -2.0);
  CHECK(l.tensor().shape() == Shape{2, 3, 64, 32});
  CHECK(l.size() == 2);
  CHECK(l.image_sizes() == std::vector<ImageSize>{{5, 7}, {33, 10}});
  CHECK(l.padded_size() == ImageSize{64, 32});
  // Every value: the image in the top-left corner, the pad value elsewhere.
  const std::vector<float> v = l.tensor().to_vector<float>();
  int64_t bad = 0;
  for (int64_t i = 0; i < 2; ++i) {
    const Tensor src = i == 0 ? a : b;
    const std::vector<float> s = src.to_vector<float>();
    const int64_t h = src.size(1), w = src.size(2);
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t y = 0; y < 64; ++y)
        for (int64_t x = 0; x < 32; ++x) {
          const float got = v[size_t(((i * 3 + c) * 64 + y) * 32 + x)];
          const float want = (y < h && x < w) ? s[size_t((c * h + y) * w + x)] : -2.0f;
          bad += got != want;
        }
  }
  CHECK(bad == 0);
  expect_equal(l.image(1), b.to_vector<double>());
  CHECK(l.image(0).shape() == Shape{3, 5, 7});

  // Exact multiples stay; divisibility 0 or 1 pads only to the maximum.
  CHECK(ImageList::from_images({ramp(3, 64, 32)}, 32).tensor().shape() == Shape{1, 3, 64, 32});
  CHECK(ImageList::from_images({a, b}, 0).tensor().shape() == Shape{2, 3, 33, 10});
  CHECK(ImageList::from_images({a, b}, 1).tensor().shape() == Shape{2, 3, 33, 10});
  // The spec's example: 1067 x 800 pads to 1088 x 800.
  CHECK(ImageList::from_images({Tensor::zeros({3, 800, 1067})}, 32).padded_size() == ImageSize{800, 1088});
}

TEST_CASE("ImageList rejects bad inputs", "[structures]") {
  CHECK_THROWS_WITH(ImageList::from_images({}), Contains("no images"));
  CHECK_THROWS_WITH(ImageList::from_images({ramp(3, 2, 2), ramp(1, 2, 2)}), Contains("image 1"));
  CHECK_THROWS_WITH(ImageList::from_images({Tensor::zeros({2, 2})}), Contains("[C, H, W]"));
  CHECK_THROWS_WITH(ImageList::from_images({ramp(3, 2, 2)}, -1), Contains("size_divisibility"));
  CHECK_THROWS_WITH(ImageList(Tensor::zeros({1, 3, 4, 4}), {{5, 4}}), Contains("does not fit"));
  CHECK_THROWS_WITH(ImageList(Tensor::zeros({2, 3, 4, 4}), {{4, 4}}), Contains("1 image sizes for a batch of 2"));
}
