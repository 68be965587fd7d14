// Training and test transforms (MMDetection v2's Resize, RandomFlip, Normalize; the batch
// padding is ImageList::from_images). A Sample carries one image and its annotations through a
// Pipeline; boxes move with the image and boxes without area are dropped after every step.
// docs/data-loading.md gives the rounding rules and where we differ from MMDetection / cv2.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "drcnn/core/tensor.h"
#include "drcnn/data/dataset.h"
#include "drcnn/data/image.h"
#include "drcnn/data/sampler.h"  // RandomStream
#include "drcnn/structures/instances.h"

namespace drcnn::data {

/// What the model needs to map its outputs back to the original image.
struct ImageMeta {
  int64_t image_id = 0;
  std::string image_path;
  int32_t original_height = 0;  ///< decoded image size
  int32_t original_width = 0;
  int32_t height = 0;           ///< size after resize (MMDetection's img_shape), before padding
  int32_t width = 0;
  float scale_w = 1.0f;         ///< width / original_width in float32 (mmdet's scale_factor[0])
  float scale_h = 1.0f;         ///< height / original_height (scale_factor[1])
  bool flipped = false;         ///< horizontally flipped
  int32_t scale_index = -1;     ///< which Resize scale was drawn (-1: no Resize ran)
  int32_t dropped_boxes = 0;    ///< boxes dropped by the transforms (no area left)
};

/// One image on its way through the pipeline. Exactly one of `image` (8-bit RGB, until
/// Normalize or a float Resize) and `tensor` (float32 [3, H, W]) holds the pixels.
/// boxes are absolute (x1, y1, x2, y2) in the current image; labels/ignore run parallel to them.
struct Sample {
  Image image;
  Tensor tensor;
  std::vector<std::array<float, 4>> boxes;
  std::vector<int64_t> labels;
  std::vector<uint8_t> ignore;
  ImageMeta meta;

  /// Current (height, width) of the pixels.
  int32_t height() const;
  int32_t width() const;
  bool is_tensor() const { return tensor.defined(); }
};

/// A Sample from a record and its decoded image. Checks that the decoded size equals the
/// size in the annotation file (error naming the path otherwise) and that boxes, labels and
/// ignore have one entry per object. Drops boxes without area (counted in meta.dropped_boxes).
Sample make_sample(const DetectionRecord& record, Image image);

/// The boxes, labels and ignore flags of a finished sample as Instances (boxes float32
/// [N, 4], labels int64 [N], ignore bool [N]) of size (meta.height, meta.width).
Instances to_instances(const Sample& sample);

// ------------------------------------------------------------------ size rules (mmcv)

/// mmcv.rescale_size with a (long, short) scale: s = min(long / max(h, w), short / min(h, w)),
/// new size (int(w * s + 0.5), int(h * s + 0.5)). Requires positive sizes.
struct RescaledSize {
  int32_t width = 0;
  int32_t height = 0;
  double scale = 1.0;  ///< s above (the per-axis factors are width / w and height / h)
};
RescaledSize rescale_size(int32_t width, int32_t height, int32_t long_edge, int32_t short_edge);

// ------------------------------------------------------------------ pixel operations

/// Bilinear resize with half-pixel centres (torch interpolate(bilinear, align_corners=False,
/// antialias=False) / cv2 INTER_LINEAR geometry), float arithmetic; result float32
/// [3, new_height, new_width] in 0..255, not rounded.
Tensor resize_bilinear_float(const Image& image, int32_t new_width, int32_t new_height);
/// The same on a float32 [C, H, W] tensor.
Tensor resize_bilinear(const Tensor& chw, int32_t new_width, int32_t new_height);
/// The same, rounded half up to 8 bits (what the training pipeline keeps by default, as
/// MMDetection resizes the uint8 image with cv2). Differs from cv2's fixed-point path by at
/// most one level (docs/data-loading.md).
Image resize_bilinear(const Image& image, int32_t new_width, int32_t new_height);

/// Mirror left-right (exact).
Image flip_horizontal(const Image& image);
Tensor flip_horizontal(const Tensor& chw);

/// float32 [3, H, W]: out[c] = (x[c] - mean[c]) * (1 / std[c]) in float32 (mmcv.imnormalize's
/// subtract-then-multiply order). `to_rgb` true keeps the RGB order of our decoded images
/// (MMDetection's to_rgb=True on its BGR cv2 images gives the same RGB result); false writes
/// BGR. mean/std are given in the output channel order.
Tensor normalize(const Image& image, const std::array<float, 3>& mean, const std::array<float, 3>& std,
                 bool to_rgb = true);
/// The same on a float32 [3, H, W] tensor (already in RGB).
Tensor normalize(const Tensor& chw, const std::array<float, 3>& mean, const std::array<float, 3>& std,
                 bool to_rgb = true);
/// float32 [3, H, W] copy of the pixels, 0..255.
Tensor to_float_chw(const Image& image);

// ------------------------------------------------------------------ box operations

/// Removes boxes with x2 <= x1 or y2 <= y1 (or NaN), keeping labels/ignore in sync; adds the
/// count to meta.dropped_boxes and returns it.
int32_t drop_degenerate_boxes(Sample& sample);

// ------------------------------------------------------------------ transforms

class Transform {
 public:
  virtual ~Transform() = default;
  /// Transforms `sample` in place; random choices come only from `rng`.
  virtual void apply(Sample& sample, RandomStream& rng) const = 0;
  virtual std::string name() const = 0;
};

struct ResizeOptions {
  /// (long edge, short edge) targets; with more than one, each sample draws one uniformly
  /// (MMDetection multiscale_mode='value'). Default: the COCO (1333, 800).
  std::vector<std::array<int32_t, 2>> scales{{1333, 800}};
  /// true: mmcv.imrescale (aspect ratio kept, rescale_size); false: stretch to exactly
  /// (width = long, height = short) as mmcv.imresize.
  bool keep_ratio = true;
  /// Clip the boxes to the resized image (mmdet bbox_clip_border=True).
  bool clip_boxes = true;
  /// An 8-bit image stays 8-bit (rounded, like cv2 on uint8); false: it becomes float32.
  bool round_to_uint8 = true;

