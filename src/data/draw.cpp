// Drawing on images: box outlines, filled rectangles, text from stb_easy_font (Debian's
// libstb-dev; its glyphs are axis-aligned quads, which we rasterise), labelled detections.
#include "drcnn/data/draw.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "drcnn/core/error.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wcast-qual"
#pragma GCC diagnostic ignored "-Wold-style-cast"
#pragma GCC diagnostic ignored "-Wcast-align"
#include <stb_easy_font.h>
#pragma GCC diagnostic pop

namespace drcnn::data {

namespace {

void check_image(const Image& image, const char* op) {
  DRCNN_CHECK(image.width >= 0 && image.height >= 0 &&
                  image.pixels.size() == std::size_t(image.width) * std::size_t(image.height) * 3,
              op, ": malformed image: ", image.width, " x ", image.height, " with ",
              image.pixels.size(), " bytes (expected width * height * 3)");
}

// Printable ASCII only: stb_easy_font indexes its glyph table with (c - 32) unchecked.
std::string printable(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c < 32 || c > 126) c = '?';
  }
  return out;
}

// One glyph quad in font units: [x0, x1) x [y0, y1).
struct Quad {
  int32_t x0, y0, x1, y1;
};

std::vector<Quad> text_quads(std::string_view text) {
  std::string s = printable(text);
  // Each quad is 4 vertices of 16 bytes; stb needs about 270 bytes per character (its docs),
  // a segment font has at most ~12 segments per glyph: 64 * 16 bytes per character is ample.
  std::vector<char> buffer((s.size() + 1) * 64 * 16);
  const int n = stb_easy_font_print(0.f, 0.f, s.data(), nullptr, buffer.data(), int(buffer.size()));
  std::vector<Quad> quads;
  quads.reserve(std::size_t(n));
  for (int q = 0; q < n; ++q) {
    float v0[2], v2[2];
    std::memcpy(v0, buffer.data() + q * 64, sizeof v0);          // vertex 0: (x, y)
    std::memcpy(v2, buffer.data() + q * 64 + 2 * 16, sizeof v2);  // vertex 2: (x + w, y + h)
    quads.push_back({int32_t(std::lround(v0[0])), int32_t(std::lround(v0[1])),
                     int32_t(std::lround(v2[0])), int32_t(std::lround(v2[1]))});
  }
  return quads;
}

// Font height in font units: the lowest quad edge over every printable character.
int32_t font_height() {
  static const int32_t height = [] {
    std::string all;
    for (char c = 33; c < 127; ++c) all += c;
    int32_t h = 0;
    for (const Quad& q : text_quads(all)) h = std::max(h, q.y1);
    return h;
  }();
  return height;
}

}  // namespace

Color class_color(int64_t label) {
  DRCNN_CHECK(label >= 0, "class_color: label must be >= 0, got ", label);
  // Hue stepped by the golden ratio conjugate; HSV with s = 0.85, v = 0.95 to RGB.
  const double h = std::fmod(0.12 + double(label) * 0.6180339887498949, 1.0) * 6.0;
  const double v = 0.95, s = 0.85;
  const int sector = int(h);
  const double f = h - sector;
  const double p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
  double r = 0, g = 0, b = 0;
  switch (sector % 6) {
    case 0: r = v; g = t; b = p; break;
    case 1: r = q; g = v; b = p; break;
    case 2: r = p; g = v; b = t; break;
    case 3: r = p; g = q; b = v; break;
    case 4: r = t; g = p; b = v; break;
    default: r = v; g = p; b = q; break;
  }
  return {uint8_t(std::lround(r * 255)), uint8_t(std::lround(g * 255)), uint8_t(std::lround(b * 255))};
}

PixelRect box_pixels(float x1, float y1, float x2, float y2) {
  // Clamp to a range where int32 arithmetic below cannot overflow (far outside any image).
  const auto clampf = [](float v) { return std::clamp(v, -1.0e8f, 1.0e8f); };
  PixelRect r;
  r.x0 = int32_t(std::floor(clampf(x1)));
  r.y0 = int32_t(std::floor(clampf(y1)));
  r.x1 = std::max(r.x0, int32_t(std::ceil(clampf(x2))) - 1);
  r.y1 = std::max(r.y0, int32_t(std::ceil(clampf(y2))) - 1);
  return r;
}

void fill_rect(Image& image, PixelRect rect, Color color) {
  check_image(image, "fill_rect");
  const int32_t x0 = std::max(rect.x0, 0), x1 = std::min(rect.x1, image.width - 1);
  const int32_t y0 = std::max(rect.y0, 0), y1 = std::min(rect.y1, image.height - 1);
  for (int32_t y = y0; y <= y1; ++y) {
    for (int32_t x = x0; x <= x1; ++x) {
      uint8_t* p = image.pixel(y, x);
      p[0] = color.r;
      p[1] = color.g;
      p[2] = color.b;
    }
  }
}

