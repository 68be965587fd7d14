// Boxes, Instances and ImageList (include/drcnn/structures/).
#include <algorithm>
#include <utility>

#include "drcnn/ops/box_ops.h"
#include "drcnn/ops/elementwise.h"
#include "drcnn/ops/index.h"
#include "drcnn/structures/boxes.h"
#include "drcnn/structures/image_list.h"
#include "drcnn/structures/instances.h"

namespace drcnn {

Tensor select_rows(const Tensor& x, const Tensor& index) {
  if (index.numel() == 0) {
    std::vector<int64_t> dims(x.shape().begin(), x.shape().end());
    dims[0] = 0;
    return Tensor::empty(Shape(dims), x.dtype(), x.device());
  }
  return ops::index_select(x, 0, index);
}

namespace {

// int64 positions where the bool flags equal `value` (host compaction; a copy from the device).
Tensor positions_where(const Tensor& flags, bool value) {
  const std::vector<uint8_t> f = flags.to_vector<uint8_t>();
  std::vector<int64_t> idx;
  for (size_t i = 0; i < f.size(); ++i)
    if ((f[i] != 0) == value) idx.push_back(int64_t(i));
  return Tensor::from_vector(idx, Shape{int64_t(idx.size())}, flags.device());
}

}  // namespace

// ------------------------------------------------------------------------------- Boxes
Boxes::Boxes() : m_tensor(Tensor::empty({0, 4}, DType::Float32)) {}

Boxes::Boxes(Tensor tensor) : m_tensor(std::move(tensor)) {
  DRCNN_CHECK(m_tensor.defined(), "Boxes: undefined tensor");
  DRCNN_CHECK(m_tensor.dtype() == DType::Float32 || m_tensor.dtype() == DType::Float64,
              "Boxes: expected a float32 or float64 tensor, got ", m_tensor.dtype());
  DRCNN_CHECK(m_tensor.ndim() == 2 && m_tensor.size(1) == 4, "Boxes: expected shape [N, 4], got ",
              m_tensor.shape());
}

Tensor Boxes::area() const { return ops::box_area(m_tensor); }
Boxes Boxes::clip(double height, double width) const { return Boxes(ops::box_clip(m_tensor, height, width)); }
Boxes Boxes::to(Device device) const { return Boxes(m_tensor.to(device)); }

// ------------------------------------------------------------------------------- Instances
Instances::Instances(ImageSize size, Boxes b, Tensor l, Tensor s, Tensor ign)
    : image_size(size), boxes(std::move(b)), labels(std::move(l)), scores(std::move(s)), ignore(std::move(ign)) {
  DRCNN_CHECK(image_size.height >= 0 && image_size.width >= 0, "Instances: image size (", image_size.height, ", ",
              image_size.width, ") is negative");
  const int64_t n = boxes.size();
  DRCNN_CHECK(labels.defined() && labels.dtype() == DType::Int64 && labels.ndim() == 1 && labels.size(0) == n,
              "Instances: labels must be int64 [", n, "] (one per box), got ",
              labels.defined() ? fmt::format("{} {}", labels.dtype(), labels.shape()) : std::string("undefined"));
  DRCNN_CHECK(labels.device() == boxes.device(), "Instances: labels on ", labels.device(), ", boxes on ",
              boxes.device());
  if (scores.defined()) {
    DRCNN_CHECK(is_floating(scores.dtype()) && scores.ndim() == 1 && scores.size(0) == n,
                "Instances: scores must be float [", n, "], got ", scores.dtype(), " ", scores.shape());
    DRCNN_CHECK(scores.device() == boxes.device(), "Instances: scores on ", scores.device(), ", boxes on ",
                boxes.device());
  }
  if (ignore.defined()) {
    DRCNN_CHECK(ignore.dtype() == DType::Bool && ignore.ndim() == 1 && ignore.size(0) == n,
                "Instances: ignore flags must be bool [", n, "], got ", ignore.dtype(), " ", ignore.shape());
    DRCNN_CHECK(ignore.device() == boxes.device(), "Instances: ignore flags on ", ignore.device(), ", boxes on ",
                boxes.device());
  }
}

Instances Instances::select(const Tensor& index) const {
  const Tensor idx = index.to(boxes.device());
  return Instances(image_size, Boxes(select_rows(boxes.tensor(), idx)), select_rows(labels, idx),
                   scores.defined() ? select_rows(scores, idx) : Tensor(),
                   ignore.defined() ? select_rows(ignore, idx) : Tensor());
}

Instances Instances::without_ignored() const {
  if (!ignore.defined()) return *this;
  return select(positions_where(ignore, false));
}

Boxes Instances::ignored_boxes() const {
  if (!ignore.defined()) return Boxes(Tensor::empty({0, 4}, boxes.dtype(), boxes.device()));
  return Boxes(select_rows(boxes.tensor(), positions_where(ignore, true)));
}

// ------------------------------------------------------------------------------- ImageList
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
