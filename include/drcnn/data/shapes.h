// The synthetic shapes dataset: images of circles, squares, triangles, crosses, rings and stars
// (stretched, rotated, 8 px to half the image, partly overlapping) on textured noisy
// backgrounds, with exact tight boxes, written in COCO format. Deterministic by seed: every
// random draw and every rasterisation step is integer arithmetic, so the same options give the
// same bytes on every platform and standard library. docs/data-images.md describes the design.
//
// Box definition: each shape is rasterised with 4 x 4 samples per pixel; a pixel belongs to the
// shape if more than half of its 16 samples are inside (coverage > 0.5). An object's visible
// pixels are its pixels not belonging to any shape drawn after it. The box is the tight box of
// the visible pixels (x0, y0, x1, y1 with exclusive x1, y1: COCO bbox = [x0, y0, x1 - x0,
// y1 - y0]). Placement only accepts an overlap that hides at most 1 - min_visible of an earlier
// object's pixels AND leaves its tight box unchanged, so every box is also the tight box of the
// whole shape: the box of an occluded object is never ambiguous.
#pragma once
#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "drcnn/data/image.h"

namespace drcnn::data {

enum class ShapeClass : int32_t { circle = 0, square, triangle, cross, ring, star };
inline constexpr int32_t kNumShapeClasses = 6;

/// Class names in label order: circle, square, triangle, cross, ring, star (COCO category id =
/// label + 1).
const std::vector<std::string>& shape_class_names();

struct ShapesOptions {
  int32_t width = 256;
  int32_t height = 256;
  int32_t train_images = 1000;
  int32_t val_images = 200;
  int32_t min_objects = 1;       ///< objects per image, uniform in [min_objects, max_objects]
  int32_t max_objects = 6;       ///< (fewer when placement fails repeatedly: rare)
  int32_t min_size = 8;          ///< longest side of a shape's frame in px (log-uniform)
  int32_t max_size = 0;          ///< 0: half of min(width, height)
  int32_t max_aspect_q10 = 2560; ///< largest long/short side ratio of the frame, x1024 (2.5)
  int32_t min_visible_q10 = 614; ///< an occluded object keeps >= this fraction of pixels, x1024 (0.6)
  int32_t overlap_q10 = 410;     ///< chance (x1024, 0.4) that a shape is placed at another's box
  int32_t max_noise = 16;        ///< per-pixel noise amplitude (uniform +-a, a drawn per image)
  int32_t background_amplitude = 40;  ///< texture contrast of the background
  int32_t min_contrast = 150;    ///< L1 RGB distance between an object's colour and the background's
  uint64_t seed = 0;
  int32_t threads = 0;           ///< generate_shapes_dataset: worker threads (0: hardware)
};

/// The geometry of one shape in fixed point, enough to re-render it (tests do, independently).
/// Positions and radii are in 1/1024 px; the sample at pixel (x, y), sub-sample (i, j) (0..3)
/// is at (1024 x + 256 i + 128, 1024 y + 256 j + 128). Local coordinates are
///   lx = (cos_q30 * dx + sin_q30 * dy) >> 30,  ly = (-sin_q30 * dx + cos_q30 * dy) >> 30
/// with (dx, dy) = sample - centre, and the unit shape is tested at (u, v) = (lx / rx, ly / ry),
/// v pointing down (see shapes.cpp for each class's unit shape).
struct ShapeGeometry {
  ShapeClass cls = ShapeClass::circle;
  int64_t cx = 0, cy = 0;         ///< centre
  int64_t rx = 0, ry = 0;         ///< half extents of the frame (the unit square maps to it)
  int64_t cos_q30 = int64_t(1) << 30, sin_q30 = 0;  ///< rotation (exactly unit length up to rounding)
  int32_t param_q10 = 0;          ///< triangle: apex offset in [-512, 512]; cross: arm half
                                  ///< width; ring: inner radius; star: inner radius (all /1024)
  int32_t points = 0;             ///< star: 5 or 6; triangle: 1 if flipped vertically
};

struct ShapeObject {
  ShapeGeometry geometry;
  int32_t label = 0;              ///< 0..5 (category id = label + 1)
  std::array<int32_t, 4> box{};   ///< tight box of the visible pixels: x0, y0, x1, y1 (exclusive)
  int64_t area = 0;               ///< number of visible pixels (COCO's "area": mask area)
  int64_t full_area = 0;          ///< pixels of the whole shape (before occlusion)
  std::array<uint8_t, 3> color{};
  /// With keep_masks: the 4x4 sample count (0..16) of the whole shape per pixel, width * height.
  std::vector<uint8_t> coverage;
};

struct ShapesImage {
  Image image;
  std::vector<ShapeObject> objects;  ///< in drawing order (later ones on top)
};

enum class ShapesSplit : int32_t { train = 0, val = 1 };

/// Image `index` of a split, generated on its own (its random stream depends only on the seed,
/// the split and the index, so images can be generated in any order or in parallel).
ShapesImage generate_shapes_image(const ShapesOptions& options, ShapesSplit split, int64_t index,
                                  bool keep_masks = false);

/// The 4x4 sample counts of one shape over a width x height image (the generator's rasteriser).
std::vector<uint8_t> rasterize_shape(const ShapeGeometry& geometry, int32_t width, int32_t height);

/// Writes out_dir/{train,val}/NNNNNN.png and out_dir/annotations/instances_{train,val}.json
/// (COCO: images with ids from 1 and file names relative to the split folder, categories 1..6,
/// annotations with ids from 1, bbox = [x0, y0, w, h] of the tight box, area = visible pixel
/// count, iscrowd 0). Every file is written atomically. Throws drcnn::Error naming the path on
/// failure and on invalid options.
void generate_shapes_dataset(const ShapesOptions& options, const std::filesystem::path& out_dir);

}  // namespace drcnn::data
