// drcnn_make_shapes: writes the synthetic shapes dataset in COCO format (docs/data-images.md).
//   drcnn_make_shapes --out DIR [--train N] [--val M] [--size 256] [--seed S] ...
// Layout: DIR/train/NNNNNN.png, DIR/val/NNNNNN.png, DIR/annotations/instances_{train,val}.json.
// With --preview FILE it also writes FILE (PNG): val image 0 with its boxes and class names.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <exception>

#include "drcnn/core/error.h"
#include "drcnn/data/draw.h"
#include "drcnn/data/shapes.h"

int main(int argc, char** argv) {
  drcnn::data::ShapesOptions o;
  std::string out;
  std::string preview;
  int32_t size = 256;
  double max_aspect = 2.5, min_visible = 0.6, overlap = 0.4;
  CLI::App app{"Writes the synthetic shapes detection dataset (COCO format)", "drcnn_make_shapes"};
  app.add_option("--out", out, "output directory")->required();
  app.add_option("--train", o.train_images, "number of training images")->capture_default_str();
  app.add_option("--val", o.val_images, "number of validation images")->capture_default_str();
  app.add_option("--size", size, "image width and height in pixels")->capture_default_str();
  app.add_option("--width", o.width, "image width (overrides --size)");
  app.add_option("--height", o.height, "image height (overrides --size)");
  app.add_option("--seed", o.seed, "random seed")->capture_default_str();
  app.add_option("--min-objects", o.min_objects, "fewest objects per image")->capture_default_str();
  app.add_option("--max-objects", o.max_objects, "most objects per image")->capture_default_str();
  app.add_option("--min-size", o.min_size, "smallest shape (longest frame side, px)")->capture_default_str();
  app.add_option("--max-size", o.max_size, "largest shape (0: half the image)")->capture_default_str();
  app.add_option("--max-aspect", max_aspect, "largest stretch (long / short side)")->capture_default_str();
  app.add_option("--min-visible", min_visible, "fraction of an occluded shape that stays visible")
      ->capture_default_str();
  app.add_option("--overlap", overlap, "chance that a shape is placed at another's box")
      ->capture_default_str();
  app.add_option("--max-noise", o.max_noise, "per-pixel noise amplitude")->capture_default_str();
  app.add_option("--threads", o.threads, "worker threads (0: all cores)")->capture_default_str();
  app.add_option("--preview", preview, "also write val image 0 with its boxes drawn to this PNG");
  CLI11_PARSE(app, argc, argv);
  if (app.count("--width") == 0) o.width = size;
  if (app.count("--height") == 0) o.height = size;
  // The library takes fixed-point ratios so that generation is integer-only.
  o.max_aspect_q10 = int32_t(max_aspect * 1024 + 0.5);
  o.min_visible_q10 = int32_t(min_visible * 1024 + 0.5);
  o.overlap_q10 = int32_t(overlap * 1024 + 0.5);
  try {
    const auto start = std::chrono::steady_clock::now();
    drcnn::data::generate_shapes_dataset(o, out);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    fmt::print("wrote {} train + {} val images ({} x {}) to {} in {:.1f} s\n", o.train_images,
               o.val_images, o.width, o.height, out, seconds);
    if (!preview.empty()) {
      drcnn::data::ShapesImage im =
          drcnn::data::generate_shapes_image(o, drcnn::data::ShapesSplit::val, 0);
      std::vector<std::array<float, 4>> boxes;
      std::vector<int64_t> labels;
      for (const auto& obj : im.objects) {
        boxes.push_back({float(obj.box[0]), float(obj.box[1]), float(obj.box[2]), float(obj.box[3])});
        labels.push_back(obj.label);
      }
      drcnn::data::DrawOptions draw;
      draw.thickness = 1;
      drcnn::data::draw_detections(im.image, boxes, labels, {}, drcnn::data::shape_class_names(), draw);
      drcnn::data::write_png(preview, im.image);
      fmt::print("preview: {}\n", preview);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "drcnn_make_shapes: %s\n", e.what());
    return 1;
  }
  return 0;
}
