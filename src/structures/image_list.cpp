// ImageList (include/drcnn/structures/image_list.h).
#include "drcnn/structures/image_list.h"

#include <algorithm>
#include <utility>

namespace drcnn {

ImageList::ImageList(Tensor tensor, std::vector<ImageSize> image_sizes)
    : m_tensor(std::move(tensor)), m_sizes(std::move(image_sizes)) {
  DRCNN_CHECK(m_tensor.defined() && m_tensor.ndim() == 4, "ImageList: expected a [B, C, H, W] tensor, got ",
              m_tensor.defined() ? fmt::format("{}", m_tensor.shape()) : std::string("undefined"));
  DRCNN_CHECK(int64_t(m_sizes.size()) == m_tensor.size(0), "ImageList: ", m_sizes.size(),
              " image sizes for a batch of ", m_tensor.size(0));
  for (size_t i = 0; i < m_sizes.size(); ++i)
    DRCNN_CHECK(m_sizes[i].height >= 0 && m_sizes[i].height <= m_tensor.size(2) && m_sizes[i].width >= 0 &&
                    m_sizes[i].width <= m_tensor.size(3),
                "ImageList: image ", i, " size (", m_sizes[i].height, ", ", m_sizes[i].width,
                ") does not fit in the padded size (", m_tensor.size(2), ", ", m_tensor.size(3), ")");
}

ImageList ImageList::from_images(const std::vector<Tensor>& images, int64_t size_divisibility, double pad_value) {
  DRCNN_CHECK(!images.empty(), "ImageList::from_images: no images");
  DRCNN_CHECK(size_divisibility >= 0, "ImageList::from_images: size_divisibility must be >= 0, got ",
              size_divisibility);
  const Tensor& first = images.front();
  int64_t max_h = 0, max_w = 0;
  std::vector<ImageSize> sizes;
  for (size_t i = 0; i < images.size(); ++i) {
    const Tensor& im = images[i];
    DRCNN_CHECK(im.defined() && im.ndim() == 3, "ImageList::from_images: image ", i,
                " must be [C, H, W], got ", im.defined() ? fmt::format("{}", im.shape()) : std::string("undefined"));
    DRCNN_CHECK(im.size(0) == first.size(0) && im.dtype() == first.dtype() && im.device() == first.device(),
                "ImageList::from_images: image ", i, " (", im.shape(), ", ", im.dtype(), ", ", im.device(),
                ") differs in channels, dtype or device from image 0 (", first.shape(), ", ", first.dtype(), ", ",
                first.device(), ")");
    sizes.push_back({im.size(1), im.size(2)});
    max_h = std::max(max_h, im.size(1));
    max_w = std::max(max_w, im.size(2));
  }
  if (size_divisibility > 1) {
    max_h = (max_h + size_divisibility - 1) / size_divisibility * size_divisibility;
    max_w = (max_w + size_divisibility - 1) / size_divisibility * size_divisibility;
  }
  Tensor batch = Tensor::full({int64_t(images.size()), first.size(0), max_h, max_w}, pad_value, first.dtype(),
                              first.device());
  for (size_t i = 0; i < images.size(); ++i) {
    Tensor dst = batch.select(0, int64_t(i)).narrow(1, 0, sizes[i].height).narrow(2, 0, sizes[i].width);
    dst.copy_(images[i]);
  }
  return ImageList(std::move(batch), std::move(sizes));
}

ImageSize ImageList::padded_size() const { return {m_tensor.size(2), m_tensor.size(3)}; }

Tensor ImageList::image(int64_t i) const {
  DRCNN_CHECK(i >= 0 && i < size(), "ImageList::image: index ", i, " out of range for ", size(), " images");
  return m_tensor.select(0, i).narrow(1, 0, m_sizes[size_t(i)].height).narrow(2, 0, m_sizes[size_t(i)].width);
}

}  // namespace drcnn
