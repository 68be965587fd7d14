// Instances (include/drcnn/structures/instances.h).
#include "drcnn/structures/instances.h"

#include <utility>

namespace drcnn {

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

}  // namespace drcnn
