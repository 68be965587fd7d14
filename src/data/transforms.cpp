// Transforms: MMDetection v2's Resize / RandomFlip / Normalize on drcnn Samples.
// The formulas are written from mmcv's image/geometric.py (rescale_size, imrescale),
// mmdet/datasets/pipelines/transforms.py (Resize, RandomFlip, Normalize) and torch's
// upsample_bilinear2d (align_corners=False) source-index rule; see docs/data-loading.md.
#include "drcnn/data/transforms.h"

#include <algorithm>
#include <cmath>

#include "drcnn/core/error.h"

namespace drcnn::data {

namespace {

Image blank_image(int32_t width, int32_t height) {
  Image out;
  out.width = width;
  out.height = height;
  out.pixels.assign(std::size_t(width) * std::size_t(height) * 3, 0);
  return out;
}

void check_image(const Image& image, const char* op) {
  DRCNN_CHECK(image.width > 0 && image.height > 0 &&
                  image.pixels.size() == std::size_t(image.width) * std::size_t(image.height) * 3,
              op, ": expected a non-empty 8-bit RGB image with width * height * 3 bytes, got ", image.width, "x",
              image.height, " with ", image.pixels.size(), " bytes");
}

void check_chw(const Tensor& t, const char* op, int64_t channels = -1) {
  DRCNN_CHECK(t.defined() && t.dtype() == DType::Float32 && t.ndim() == 3 && t.device().is_cpu() &&
                  t.size(1) > 0 && t.size(2) > 0 && (channels < 0 || t.size(0) == channels),
              op, ": expected a float32 CPU tensor [C, H, W] with H, W > 0",
              channels < 0 ? std::string() : ::drcnn::detail::concat(" and C = ", channels), ", got ",
              t.defined() ? ::drcnn::detail::concat(t.shape(), " ", t.dtype(), " on ", t.device()) : std::string("undefined"));
}

/// Source taps of one output axis (torch's area_pixel_compute_source_index with
/// align_corners=False and its linear weights).
struct AxisTaps {
  std::vector<int32_t> i0, i1;
  std::vector<float> w0, w1;
};

AxisTaps axis_taps(int32_t in, int32_t out) {
  AxisTaps taps;
  taps.i0.resize(std::size_t(out));
  taps.i1.resize(std::size_t(out));
  taps.w0.resize(std::size_t(out));
  taps.w1.resize(std::size_t(out));
  // torch 1.13 (measured with tools/golden_transforms.py and impulse inputs): the ratio in/out
  // is rounded to float, the source index (d + 0.5) * ratio - 0.5 is then computed in double and
  // the weights are stored as float. Taking the ratio in double instead moves the source index
  // by up to 6e-8 * d pixels (0.02 levels at d = 1333), beyond the golden's 1e-4.
  const double scale = double(float(in) / float(out));
  for (int32_t d = 0; d < out; ++d) {
    const double real = std::max(scale * (double(d) + 0.5) - 0.5, 0.0);
    const int32_t i0 = std::min(int32_t(real), in - 1);
    const float l1 = float(std::clamp(real - double(i0), 0.0, 1.0));
    taps.i0[std::size_t(d)] = i0;
    taps.i1[std::size_t(d)] = i0 + (i0 < in - 1 ? 1 : 0);
    taps.w1[std::size_t(d)] = l1;
    taps.w0[std::size_t(d)] = 1.0f - l1;
  }
  return taps;
}

/// Bilinear resize of C planes read through `at(c, y, x)` (float), written through
/// `put(c, y, x, value)`. The evaluation order is torch's: each source row is interpolated
/// along x (x0 * w0 + x1 * w1), then two such rows are mixed (top * h0 + bottom * h1). A
/// source row's x-interpolation is the same for every output row that uses it, so it is
/// computed once into one of two row buffers (y0 and y1 never decrease with y): the result is
/// bit-identical to evaluating the four taps per output pixel, at about half the work.
template <typename At, typename Put>
void resize_planes(int64_t channels, int32_t in_w, int32_t in_h, int32_t out_w, int32_t out_h, At at, Put put) {
  const AxisTaps tx = axis_taps(in_w, out_w), ty = axis_taps(in_h, out_h);
  const std::size_t row_len = std::size_t(out_w) * std::size_t(channels);
  std::vector<float> buffers[2] = {std::vector<float>(row_len), std::vector<float>(row_len)};
  int32_t held[2] = {-1, -1};
  // The buffer holding source row r interpolated along x, computed on a miss into the buffer
  // that does not hold `keep`.
  auto row = [&](int32_t r, int32_t keep) -> const float* {
    for (int i = 0; i < 2; ++i)
      if (held[i] == r) return buffers[i].data();
    const int slot = held[0] == keep ? 1 : 0;
    float* b = buffers[slot].data();
    for (int32_t x = 0; x < out_w; ++x) {
      const int32_t x0 = tx.i0[std::size_t(x)], x1 = tx.i1[std::size_t(x)];
      const float v0 = tx.w0[std::size_t(x)], v1 = tx.w1[std::size_t(x)];
      for (int64_t c = 0; c < channels; ++c) b[std::size_t(x) * std::size_t(channels) + std::size_t(c)] = at(c, r, x0) * v0 + at(c, r, x1) * v1;
    }
    held[slot] = r;
    return b;
  };
  for (int32_t y = 0; y < out_h; ++y) {
    const int32_t y0 = ty.i0[std::size_t(y)], y1 = ty.i1[std::size_t(y)];
    const float h0 = ty.w0[std::size_t(y)], h1 = ty.w1[std::size_t(y)];
    const float* top = row(y0, y1);
    const float* bottom = row(y1, y0);
    for (int32_t x = 0; x < out_w; ++x)
      for (int64_t c = 0; c < channels; ++c) {
        const std::size_t i = std::size_t(x) * std::size_t(channels) + std::size_t(c);
        put(c, y, x, top[i] * h0 + bottom[i] * h1);
      }
  }
}

void check_size(int32_t w, int32_t h, const char* op) {
  DRCNN_CHECK(w > 0 && h > 0, op, ": the output size must be positive, got ", w, "x", h);
}

uint8_t round_u8(float v) { return uint8_t(std::clamp(std::floor(v + 0.5f), 0.0f, 255.0f)); }

/// Multiplies x by sx and y by sy (float32, as numpy float32 * float32) and clips to the image.
void scale_boxes(std::vector<std::array<float, 4>>& boxes, float sx, float sy, bool clip, int32_t width,
                 int32_t height) {
  const float w = float(width), h = float(height);
  for (auto& b : boxes) {
    b[0] *= sx;
    b[1] *= sy;
    b[2] *= sx;
    b[3] *= sy;
    if (clip) {
      b[0] = std::clamp(b[0], 0.0f, w);
      b[2] = std::clamp(b[2], 0.0f, w);
      b[1] = std::clamp(b[1], 0.0f, h);
      b[3] = std::clamp(b[3], 0.0f, h);
    }
  }
}

void check_sample(const Sample& s, const char* op) {
  DRCNN_CHECK(s.tensor.defined() || !s.image.empty(), op, ": the sample (image ", s.meta.image_id, ", ",
              s.meta.image_path, ") has no pixels");
  DRCNN_CHECK(s.labels.size() == s.boxes.size() && (s.ignore.empty() || s.ignore.size() == s.boxes.size()), op,
              ": the sample (image ", s.meta.image_id, ") has ", s.boxes.size(), " boxes but ", s.labels.size(),
              " labels and ", s.ignore.size(), " ignore flags");
}

}  // namespace

// ------------------------------------------------------------------ Sample

int32_t Sample::height() const { return tensor.defined() ? int32_t(tensor.size(1)) : image.height; }
int32_t Sample::width() const { return tensor.defined() ? int32_t(tensor.size(2)) : image.width; }

Sample make_sample(const DetectionRecord& record, Image image) {
  check_image(image, "make_sample");
  DRCNN_CHECK((record.width == 0 && record.height == 0) ||
                  (record.width == image.width && record.height == image.height),
              "make_sample: image ", record.image_id, " (", record.image_path, ") decodes to ", image.width, "x",
              image.height, " but the annotation file says ", record.width, "x", record.height);
  DRCNN_CHECK(record.labels.size() == record.boxes.size() &&
                  (record.ignore.empty() || record.ignore.size() == record.boxes.size()),
              "make_sample: image ", record.image_id, " (", record.image_path, ") has ", record.boxes.size(),
              " boxes, ", record.labels.size(), " labels and ", record.ignore.size(), " ignore flags");
  Sample s;
  s.boxes = record.boxes;
  s.labels = record.labels;
  s.ignore = record.ignore.empty() ? std::vector<uint8_t>(record.boxes.size(), 0) : record.ignore;
  s.meta.image_id = record.image_id;
  s.meta.image_path = record.image_path;
  s.meta.original_height = s.meta.height = image.height;
  s.meta.original_width = s.meta.width = image.width;
  s.image = std::move(image);
  drop_degenerate_boxes(s);
  return s;
}

Instances to_instances(const Sample& s) {
  const int64_t n = int64_t(s.boxes.size());
  std::vector<float> flat;
  flat.reserve(std::size_t(n) * 4);
  for (const auto& b : s.boxes) flat.insert(flat.end(), b.begin(), b.end());
  std::vector<bool> ignore(std::size_t(n), false);
  for (int64_t i = 0; i < n && std::size_t(i) < s.ignore.size(); ++i) ignore[std::size_t(i)] = s.ignore[std::size_t(i)] != 0;
  return Instances(ImageSize{s.meta.height, s.meta.width}, Boxes(Tensor::from_vector(flat, {n, 4})),
                   Tensor::from_vector(s.labels, {n}), Tensor(), Tensor::from_vector(ignore, {n}));
}

// ------------------------------------------------------------------ size rule

RescaledSize rescale_size(int32_t width, int32_t height, int32_t long_edge, int32_t short_edge) {
  DRCNN_CHECK(width > 0 && height > 0 && long_edge > 0 && short_edge > 0,
              "rescale_size: needs a positive image size and scale, got image ", width, "x", height, " and scale (",
              long_edge, ", ", short_edge, ")");
  // mmcv takes max/min of the scale tuple, so (800, 1333) means the same as (1333, 800).
  const double max_long = std::max(long_edge, short_edge), max_short = std::min(long_edge, short_edge);
  const double s = std::min(max_long / double(std::max(width, height)), max_short / double(std::min(width, height)));
  RescaledSize r;
  r.scale = s;
  // mmcv _scale_size: int(w * float(scale) + 0.5): truncation of a positive number.
  r.width = int32_t(double(width) * s + 0.5);
  r.height = int32_t(double(height) * s + 0.5);
  DRCNN_CHECK(r.width > 0 && r.height > 0, "rescale_size: image ", width, "x", height, " with scale (", long_edge,
              ", ", short_edge, ") rescales to an empty ", r.width, "x", r.height, " image");
  return r;
}

// ------------------------------------------------------------------ pixels

Tensor resize_bilinear_float(const Image& image, int32_t new_width, int32_t new_height) {
  check_image(image, "resize_bilinear_float");
  check_size(new_width, new_height, "resize_bilinear_float");
  Tensor out = Tensor::empty({3, new_height, new_width}, DType::Float32);
  float* o = out.data<float>();
  const uint8_t* p = image.pixels.data();
  const int64_t W = image.width, plane = int64_t(new_width) * new_height;
  resize_planes(
      3, image.width, image.height, new_width, new_height,
      [&](int64_t c, int32_t y, int32_t x) { return float(p[(y * W + x) * 3 + c]); },
      [&](int64_t c, int32_t y, int32_t x, float v) { o[c * plane + int64_t(y) * new_width + x] = v; });
  return out;
}

Tensor resize_bilinear(const Tensor& chw_in, int32_t new_width, int32_t new_height) {
  check_chw(chw_in, "resize_bilinear");
  check_size(new_width, new_height, "resize_bilinear");
  const Tensor chw = chw_in.contiguous();
  const int64_t C = chw.size(0), H = chw.size(1), W = chw.size(2);
  Tensor out = Tensor::empty({C, new_height, new_width}, DType::Float32);
  float* o = out.data<float>();
  const float* p = chw.data<float>();
  const int64_t plane = int64_t(new_width) * new_height;
  resize_planes(
      C, int32_t(W), int32_t(H), new_width, new_height,
      [&](int64_t c, int32_t y, int32_t x) { return p[(c * H + y) * W + x]; },
      [&](int64_t c, int32_t y, int32_t x, float v) { o[c * plane + int64_t(y) * new_width + x] = v; });
  return out;
}

Image resize_bilinear(const Image& image, int32_t new_width, int32_t new_height) {
  check_image(image, "resize_bilinear");
  check_size(new_width, new_height, "resize_bilinear");
  Image out = blank_image(new_width, new_height);
  const uint8_t* p = image.pixels.data();
  uint8_t* o = out.pixels.data();
  const int64_t W = image.width;
  resize_planes(
      3, image.width, image.height, new_width, new_height,
      [&](int64_t c, int32_t y, int32_t x) { return float(p[(y * W + x) * 3 + c]); },
      [&](int64_t c, int32_t y, int32_t x, float v) { o[(int64_t(y) * new_width + x) * 3 + c] = round_u8(v); });
  return out;
}

Image flip_horizontal(const Image& image) {
  check_image(image, "flip_horizontal");
  Image out = blank_image(image.width, image.height);
  for (int32_t y = 0; y < image.height; ++y)
    for (int32_t x = 0; x < image.width; ++x) {
      const uint8_t* src = image.pixel(y, image.width - 1 - x);
      uint8_t* dst = out.pixel(y, x);
      dst[0] = src[0];
      dst[1] = src[1];
      dst[2] = src[2];
    }
  return out;
}

Tensor flip_horizontal(const Tensor& chw_in) {
  check_chw(chw_in, "flip_horizontal");
  const Tensor chw = chw_in.contiguous();
  const int64_t C = chw.size(0), H = chw.size(1), W = chw.size(2);
  Tensor out = Tensor::empty({C, H, W}, DType::Float32);
  const float* p = chw.data<float>();
  float* o = out.data<float>();
  for (int64_t row = 0; row < C * H; ++row)
    for (int64_t x = 0; x < W; ++x) o[row * W + x] = p[row * W + (W - 1 - x)];
  return out;
}

Tensor to_float_chw(const Image& image) {
  check_image(image, "to_float_chw");
  const int64_t H = image.height, W = image.width;
  Tensor out = Tensor::empty({3, H, W}, DType::Float32);
  float* o = out.data<float>();
  const uint8_t* p = image.pixels.data();
  for (int64_t i = 0; i < H * W; ++i)
    for (int64_t c = 0; c < 3; ++c) o[c * H * W + i] = float(p[i * 3 + c]);
  return out;
}

namespace {
void check_std(const std::array<float, 3>& std, const char* op) {
  DRCNN_CHECK(std[0] > 0 && std[1] > 0 && std[2] > 0, op, ": std must be positive, got (", std[0], ", ", std[1],
              ", ", std[2], ")");
}
/// Normalises plane c of `src` (float32 [3, H, W] contiguous, RGB) into `out` plane c' where
/// c' = c (to_rgb) or 2 - c (BGR output), in place allowed.
void normalize_planes(const float* src, float* out, int64_t plane, const std::array<float, 3>& mean,
                      const std::array<float, 3>& std, bool to_rgb) {
  for (int64_t oc = 0; oc < 3; ++oc) {
    const int64_t ic = to_rgb ? oc : 2 - oc;
    const float m = mean[std::size_t(oc)];
    const float inv = float(1.0 / double(std[std::size_t(oc)]));
    const float* s = src + ic * plane;
    float* d = out + oc * plane;
    for (int64_t i = 0; i < plane; ++i) d[i] = (s[i] - m) * inv;
  }
}
}  // namespace

Tensor normalize(const Image& image, const std::array<float, 3>& mean, const std::array<float, 3>& std, bool to_rgb) {
  check_std(std, "normalize");
  Tensor x = to_float_chw(image);
  Tensor out = Tensor::empty(x.shape(), DType::Float32);
  normalize_planes(x.data<float>(), out.data<float>(), int64_t(image.width) * image.height, mean, std, to_rgb);
  return out;
}

Tensor normalize(const Tensor& chw_in, const std::array<float, 3>& mean, const std::array<float, 3>& std,
                 bool to_rgb) {
  check_chw(chw_in, "normalize", 3);
  check_std(std, "normalize");
  const Tensor chw = chw_in.contiguous();
  Tensor out = Tensor::empty(chw.shape(), DType::Float32);
  normalize_planes(chw.data<float>(), out.data<float>(), chw.size(1) * chw.size(2), mean, std, to_rgb);
  return out;
}

// ------------------------------------------------------------------ boxes

int32_t drop_degenerate_boxes(Sample& s) {
  check_sample(s, "drop_degenerate_boxes");
  std::size_t kept = 0;
  for (std::size_t i = 0; i < s.boxes.size(); ++i) {
    const auto& b = s.boxes[i];
    if (!(b[2] > b[0] && b[3] > b[1])) continue;  // also drops NaN
    s.boxes[kept] = b;
    s.labels[kept] = s.labels[i];
    if (!s.ignore.empty()) s.ignore[kept] = s.ignore[i];
    ++kept;
  }
  const int32_t dropped = int32_t(s.boxes.size() - kept);
  s.boxes.resize(kept);
  s.labels.resize(kept);
  if (!s.ignore.empty()) s.ignore.resize(kept);
  s.meta.dropped_boxes += dropped;
  return dropped;
}

// ------------------------------------------------------------------ Resize

ResizeOptions ResizeOptions::multi_scale(int32_t long_edge, const std::vector<int32_t>& short_edges) {
  DRCNN_CHECK(!short_edges.empty(), "ResizeOptions::multi_scale: needs at least one short edge");
  ResizeOptions o;
  o.scales.clear();
  for (int32_t s : short_edges) o.scales.push_back({long_edge, s});
  return o;
}

Resize::Resize(ResizeOptions options) : m_options(std::move(options)) {
  DRCNN_CHECK(!m_options.scales.empty(), "Resize: needs at least one scale");
  for (const auto& s : m_options.scales)
    DRCNN_CHECK(s[0] > 0 && s[1] > 0, "Resize: every scale must be positive, got (", s[0], ", ", s[1], ")");
}

void Resize::apply(Sample& s, RandomStream& rng) const {
  check_sample(s, "Resize");
  const std::size_t n = m_options.scales.size();
  // multiscale_mode='value': one uniform choice among the scales (no draw for a single scale).
  const std::size_t idx = n > 1 ? std::size_t(rng.below(n)) : 0;
  const auto& scale = m_options.scales[idx];
  const int32_t w = s.width(), h = s.height();
  int32_t nw, nh;
  if (m_options.keep_ratio) {
    const RescaledSize r = rescale_size(w, h, scale[0], scale[1]);
    nw = r.width;
    nh = r.height;
  } else {
    nw = scale[0];
    nh = scale[1];
  }
  if (s.tensor.defined())
    s.tensor = resize_bilinear(s.tensor, nw, nh);
  else if (m_options.round_to_uint8)
    s.image = resize_bilinear(s.image, nw, nh);
  else {
    s.tensor = resize_bilinear_float(s.image, nw, nh);
    s.image = Image();
  }
  // mmdet: scale_factor = np.float32([new_w / w, new_h / h, ...]) (float64 division, then f32).
  const float sx = float(double(nw) / double(w)), sy = float(double(nh) / double(h));
  scale_boxes(s.boxes, sx, sy, m_options.clip_boxes, nw, nh);
  s.meta.height = nh;
  s.meta.width = nw;
  s.meta.scale_w = float(double(nw) / double(s.meta.original_width > 0 ? s.meta.original_width : w));
  s.meta.scale_h = float(double(nh) / double(s.meta.original_height > 0 ? s.meta.original_height : h));
  s.meta.scale_index = int32_t(idx);
  drop_degenerate_boxes(s);
}

// ------------------------------------------------------------------ RandomFlip

RandomFlip::RandomFlip(double probability) : m_probability(probability) {
  DRCNN_CHECK(probability >= 0.0 && probability <= 1.0, "RandomFlip: the probability must be in [0, 1], got ",
              probability);
}

void RandomFlip::apply(Sample& s, RandomStream& rng) const {
  check_sample(s, "RandomFlip");
  const bool flip = rng.uniform() < m_probability;  // np.random.rand() < flip_ratio
  if (!flip) return;
  const float W = float(s.width());
  if (s.tensor.defined())
    s.tensor = flip_horizontal(s.tensor);
  else
    s.image = flip_horizontal(s.image);
  for (auto& b : s.boxes) {
    const float x1 = b[0], x2 = b[2];
    b[0] = W - x2;
    b[2] = W - x1;
  }
  s.meta.flipped = !s.meta.flipped;
  drop_degenerate_boxes(s);
}

// ------------------------------------------------------------------ Normalize

Normalize::Normalize(NormalizeOptions options) : m_options(options) { check_std(m_options.std, "Normalize"); }

void Normalize::apply(Sample& s, RandomStream&) const {
  check_sample(s, "Normalize");
  if (s.tensor.defined()) {
    s.tensor = normalize(s.tensor, m_options.mean, m_options.std, m_options.to_rgb);
  } else {
    s.tensor = normalize(s.image, m_options.mean, m_options.std, m_options.to_rgb);
    s.image = Image();
  }
}

// ------------------------------------------------------------------ Pipeline

Pipeline& Pipeline::add(std::shared_ptr<const Transform> transform) {
  DRCNN_CHECK(transform != nullptr, "Pipeline::add: null transform");
  m_transforms.push_back(std::move(transform));
  return *this;
}

void Pipeline::run(Sample& s, RandomStream& rng) const {
  check_sample(s, "Pipeline::run");
  for (const auto& t : m_transforms) t->apply(s, rng);
  if (!s.tensor.defined()) {
    s.tensor = to_float_chw(s.image);
    s.image = Image();
  }
  s.meta.height = int32_t(s.tensor.size(1));
  s.meta.width = int32_t(s.tensor.size(2));
}

Pipeline train_pipeline(const ResizeOptions& resize, double flip_probability, const NormalizeOptions& normalize) {
  Pipeline p;
  p.emplace<Resize>(resize).emplace<RandomFlip>(flip_probability).emplace<Normalize>(normalize);
  return p;
}

Pipeline test_pipeline(const ResizeOptions& resize, const NormalizeOptions& normalize) {
  ResizeOptions first = resize;
  DRCNN_CHECK(!first.scales.empty(), "test_pipeline: needs at least one scale");
  first.scales.resize(1);
  Pipeline p;
  p.emplace<Resize>(first).emplace<Normalize>(normalize);
  return p;
}

}  // namespace drcnn::data
