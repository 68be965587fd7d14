// Dispatchers of the anchor generator (include/drcnn/ops/anchors.h): check the config and the
// feature sizes, allocate, launch the shared bodies of ops/detail/anchor_body.h per level.
#include "drcnn/ops/anchors.h"

#include <cmath>

#include "dispatch.h"
#include "drcnn/ops/detail/anchor_body.h"

namespace drcnn::ops {

namespace {
void check_config(const char* op, const AnchorConfig& c) {
  DRCNN_CHECK(!c.strides.empty(), op, ": config.strides must have at least one level, got none");
  for (size_t i = 0; i < c.strides.size(); ++i) {
    DRCNN_CHECK(c.strides[i] > 0, op, ": config.strides[", i, "] must be > 0, got ", c.strides[i]);
  }
  DRCNN_CHECK(!c.ratios.empty() && c.ratios.size() <= size_t(AnchorConfig::kMaxAnchorRatios), op,
              ": config.ratios must have 1 to ", AnchorConfig::kMaxAnchorRatios, " entries, got ", c.ratios.size());
  for (size_t i = 0; i < c.ratios.size(); ++i) {
    DRCNN_CHECK(std::isfinite(c.ratios[i]) && c.ratios[i] > 0, op, ": config.ratios[", i,
                "] must be finite and > 0, got ", c.ratios[i]);
  }
  DRCNN_CHECK(!c.scales.empty() && c.scales.size() <= size_t(AnchorConfig::kMaxAnchorScales), op,
              ": config.scales must have 1 to ", AnchorConfig::kMaxAnchorScales, " entries, got ", c.scales.size());
  for (size_t i = 0; i < c.scales.size(); ++i) {
    DRCNN_CHECK(std::isfinite(c.scales[i]) && c.scales[i] > 0, op, ": config.scales[", i,
                "] must be finite and > 0, got ", c.scales[i]);
  }
  DRCNN_CHECK(c.base_sizes.empty() || c.base_sizes.size() == c.strides.size(), op,
              ": config.base_sizes must be empty (= strides) or have one entry per level (", c.strides.size(),
              "), got ", c.base_sizes.size());
  for (size_t i = 0; i < c.base_sizes.size(); ++i) {
    DRCNN_CHECK(std::isfinite(c.base_sizes[i]) && c.base_sizes[i] > 0, op, ": config.base_sizes[", i,
                "] must be finite and > 0, got ", c.base_sizes[i]);
  }
  DRCNN_CHECK(c.center_offset >= 0 && c.center_offset <= 1, op, ": config.center_offset must be in [0, 1], got ",
              c.center_offset);
  DRCNN_CHECK(!c.detectron || c.center_offset == 0, op, ": config.detectron anchors are centred at (base - 1) / 2 ",
              "by their own rule; center_offset must be 0, got ", c.center_offset);
}

void check_sizes(const char* op, const AnchorConfig& c, const std::vector<FeatureSize>& sizes) {
  DRCNN_CHECK(int64_t(sizes.size()) == c.num_levels(), op, ": expected one feature size per level (",
              c.num_levels(), "), got ", sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) {
    DRCNN_CHECK(sizes[i].height >= 0 && sizes[i].width >= 0, op, ": feature size of level ", i,
                " must be >= 0, got (", sizes[i].height, ", ", sizes[i].width, ")");
  }
}

/// The level's launch without output/valid extents.
AnchorLaunch level_launch(const AnchorConfig& c, size_t level, const FeatureSize& fs) {
  AnchorLaunch l;
  l.num_ratios = int64_t(c.ratios.size());
  l.num_scales = int64_t(c.scales.size());
  for (size_t k = 0; k < c.ratios.size(); ++k) l.ratios[k] = c.ratios[k];
  for (size_t k = 0; k < c.scales.size(); ++k) l.scales[k] = c.scales[k];
  l.stride = c.strides[level];
  l.base_size = c.base_sizes.empty() ? double(c.strides[level]) : c.base_sizes[level];
  l.center = c.center_offset * l.base_size;  // a Python float in mmdet, rounded to T in the body
  l.scale_major = c.scale_major;
  l.detectron = c.detectron;
  l.width = fs.width;
  l.n = fs.height * fs.width * l.num_ratios * l.num_scales;
  return l;
}

void run(const char* op, AnchorKind kind, DType dtype, Device device, const AnchorLaunch& l) {
  if (l.n == 0) return;
  runtime::on_device(
      device, op, [&] { cpu::anchors(kind, dtype, l); }, [&](auto s) { cuda::anchors(s, kind, dtype, l); });
}
}  // namespace

int64_t num_anchors(const AnchorConfig& config, const std::vector<FeatureSize>& feature_sizes) {
  check_config("num_anchors", config);
  check_sizes("num_anchors", config, feature_sizes);
  int64_t total = 0;
  for (const auto& fs : feature_sizes) total += fs.height * fs.width * config.anchors_per_location();
  return total;
}

std::vector<Tensor> grid_anchors(const AnchorConfig& config, const std::vector<FeatureSize>& feature_sizes,
                                 DType dtype, Device device) {
  const char* op = "grid_anchors";
  check_config(op, config);
  check_sizes(op, config, feature_sizes);
  DRCNN_CHECK(dtype == DType::Float32 || dtype == DType::Float64, op, ": dtype must be float32 or float64, got ",
              dtype);
  std::vector<Tensor> out;
  for (size_t i = 0; i < feature_sizes.size(); ++i) {
    AnchorLaunch l = level_launch(config, i, feature_sizes[i]);
    Tensor t = Tensor::empty({l.n, 4}, dtype, device);
    l.out = t.data_ptr();
    run(op, AnchorKind::Grid, dtype, device, l);
    out.push_back(t);
  }
  return out;
}

Tensor base_anchors(const AnchorConfig& config, int64_t level, DType dtype, Device device) {
  const char* op = "base_anchors";
  check_config(op, config);
  DRCNN_CHECK(level >= 0 && level < config.num_levels(), op, ": level must be in [0, ", config.num_levels(),
              "), got ", level);
  DRCNN_CHECK(dtype == DType::Float32 || dtype == DType::Float64, op, ": dtype must be float32 or float64, got ",
              dtype);
  AnchorLaunch l = level_launch(config, size_t(level), FeatureSize{1, 1});
  Tensor t = Tensor::empty({l.n, 4}, dtype, device);
  l.out = t.data_ptr();
  run(op, AnchorKind::Grid, dtype, device, l);
  return t;
}

std::vector<Tensor> anchor_valid_flags(const AnchorConfig& config, const std::vector<FeatureSize>& feature_sizes,
                                       int64_t pad_height, int64_t pad_width, Device device) {
  const char* op = "anchor_valid_flags";
  check_config(op, config);
  check_sizes(op, config, feature_sizes);
  DRCNN_CHECK(pad_height >= 0 && pad_width >= 0, op, ": padded image size must be >= 0, got (", pad_height, ", ",
              pad_width, ")");
  std::vector<Tensor> out;
  for (size_t i = 0; i < feature_sizes.size(); ++i) {
    AnchorLaunch l = level_launch(config, i, feature_sizes[i]);
    const int64_t s = config.strides[i];
    // mmdet: min(int(np.ceil(h / stride)), feat_h); integer ceil of non-negative ints.
    l.valid_h = std::min((pad_height + s - 1) / s, feature_sizes[i].height);
    l.valid_w = std::min((pad_width + s - 1) / s, feature_sizes[i].width);
    Tensor t = Tensor::empty({l.n}, DType::Bool, device);
    l.out = t.data_ptr();
    run(op, AnchorKind::ValidFlags, DType::Bool, device, l);
    out.push_back(t);
  }
  return out;
}

Tensor anchor_inside_flags(const Tensor& anchors, int64_t height, int64_t width, double allowed_border) {
  DRCNN_CHECK(anchors.ndim() == 2 && anchors.size(1) == 4, "anchor_inside_flags: expected anchors [N, 4], got ",
              anchors.shape());
  DRCNN_CHECK(height >= 0 && width >= 0, "anchor_inside_flags: image size must be >= 0, got (", height, ", ", width,
              ")");
  const int64_t n = anchors.size(0);
  Tensor out = Tensor::empty({n}, DType::Bool, Device::cpu());
  bool* flag = static_cast<bool*>(out.data_ptr());
  if (allowed_border < 0) {
    for (int64_t i = 0; i < n; ++i) flag[i] = true;
    return out;
  }
  const std::vector<double> a = anchors.to(DType::Float64).to(Device::cpu()).contiguous().to_vector<double>();
  const double b = allowed_border, w = double(width), h = double(height);
  for (int64_t i = 0; i < n; ++i) {
    const double* r = &a[size_t(4 * i)];
    flag[i] = r[0] >= -b && r[1] >= -b && r[2] < w + b && r[3] < h + b;
  }
  return out;
}
}  // namespace drcnn::ops
