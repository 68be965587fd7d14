// Drawing: box outlines (edges coloured, interior and outside untouched, clipping), text pixels
// inside the text area, labelled detections, class colours, bad input.
#include <catch2/catch.hpp>

#include <array>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "drcnn/core/error.h"
#include "drcnn/data/draw.h"

using drcnn::data::Color;
using drcnn::data::Image;
using Catch::Matchers::Contains;

namespace {

Image filled(int w, int h, Color c) {
  Image im(w, h);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      im.pixel(y, x)[0] = c.r;
      im.pixel(y, x)[1] = c.g;
      im.pixel(y, x)[2] = c.b;
    }
  return im;
}

bool is(const Image& im, int y, int x, Color c) {
  const uint8_t* p = im.pixel(y, x);
  return p[0] == c.r && p[1] == c.g && p[2] == c.b;
}

// Expected outline membership from the definition, written independently: the box covers
// columns floor(x1)..ceil(x2)-1 and rows floor(y1)..ceil(y2)-1; a pixel is on the outline if it
// is in the box and within `t` of one of its sides.
bool on_outline(int x, int y, std::array<float, 4> b, int t) {
  const int c0 = int(std::floor(b[0])), c1 = int(std::ceil(b[2])) - 1;
  const int r0 = int(std::floor(b[1])), r1 = int(std::ceil(b[3])) - 1;
  if (x < c0 || x > c1 || y < r0 || y > r1) return false;
  return x - c0 < t || c1 - x < t || y - r0 < t || r1 - y < t;
}

const Color kBg{10, 20, 30};
const Color kRed{250, 0, 0};

}  // namespace

TEST_CASE("draw_box colours exactly the outline pixels, inward, for thickness 1 to 3", "[datasets][draw]") {
  for (int t = 1; t <= 3; ++t) {
    for (const std::array<float, 4>& box :
         {std::array<float, 4>{10, 8, 30, 20}, std::array<float, 4>{10.5f, 8.2f, 29.5f, 19.9f},
          std::array<float, 4>{3, 3, 5, 4}}) {
      INFO("t " << t << " box " << box[0] << " " << box[1] << " " << box[2] << " " << box[3]);
      Image im = filled(40, 30, kBg);
      drcnn::data::draw_box(im, box, kRed, t);
      int mismatches = 0, drawn = 0;
      for (int y = 0; y < 30; ++y)
        for (int x = 0; x < 40; ++x) {
          const bool expect = on_outline(x, y, box, t);
          drawn += expect;
          if (is(im, y, x, expect ? kRed : kBg) == false) ++mismatches;
        }
      CHECK(drawn > 0);
      CHECK(mismatches == 0);
    }
  }
  // Box (10, 8, 30, 20) thickness 2: corners and edges coloured, interior untouched.
  Image im = filled(40, 30, kBg);
  drcnn::data::draw_box(im, {10, 8, 30, 20}, kRed, 2);
  CHECK(is(im, 8, 10, kRed));
  CHECK(is(im, 19, 29, kRed));
  CHECK(is(im, 9, 20, kRed));
  CHECK(is(im, 10, 20, kBg));   // third row: interior
  CHECK(is(im, 14, 12, kBg));
  CHECK(is(im, 20, 20, kBg));   // row 20 is outside (y2 = 20 covers rows up to 19)
  CHECK(is(im, 14, 30, kBg));
}

TEST_CASE("draw_box clips boxes partly or wholly outside the image", "[datasets][draw]") {
  const std::vector<std::array<float, 4>> boxes = {
      {-10, -5, 15, 12}, {30, 20, 100, 100}, {-50, 10, 100, 12}, {-20, -20, -5, -5},
      {100, 100, 200, 200}, {-1e9f, -1e9f, 1e9f, 1e9f}};
  for (const auto& box : boxes) {
    Image im = filled(40, 30, kBg);
    drcnn::data::draw_box(im, box, kRed, 3);
    REQUIRE(im.pixels.size() == 40u * 30u * 3u);
    int mismatches = 0;
    for (int y = 0; y < 30; ++y)
      for (int x = 0; x < 40; ++x)
        if (!is(im, y, x, on_outline(x, y, box, 3) ? kRed : kBg)) ++mismatches;
    CHECK(mismatches == 0);
  }
  // The visible right and bottom edges of (-10, -5, 15, 12) are drawn; the left/top are not.
  Image im = filled(40, 30, kBg);
  drcnn::data::draw_box(im, {-10, -5, 15, 12}, kRed, 1);
  CHECK(is(im, 0, 14, kRed));
  CHECK(is(im, 11, 0, kRed));
  CHECK(is(im, 0, 0, kBg));
  CHECK(is(im, 5, 5, kBg));
}

