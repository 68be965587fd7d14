// Test helper: a small shapes dataset on disk (COCO files, 64 x 64 images) read back through the
// real loader's dataset class; removed when the object goes.
#pragma once
#include <filesystem>
#include <memory>
#include <string>

#include "common/files.h"
#include "drcnn/data/coco.h"
#include "drcnn/data/shapes.h"

namespace drcnn::test {

struct ShapesSet {
  std::filesystem::path root;
  data::CocoFile file;
  std::unique_ptr<data::CocoDataset> dataset;
  /// `train_images` 64 x 64 training images (1-3 objects, seed 3) in fresh_dir(prefix, name + "_data").
  ShapesSet(const std::string& prefix, const std::string& name, int64_t train_images = 6)
      : root(fresh_dir(prefix, name + "_data")) {
    data::ShapesOptions o;
    o.width = o.height = 64;
    o.train_images = train_images;
    o.val_images = 1;
    o.max_objects = 3;
    o.seed = 3;
    o.threads = 1;
    data::generate_shapes_dataset(o, root);
    file = data::load_coco(root / "annotations" / "instances_train.json");
    data::CocoDatasetOptions co;
    co.image_root = root / "train";
    co.min_size = 0;
    dataset = std::make_unique<data::CocoDataset>(file, co);
  }
  ~ShapesSet() { std::filesystem::remove_all(root); }
};

}  // namespace drcnn::test
