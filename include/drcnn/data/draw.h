// Drawing on an Image for visualisation: box outlines, filled rectangles, text (stb_easy_font's
// segment font, rasterised here) and detections with class names and scores. Every write is
// clipped to the image, so boxes partly or wholly outside it are fine. docs/data-images.md.
#pragma once
#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "drcnn/data/image.h"

namespace drcnn::data {

struct Color {
  uint8_t r = 0, g = 0, b = 0;
  friend bool operator==(const Color&, const Color&) = default;
};

/// A fixed, well-separated colour per class label (>= 0): hues stepped by the golden ratio,
/// high saturation and value, so neighbouring labels differ strongly. Deterministic.
Color class_color(int64_t label);

/// The pixels a continuous box (x1, y1, x2, y2) (absolute, no "+1") covers: columns
/// floor(x1) .. ceil(x2) - 1 and rows floor(y1) .. ceil(y2) - 1, not clipped. A box thinner than
/// one pixel still covers one column/row.
struct PixelRect {
  int32_t x0, y0, x1, y1;  ///< inclusive
};
PixelRect box_pixels(float x1, float y1, float x2, float y2);

/// Fills the inclusive pixel rectangle [x0, x1] x [y0, y1], clipped to the image.
void fill_rect(Image& image, PixelRect rect, Color color);
/// Draws the outline of a box: the `thickness` outermost rows/columns of box_pixels(box),
/// drawn inward (pixels outside the box are never touched), clipped to the image.
void draw_box(Image& image, const std::array<float, 4>& box, Color color, int thickness = 2);

/// Text metrics in pixels for draw_text at `scale` (one line; characters outside printable
/// ASCII are drawn as '?').
int32_t text_width(std::string_view text, int scale = 1);
int32_t text_height(int scale = 1);
/// Draws one line of text with its top-left corner at (x, y), each font unit a scale x scale
/// block, clipped to the image. Pixels inside [x, x + text_width) x [y, y + text_height) only.
void draw_text(Image& image, int32_t x, int32_t y, std::string_view text, Color color,
               int scale = 1);

struct DrawOptions {
  int thickness = 2;         ///< box outline width in pixels
  int text_scale = 1;        ///< font scale (1: about 7 px cap height)
  int padding = 1;           ///< pixels between the label's text and its background edge
  float score_threshold = 0;  ///< detections with a score below it are skipped
};

/// Draws detections: per box an outline in class_color(label) and a label "<name> <score>"
/// (score with two decimals; no score if `scores` is empty) on a filled background of the same
/// colour, above the box's top-left corner, or just inside the box where there is no room above.
/// Text is black or white, whichever contrasts more with the background. `labels` index
/// `class_names`; a label outside it is written as "class <label>". Throws drcnn::Error when the
/// array sizes disagree.
void draw_detections(Image& image, std::span<const std::array<float, 4>> boxes,
                     std::span<const int64_t> labels, std::span<const float> scores,
                     const std::vector<std::string>& class_names, const DrawOptions& options = {});

/// The label draw_detections writes for one detection ("<name> <score>" or "<name>").
std::string detection_label(int64_t label, float score, bool with_score,
                            const std::vector<std::string>& class_names);

}  // namespace drcnn::data