void draw_box(Image& image, const std::array<float, 4>& box, Color color, int thickness) {
  check_image(image, "draw_box");
  DRCNN_CHECK(thickness >= 1, "draw_box: thickness must be >= 1, got ", thickness);
  DRCNN_CHECK(std::isfinite(box[0]) && std::isfinite(box[1]) && std::isfinite(box[2]) &&
                  std::isfinite(box[3]),
              "draw_box: box coordinates must be finite, got (", box[0], ", ", box[1], ", ",
              box[2], ", ", box[3], ")");
  const PixelRect r = box_pixels(box[0], box[1], box[2], box[3]);
  const int32_t t = thickness - 1;
  fill_rect(image, {r.x0, r.y0, r.x1, std::min(r.y0 + t, r.y1)}, color);  // top
  fill_rect(image, {r.x0, std::max(r.y1 - t, r.y0), r.x1, r.y1}, color);  // bottom
  fill_rect(image, {r.x0, r.y0, std::min(r.x0 + t, r.x1), r.y1}, color);  // left
  fill_rect(image, {std::max(r.x1 - t, r.x0), r.y0, r.x1, r.y1}, color);  // right
}

int32_t text_width(std::string_view text, int scale) {
  DRCNN_CHECK(scale >= 1, "text_width: scale must be >= 1, got ", scale);
  int32_t w = 0;
  for (const Quad& q : text_quads(text)) w = std::max(w, q.x1);
  return w * scale;
}

int32_t text_height(int scale) {
  DRCNN_CHECK(scale >= 1, "text_height: scale must be >= 1, got ", scale);
  return font_height() * scale;
}

void draw_text(Image& image, int32_t x, int32_t y, std::string_view text, Color color,
               int scale) {
  check_image(image, "draw_text");
  DRCNN_CHECK(scale >= 1 && scale <= 64, "draw_text: scale must be in 1..64, got ", scale);
  for (const Quad& q : text_quads(text)) {
    // int64 so that a far-away origin cannot overflow; fill_rect clips.
    const auto at = [](int64_t v) { return int32_t(std::clamp<int64_t>(v, -(1 << 30), 1 << 30)); };
    fill_rect(image,
              {at(int64_t(x) + q.x0 * scale), at(int64_t(y) + q.y0 * scale),
               at(int64_t(x) + q.x1 * scale - 1), at(int64_t(y) + q.y1 * scale - 1)},
              color);
  }
}

std::string detection_label(int64_t label, float score, bool with_score,
                            const std::vector<std::string>& class_names) {
  std::string name = label >= 0 && std::size_t(label) < class_names.size()
                         ? class_names[std::size_t(label)]
                         : fmt::format("class {}", label);
  if (with_score) name += fmt::format(" {:.2f}", score);
  return name;
}

void draw_detections(Image& image, std::span<const std::array<float, 4>> boxes,
                     std::span<const int64_t> labels, std::span<const float> scores,
                     const std::vector<std::string>& class_names, const DrawOptions& options) {
  check_image(image, "draw_detections");
  DRCNN_CHECK(labels.size() == boxes.size(), "draw_detections: ", boxes.size(), " boxes but ",
              labels.size(), " labels");
  DRCNN_CHECK(scores.empty() || scores.size() == boxes.size(), "draw_detections: ",
              boxes.size(), " boxes but ", scores.size(), " scores (pass none or one per box)");
  DRCNN_CHECK(options.padding >= 0, "draw_detections: padding must be >= 0, got ", options.padding);
  const int32_t th = text_height(options.text_scale);
  for (std::size_t i = 0; i < boxes.size(); ++i) {
    if (!scores.empty() && !(scores[i] >= options.score_threshold)) continue;
    const Color color = class_color(std::max<int64_t>(labels[i], 0));
    draw_box(image, boxes[i], color, options.thickness);
    const std::string text = detection_label(labels[i], scores.empty() ? 0.f : scores[i],
                                             !scores.empty(), class_names);
    const PixelRect r = box_pixels(boxes[i][0], boxes[i][1], boxes[i][2], boxes[i][3]);
    const int32_t w = text_width(text, options.text_scale) + 2 * options.padding;
    const int32_t h = th + 2 * options.padding;
    // Above the box if it fits in the image, otherwise inside the box's top edge.
    const int32_t top = r.y0 - h >= 0 ? r.y0 - h : std::max(r.y0, 0);
    const int32_t left = std::max(r.x0, 0);
    fill_rect(image, {left, top, left + w - 1, top + h - 1}, color);
    const bool light = 299 * color.r + 587 * color.g + 114 * color.b >= 128 * 1000;
    const Color ink = light ? Color{0, 0, 0} : Color{255, 255, 255};
    draw_text(image, left + options.padding, top + options.padding, text, ink, options.text_scale);
  }
}

}  // namespace drcnn::data
