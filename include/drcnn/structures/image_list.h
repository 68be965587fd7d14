// ImageList: a batch of images padded to one size, with each image's size before padding.
#pragma once
#include <vector>

#include "drcnn/core/tensor.h"
#include "drcnn/structures/instances.h"  // ImageSize

namespace drcnn {

class ImageList {
 public:
  ImageList() = default;
  /// Wraps a padded batch [B, C, H, W] and the B unpadded sizes. Requires: rank 4, sizes.size()
  /// == B, every size within (H, W).
  ImageList(Tensor tensor, std::vector<ImageSize> image_sizes);

  /// Pads every [C, h, w] image at the bottom and right with `pad_value` to (H, W) = the batch
  /// maxima rounded up to a multiple of `size_divisibility` (<= 0 or 1: no rounding), and
  /// stacks them. Requires: at least one image; same C, dtype and device; size_divisibility >= 0.
  /// MMDetection pads after normalisation with zeros, size_divisor 32 (spec B.1).
  static ImageList from_images(const std::vector<Tensor>& images, int64_t size_divisibility = 32,
                               double pad_value = 0.0);

  const Tensor& tensor() const { return m_tensor; }
  const std::vector<ImageSize>& image_sizes() const { return m_sizes; }
  int64_t size() const { return int64_t(m_sizes.size()); }
  /// The padded size (H, W) of the batch.
  ImageSize padded_size() const;
  /// Image i without its padding: a view [C, h_i, w_i] of the batch tensor.
  Tensor image(int64_t i) const;

 private:
  Tensor m_tensor;
  std::vector<ImageSize> m_sizes;
};

}  // namespace drcnn