TEST_CASE("draw_text writes pixels only inside its text area, and scales", "[datasets][draw]") {
  const std::string text = "Cat 0.97";
  for (int scale = 1; scale <= 3; ++scale) {
    INFO("scale " << scale);
    const int w = drcnn::data::text_width(text, scale), h = drcnn::data::text_height(scale);
    CHECK(w >= 8 * 4 * scale);  // at least ~4 font units per character
    CHECK(h >= 7 * scale);
    CHECK(h <= 12 * scale);
    Image im = filled(80, 40, kBg);
    drcnn::data::draw_text(im, 5, 6, text, Color{255, 255, 255}, scale);
    int inside = 0, outside = 0;
    for (int y = 0; y < 40; ++y)
      for (int x = 0; x < 80; ++x) {
        if (is(im, y, x, kBg)) continue;
        const bool in = x >= 5 && x < 5 + w && y >= 6 && y < 6 + h;
        (in ? inside : outside) += 1;
      }
    CHECK(outside == 0);
    CHECK(inside >= 20 * scale * scale);  // eight glyphs of several segments each
    CHECK(inside < w * h);                // not a filled block
  }
  // Different strings give different pixels; non-printable bytes do not crash (drawn as '?').
  Image a = filled(60, 20, kBg), b = filled(60, 20, kBg), c = filled(60, 20, kBg);
  drcnn::data::draw_text(a, 1, 1, "circle", kRed);
  drcnn::data::draw_text(b, 1, 1, "square", kRed);
  drcnn::data::draw_text(c, 1, 1, std::string("\x01\n\xff\x7f", 4), kRed);
  CHECK(a.pixels != b.pixels);
  // Text clipped at every border.
  for (const auto& [x, y] : {std::pair{-7, 3}, std::pair{50, 3}, std::pair{3, -4}, std::pair{3, 15},
                             std::pair{-100000, -100000}, std::pair{2000000000, 2000000000}}) {
    Image im = filled(60, 20, kBg);
    drcnn::data::draw_text(im, x, y, "Wide text WWW", kRed, 2);
    CHECK(im.pixels.size() == 60u * 20u * 3u);
  }
}

TEST_CASE("draw_detections draws box, label background and text in the label area", "[datasets][draw]") {
  const std::vector<std::string> names = {"circle", "square", "triangle"};
  const std::vector<std::array<float, 4>> boxes = {{20, 30, 60, 70}, {90, 2, 125, 25}};
  const std::vector<int64_t> labels = {1, 2};
  const std::vector<float> scores = {0.87f, 0.5f};
  Image im = filled(130, 90, kBg);
  drcnn::data::draw_detections(im, boxes, labels, scores, names);
  const Color c1 = drcnn::data::class_color(1);
  CHECK(drcnn::data::detection_label(1, 0.87f, true, names) == "square 0.87");
  CHECK(drcnn::data::detection_label(7, 0.f, false, names) == "class 7");

  // Box 0: outline in class 1's colour below the label.
  CHECK(is(im, 69, 40, c1));
  CHECK(is(im, 50, 20, c1));
  CHECK(is(im, 50, 40, kBg));  // interior untouched
  // Label above box 0 (room: y0 = 30): background of class colour plus text pixels of the ink.
  const int w = drcnn::data::text_width("square 0.87") + 2, h = drcnn::data::text_height() + 2;
  int background = 0, ink = 0, other = 0;
  for (int y = 30 - h; y < 30; ++y)
    for (int x = 20; x < 20 + w; ++x) {
      if (is(im, y, x, c1)) ++background;
      else if (is(im, y, x, Color{0, 0, 0}) || is(im, y, x, Color{255, 255, 255})) ++ink;
      else ++other;
    }
  CHECK(other == 0);
  CHECK(ink >= 30);
  CHECK(background > ink);
  // Box 1 (y0 = 2): no room above, the label goes inside the box's top edge.
  const Color c2 = drcnn::data::class_color(2);
  CHECK(is(im, 3, 91, c2));
  CHECK(is(im, 2 + drcnn::data::text_height() + 1, 91, c2));  // last label row
  // Score threshold skips a detection.
  Image skipped = filled(130, 90, kBg);
  drcnn::data::DrawOptions opt;
  opt.score_threshold = 0.9f;
  drcnn::data::draw_detections(skipped, boxes, labels, scores, names, opt);
  CHECK(skipped.pixels == filled(130, 90, kBg).pixels);
}

TEST_CASE("class colours differ, draw functions reject malformed input", "[datasets][draw]") {
  std::set<std::tuple<int, int, int>> seen;
  for (int64_t l = 0; l < 20; ++l) {
    const Color c = drcnn::data::class_color(l);
    seen.insert({c.r, c.g, c.b});
    CHECK(c == drcnn::data::class_color(l));
  }
  CHECK(seen.size() == 20);
  // Consecutive labels are far apart (L1 distance in RGB).
  for (int64_t l = 0; l < 19; ++l) {
    const Color a = drcnn::data::class_color(l), b = drcnn::data::class_color(l + 1);
    CHECK(std::abs(a.r - b.r) + std::abs(a.g - b.g) + std::abs(a.b - b.b) > 120);
  }
  Image im(10, 10);
  const std::vector<std::array<float, 4>> boxes = {{1, 1, 5, 5}};
  const std::vector<int64_t> two = {0, 1};
  REQUIRE_THROWS_WITH(drcnn::data::draw_detections(im, boxes, two, {}, {}), Contains("1 boxes but 2 labels"));
  const std::vector<int64_t> one = {0};
  const std::vector<float> scores2 = {0.5f, 0.4f};
  REQUIRE_THROWS_WITH(drcnn::data::draw_detections(im, boxes, one, scores2, {}), Contains("2 scores"));
  REQUIRE_THROWS_WITH(drcnn::data::draw_box(im, {0, 0, 1, 1}, kRed, 0), Contains("thickness"));
  REQUIRE_THROWS_WITH(drcnn::data::draw_box(im, {0, 0, NAN, 1}, kRed, 1), Contains("finite"));
  Image bad(4, 4);
  bad.pixels.resize(5);
  REQUIRE_THROWS_WITH(drcnn::data::draw_box(bad, {0, 0, 1, 1}, kRed, 1), Contains("malformed image"));
}