  /// (long_edge, s) for each short side s in `short_edges` (multi-scale training lists).
  static ResizeOptions multi_scale(int32_t long_edge, const std::vector<int32_t>& short_edges);
};

/// MMDetection v2 Resize: image resized, boxes multiplied by the float32 per-axis factors
/// (new_w / w, new_h / h) and clipped to [0, new_w] x [0, new_h]; boxes without area dropped.
class Resize : public Transform {
 public:
  explicit Resize(ResizeOptions options = {});
  void apply(Sample& sample, RandomStream& rng) const override;
  std::string name() const override { return "Resize"; }
  const ResizeOptions& options() const { return m_options; }

 private:
  ResizeOptions m_options;
};

/// MMDetection v2 RandomFlip (horizontal): with probability p (rng.uniform() < p), the image is
/// mirrored and x1' = W - x2, x2' = W - x1. One draw per sample whatever p is.
class RandomFlip : public Transform {
 public:
  explicit RandomFlip(double probability = 0.5);
  void apply(Sample& sample, RandomStream& rng) const override;
  std::string name() const override { return "RandomFlip"; }

 private:
  double m_probability;
};

struct NormalizeOptions {
  std::array<float, 3> mean{123.675f, 116.28f, 103.53f};
  std::array<float, 3> std{58.395f, 57.12f, 57.375f};
  bool to_rgb = true;
  friend bool operator==(const NormalizeOptions&, const NormalizeOptions&) = default;
};

/// Pixels -> float32 [3, H, W] normalised tensor (sample.image is released).
class Normalize : public Transform {
 public:
  explicit Normalize(NormalizeOptions options = {});
  void apply(Sample& sample, RandomStream& rng) const override;
  std::string name() const override { return "Normalize"; }

 private:
  NormalizeOptions m_options;
};

/// An ordered list of transforms, shared read-only by the loader's workers.
class Pipeline {
 public:
  Pipeline() = default;
  Pipeline& add(std::shared_ptr<const Transform> transform);
  template <typename T, typename... Args>
  Pipeline& emplace(Args&&... args) {
    return add(std::make_shared<T>(std::forward<Args>(args)...));
  }
  /// Runs every transform in order. Ensures: afterwards sample.tensor is a float32 [3, H, W]
  /// (an 8-bit image left by the transforms is converted with to_float_chw) and meta.height /
  /// meta.width are its size.
  void run(Sample& sample, RandomStream& rng) const;
  const std::vector<std::shared_ptr<const Transform>>& transforms() const { return m_transforms; }
  bool empty() const { return m_transforms.empty(); }

 private:
  std::vector<std::shared_ptr<const Transform>> m_transforms;
};

/// MMDetection's COCO training pipeline: Resize(scales, keep_ratio), RandomFlip(flip_p),
/// Normalize (ImageNet RGB mean/std). Padding to 32 happens when batching.
Pipeline train_pipeline(const ResizeOptions& resize = {}, double flip_probability = 0.5,
                        const NormalizeOptions& normalize = {});
/// The test pipeline: Resize (first scale only), Normalize; no flip.
Pipeline test_pipeline(const ResizeOptions& resize = {}, const NormalizeOptions& normalize = {});

}  // namespace drcnn::data
