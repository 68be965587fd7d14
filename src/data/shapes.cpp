// The synthetic shapes dataset (include/drcnn/data/shapes.h, docs/data-images.md). Everything
// that decides a pixel or a box is integer arithmetic: our own splitmix64 stream and our own
// distributions (std:: distributions differ between standard libraries), fixed-point geometry
// (positions in 1/1024 px, rotations in Q30) and exact integer inside tests.
#include "drcnn/data/shapes.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>
#include <tuple>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "drcnn/core/error.h"
#include "file_util.h"

namespace drcnn::data {

const std::vector<std::string>& shape_class_names() {
  static const std::vector<std::string> names = {"circle", "square", "triangle",
                                                 "cross",  "ring",   "star"};
  return names;
}

namespace {

__extension__ typedef __int128 i128;  // __extension__: no -Wpedantic warning
__extension__ typedef unsigned __int128 u128;

// ---- random numbers -------------------------------------------------------------------------

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;

// SplitMix64's output function (Steele, Lea, Flood 2014).
uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
uint64_t splitmix64(uint64_t x) { return mix64(x + kGolden); }

// SplitMix64: a Weyl sequence through mix64.
class Rng {
 public:
  explicit Rng(uint64_t seed) : m_state(seed) {}
  uint64_t next() { return mix64(m_state += kGolden); }
  /// Uniform in [0, n) (n >= 1) by the 64x64 -> 128 multiply (bias below n / 2^64).
  uint64_t below(uint64_t n) { return uint64_t(u128(next()) * n >> 64); }
  /// Uniform in [lo, hi] (inclusive).
  int64_t range(int64_t lo, int64_t hi) { return lo + int64_t(below(uint64_t(hi - lo) + 1)); }
  bool coin() { return (next() >> 63) != 0; }

 private:
  uint64_t m_state;
};

// ---- geometry -------------------------------------------------------------------------------

// Unit vectors at -90 + k * 180 / n degrees, in Q14 (rounded): star tips (even k) and notches.
constexpr int32_t kStar5[10][2] = {{0, -16384},     {9630, -13255},  {15582, -5063},
                                   {15582, 5063},   {9630, 13255},   {0, 16384},
                                   {-9630, 13255},  {-15582, 5063},  {-15582, -5063},
                                   {-9630, -13255}};
constexpr int32_t kStar6[12][2] = {{0, -16384},     {8192, -14189},  {14189, -8192},
                                   {16384, 0},      {14189, 8192},   {8192, 14189},
                                   {0, 16384},      {-8192, 14189},  {-14189, 8192},
                                   {-16384, 0},     {-14189, -8192}, {-8192, -14189}};

struct Point {
  int64_t x, y;
};

// Even-odd rule, exact: an edge (a, b) crossing the horizontal line through p counts if p is
// left of it; the comparison is a cross product in integers.
bool inside_polygon(const std::vector<Point>& poly, int64_t px, int64_t py) {
  bool inside = false;
  for (std::size_t i = 0, j = poly.size() - 1; i < poly.size(); j = i++) {
    const Point& a = poly[i];
    const Point& b = poly[j];
    if ((a.y > py) != (b.y > py)) {
      // p is left of the crossing x iff (px - a.x) * (b.y - a.y) < (b.x - a.x) * (py - a.y)
      // when b.y > a.y; the inequality flips otherwise.
      const i128 lhs = i128(px - a.x) * (b.y - a.y);
      const i128 rhs = i128(b.x - a.x) * (py - a.y);
      if (b.y > a.y ? lhs < rhs : lhs > rhs) inside = !inside;
    }
  }
  return inside;
}

// The inside test of one shape in its local frame (lx, ly in 1/1024 px).
class ShapeTest {
 public:
  explicit ShapeTest(const ShapeGeometry& g) : m_g(g) {
    const int64_t rx = g.rx, ry = g.ry;
    if (g.cls == ShapeClass::triangle) {
      const int64_t flip = g.points ? -1 : 1;
      m_poly = {{g.param_q10 * rx / 1024, -ry * flip}, {-rx, ry * flip}, {rx, ry * flip}};
    } else if (g.cls == ShapeClass::star) {
      const int n = g.points == 6 ? 6 : 5;
      for (int k = 0; k < 2 * n; ++k) {
        const int32_t* u = n == 6 ? kStar6[k] : kStar5[k];
        const int64_t r = k % 2 == 0 ? 1024 : g.param_q10;  // tips at radius 1, notches inner
        m_poly.push_back({u[0] * r * rx / (16384 * 1024), u[1] * r * ry / (16384 * 1024)});
      }
    }
  }

  bool operator()(int64_t lx, int64_t ly) const {
    const int64_t rx = m_g.rx, ry = m_g.ry;
    const int64_t ax = lx < 0 ? -lx : lx, ay = ly < 0 ? -ly : ly;
    switch (m_g.cls) {
      case ShapeClass::circle:  // u^2 + v^2 <= 1
        return ellipse_value(lx, ly) <= i128(rx) * rx * ry * ry;
      case ShapeClass::square:  // |u| <= 1 and |v| <= 1
        return ax <= rx && ay <= ry;
      case ShapeClass::cross: {  // (|u| <= 1 and |v| <= w) or (|u| <= w and |v| <= 1)
        const int64_t w = m_g.param_q10;
        return (ax <= rx && ay * 1024 <= ry * w) || (ax * 1024 <= rx * w && ay <= ry);
      }
      case ShapeClass::ring: {  // r^2 <= u^2 + v^2 <= 1
        const i128 e = ellipse_value(lx, ly), one = i128(rx) * rx * ry * ry;
        const int64_t r = m_g.param_q10;
        return e <= one && e * (1024 * 1024) >= one * (r * r);
      }
      case ShapeClass::triangle:
      case ShapeClass::star:
        return inside_polygon(m_poly, lx, ly);
    }
    return false;
  }

 private:
  // u^2 + v^2 scaled by rx^2 ry^2: lx^2 ry^2 + ly^2 rx^2.
  i128 ellipse_value(int64_t lx, int64_t ly) const {
    return i128(lx) * lx * m_g.ry * m_g.ry + i128(ly) * ly * m_g.rx * m_g.rx;
  }

  ShapeGeometry m_g;
  std::vector<Point> m_poly;
};

// Half extents (1/1024 px) of the axis-aligned box around the rotated frame.
std::array<int64_t, 2> frame_extent(const ShapeGeometry& g) {
  const int64_t c = g.cos_q30 < 0 ? -g.cos_q30 : g.cos_q30;
  const int64_t s = g.sin_q30 < 0 ? -g.sin_q30 : g.sin_q30;
  return {((c * g.rx + s * g.ry) >> 30) + 2, ((s * g.rx + c * g.ry) >> 30) + 2};
}

// Sample counts (0..16) over a w x h image; also says whether any inside sample fell outside.
std::vector<uint8_t> rasterize(const ShapeGeometry& g, int32_t w, int32_t h, bool* outside) {
  std::vector<uint8_t> cov(std::size_t(w) * std::size_t(h), 0);
  const ShapeTest test(g);
  const auto [ex, ey] = frame_extent(g);
  // floor division for possibly negative coordinates
  const auto pix = [](int64_t q) { return q >= 0 ? q / 1024 : -((-q + 1023) / 1024); };
  const int64_t px0 = pix(g.cx - ex), px1 = pix(g.cx + ex);
  const int64_t py0 = pix(g.cy - ey), py1 = pix(g.cy + ey);
  bool out = false;
  for (int64_t py = py0; py <= py1; ++py) {
    for (int64_t px = px0; px <= px1; ++px) {
      int count = 0;
      for (int j = 0; j < 4; ++j) {
        const int64_t dy = py * 1024 + 256 * j + 128 - g.cy;
        for (int i = 0; i < 4; ++i) {
          const int64_t dx = px * 1024 + 256 * i + 128 - g.cx;
          const int64_t lx = (g.cos_q30 * dx + g.sin_q30 * dy) >> 30;
          const int64_t ly = (-g.sin_q30 * dx + g.cos_q30 * dy) >> 30;
          count += test(lx, ly);
        }
      }
      if (count == 0) continue;
      if (px < 0 || py < 0 || px >= w || py >= h) {
        out = true;
        continue;
      }
      cov[std::size_t(py) * std::size_t(w) + std::size_t(px)] = uint8_t(count);
    }
  }
  if (outside) *outside = out;
  return cov;
}

// Tight box (x0, y0, x1, y1 exclusive) of mask pixels; {0,0,0,0} if empty.
std::array<int32_t, 4> tight_box(const std::vector<uint8_t>& mask, int32_t w, int32_t h) {
  int32_t x0 = w, y0 = h, x1 = -1, y1 = -1;
  for (int32_t y = 0; y < h; ++y) {
    const uint8_t* row = mask.data() + std::size_t(y) * std::size_t(w);
    for (int32_t x = 0; x < w; ++x) {
      if (!row[x]) continue;
      x0 = std::min(x0, x);
      x1 = std::max(x1, x);
      y0 = std::min(y0, y);
      y1 = std::max(y1, y);
    }
  }
  if (x1 < 0) return {0, 0, 0, 0};
  return {x0, y0, x1 + 1, y1 + 1};
}

// Size (longest frame side, px) with probability proportional to 1 / size (log-uniform),
// from an integer cumulative table.
class SizeTable {
 public:
  SizeTable(int32_t lo, int32_t hi) : m_lo(lo) {
    uint64_t total = 0;
    for (int32_t s = lo; s <= hi; ++s) {
      total += (uint64_t(1) << 32) / uint64_t(s);
      m_cumulative.push_back(total);
    }
  }
  int32_t draw(Rng& rng) const {
    const uint64_t r = rng.below(m_cumulative.back());
    const auto it = std::upper_bound(m_cumulative.begin(), m_cumulative.end(), r);
    return m_lo + int32_t(it - m_cumulative.begin());
  }

 private:
  int32_t m_lo;
  std::vector<uint64_t> m_cumulative;
};

int32_t effective_max_size(const ShapesOptions& o) {
  return o.max_size > 0 ? o.max_size : std::min(o.width, o.height) / 2;
}

void check_options(const ShapesOptions& o) {
  DRCNN_CHECK(o.width >= 16 && o.height >= 16 && o.width <= 8192 && o.height <= 8192,
              "shapes: image size must be in 16..8192, got ", o.width, " x ", o.height);
  DRCNN_CHECK(o.train_images >= 0 && o.val_images >= 0,
              "shapes: image counts must be >= 0, got train ", o.train_images, " val ",
              o.val_images);
  DRCNN_CHECK(o.min_objects >= 1 && o.min_objects <= o.max_objects && o.max_objects <= 100,
              "shapes: need 1 <= min_objects <= max_objects <= 100, got ", o.min_objects, " and ",
              o.max_objects);
  const int32_t max_size = effective_max_size(o);
  DRCNN_CHECK(o.min_size >= 4 && o.min_size <= max_size && max_size <= std::min(o.width, o.height),
              "shapes: need 4 <= min_size <= max_size <= min(width, height), got min_size ",
              o.min_size, ", max_size ", max_size, " for ", o.width, " x ", o.height);
  DRCNN_CHECK(o.max_aspect_q10 >= 1024 && o.max_aspect_q10 <= 8 * 1024,
              "shapes: max_aspect_q10 must be in 1024..8192 (aspect 1..8), got ", o.max_aspect_q10);
  DRCNN_CHECK(o.min_visible_q10 >= 1 && o.min_visible_q10 <= 1024,
              "shapes: min_visible_q10 must be in 1..1024, got ", o.min_visible_q10);
  DRCNN_CHECK(o.max_noise >= 0 && o.max_noise <= 128 && o.background_amplitude >= 0 &&
                  o.background_amplitude <= 128,
              "shapes: max_noise and background_amplitude must be in 0..128, got ", o.max_noise,
              " and ", o.background_amplitude);
  DRCNN_CHECK(o.overlap_q10 >= 0 && o.overlap_q10 <= 1024,
              "shapes: overlap_q10 must be in 0..1024, got ", o.overlap_q10);
  DRCNN_CHECK(o.min_contrast >= 0 && o.min_contrast <= 380,
              "shapes: min_contrast must be in 0..380, got ", o.min_contrast);
}

uint8_t clamp8(int64_t v) { return uint8_t(std::clamp<int64_t>(v, 0, 255)); }

// Background: base colour plus one of flat, linear gradient, stripes, smooth blotches.
void draw_background(Image& im, Rng& rng, const ShapesOptions& o, std::array<int32_t, 3> base) {
  const int32_t w = im.width, h = im.height;
  const int64_t amp = o.background_amplitude == 0 ? 0 : rng.range(o.background_amplitude / 4, o.background_amplitude);
  std::array<int64_t, 3> delta{};
  for (auto& d : delta) d = rng.range(-amp, amp);
  const int kind = int(rng.below(4));
  if (kind == 0) {  // flat
    for (int32_t y = 0; y < h; ++y)
      for (int32_t x = 0; x < w; ++x)
        for (int c = 0; c < 3; ++c) im.pixel(y, x)[c] = clamp8(base[c]);
  } else if (kind == 1) {  // gradient along (gx, gy)
    int64_t gx = 0, gy = 0;
    while (gx == 0 && gy == 0) {
      gx = rng.range(-16, 16);
      gy = rng.range(-16, 16);
    }
    const int64_t corners[4] = {0, gx * (w - 1), gy * (h - 1), gx * (w - 1) + gy * (h - 1)};
    const int64_t pmin = *std::min_element(corners, corners + 4);
    const int64_t span = *std::max_element(corners, corners + 4) - pmin;
    for (int32_t y = 0; y < h; ++y)
      for (int32_t x = 0; x < w; ++x) {
        const int64_t t2 = 2 * (gx * x + gy * y - pmin) - span;  // in [-span, span]
        for (int c = 0; c < 3; ++c) im.pixel(y, x)[c] = clamp8(base[c] + t2 * delta[c] / span);
      }
  } else if (kind == 2) {  // stripes
    const int64_t period = rng.range(3, 24);
    static constexpr int64_t dirs[4][2] = {{1, 0}, {0, 1}, {1, 1}, {1, -1}};
    const int64_t* d = dirs[rng.below(4)];
    const int64_t offset = rng.range(0, 2 * period) + 2 * int64_t(w + h);  // keeps it >= 0
    for (int32_t y = 0; y < h; ++y)
      for (int32_t x = 0; x < w; ++x) {
        const bool odd = ((d[0] * x + d[1] * y + offset) / period) % 2 != 0;
        for (int c = 0; c < 3; ++c) im.pixel(y, x)[c] = clamp8(base[c] + (odd ? delta[c] : -delta[c]));
      }
  } else {  // blotches: random values on a coarse grid, bilinear in integers
    const int64_t g = rng.range(12, 64);
    const int64_t gw = w / g + 2, gh = h / g + 2;
    std::vector<int64_t> nodes(std::size_t(gw * gh * 3));
    for (auto& v : nodes) v = rng.range(-amp, amp);
    const auto node = [&](int64_t gxi, int64_t gyi, int c) { return nodes[std::size_t((gyi * gw + gxi) * 3 + c)]; };
    for (int32_t y = 0; y < h; ++y)
      for (int32_t x = 0; x < w; ++x) {
        const int64_t ix = x / g, iy = y / g, fx = x % g, fy = y % g;
        for (int c = 0; c < 3; ++c) {
          const int64_t v = node(ix, iy, c) * (g - fx) * (g - fy) + node(ix + 1, iy, c) * fx * (g - fy) +
                            node(ix, iy + 1, c) * (g - fx) * fy + node(ix + 1, iy + 1, c) * fx * fy;
          im.pixel(y, x)[c] = clamp8(base[c] + v / (g * g));
        }
      }
  }
}

// Draws the geometry of one candidate object (class, size, stretch, rotation, shape parameter,
// position inside the image). false if the image is too small for the drawn size.
// With probability overlap_q10 / 1024 (and once some object is placed) the centre is drawn near
// a placed object's box, so that overlaps are common rather than chance events.
bool draw_geometry(ShapeGeometry& g, Rng& rng, const ShapesOptions& o, const SizeTable& sizes,
                   const std::vector<std::array<int32_t, 4>>& placed_boxes) {
  g.cls = ShapeClass(rng.below(kNumShapeClasses));
  const int64_t size = sizes.draw(rng);
  // Circles and squares: half exact (aspect 1, axis-aligned squares), half stretched and
  // rotated (ellipses, rectangles). Other classes: stretched up to half the maximum aspect.
  const bool plain = (g.cls == ShapeClass::circle || g.cls == ShapeClass::square) && rng.coin();
  const int64_t max_aspect = (g.cls == ShapeClass::circle || g.cls == ShapeClass::square)
                                 ? o.max_aspect_q10
                                 : (1024 + o.max_aspect_q10) / 2;
  const int64_t aspect = plain ? 1024 : rng.range(1024, max_aspect);
  g.rx = size * 512;  // half of the long side, 1/1024 px
  g.ry = std::max<int64_t>(g.rx * 1024 / aspect, std::min<int64_t>(g.rx, 3 * 1024));
  if (rng.coin()) std::swap(g.rx, g.ry);
  // Rotation from the rational parametrisation t = k / 4096 = tan(theta / 2), theta in
  // [-90, 90] degrees: cos = (1 - t^2) / (1 + t^2), sin = 2t / (1 + t^2), exact up to rounding.
  const bool axis_aligned = plain && g.cls == ShapeClass::square;
  const int64_t k = axis_aligned ? 0 : rng.range(-4096, 4096);
  const int64_t T = 4096, den = T * T + k * k;
  g.cos_q30 = ((T * T - k * k) << 30) / den;
  g.sin_q30 = ((2 * k * T) << 30) / den;
  switch (g.cls) {
    case ShapeClass::triangle:
      g.param_q10 = int32_t(rng.range(-512, 512));  // apex offset
      g.points = rng.coin() ? 1 : 0;                // flipped: apex down (with theta: any direction)
      break;
    case ShapeClass::cross: g.param_q10 = int32_t(rng.range(225, 410)); break;
    case ShapeClass::ring: g.param_q10 = int32_t(rng.range(460, 720)); break;
    case ShapeClass::star:
      g.param_q10 = int32_t(rng.range(390, 560));
      g.points = rng.coin() ? 6 : 5;
      break;
    default: g.param_q10 = 0; g.points = 0; break;
  }
  const auto [ex, ey] = frame_extent(g);
  const int64_t wq = int64_t(o.width) * 1024, hq = int64_t(o.height) * 1024;
  if (2 * ex >= wq || 2 * ey >= hq) return false;
  int64_t x_lo = ex, x_hi = wq - ex, y_lo = ey, y_hi = hq - ey;
  if (!placed_boxes.empty() && int64_t(rng.below(1024)) < o.overlap_q10) {
    // Centre within the chosen box grown by half the new shape's extent: the shapes overlap
    // or nearly touch. The occlusion rule then accepts or rejects the candidate.
    const auto& b = placed_boxes[rng.below(placed_boxes.size())];
    x_lo = std::max(x_lo, int64_t(b[0]) * 1024 - ex / 2);
    x_hi = std::min(x_hi, int64_t(b[2]) * 1024 + ex / 2);
    y_lo = std::max(y_lo, int64_t(b[1]) * 1024 - ey / 2);
    y_hi = std::min(y_hi, int64_t(b[3]) * 1024 + ey / 2);
    if (x_lo > x_hi || y_lo > y_hi) return false;
  }
  g.cx = rng.range(x_lo, x_hi);
  g.cy = rng.range(y_lo, y_hi);
  return true;
}

std::array<uint8_t, 3> draw_color(Rng& rng, const ShapesOptions& o, std::array<int32_t, 3> base) {
  std::array<uint8_t, 3> col{};
  for (int attempt = 0; attempt < 64; ++attempt) {
    int64_t dist = 0;
    for (int c = 0; c < 3; ++c) {
      col[c] = uint8_t(rng.below(256));
      dist += std::abs(int64_t(col[c]) - base[c]);
    }
    if (dist >= o.min_contrast) return col;
  }
  for (int c = 0; c < 3; ++c) col[c] = uint8_t(base[c] < 128 ? 255 : 0);  // the far corner
  return col;
}

struct Placed {
  ShapeObject object;
  std::vector<uint8_t> coverage;  // 0..16 per pixel
  std::vector<uint8_t> visible;   // 1 where coverage > 8 and no later shape covers it
  int64_t visible_count = 0;
};

}  // namespace

std::vector<uint8_t> rasterize_shape(const ShapeGeometry& geometry, int32_t width, int32_t height) {
  DRCNN_CHECK(width > 0 && height > 0, "rasterize_shape: size must be positive, got ", width,
              " x ", height);
  DRCNN_CHECK(geometry.rx > 0 && geometry.ry > 0, "rasterize_shape: radii must be positive, got ",
              geometry.rx, " and ", geometry.ry);
  return rasterize(geometry, width, height, nullptr);
}

ShapesImage generate_shapes_image(const ShapesOptions& o, ShapesSplit split, int64_t index,
                                  bool keep_masks) {
  check_options(o);
  DRCNN_CHECK(index >= 0, "generate_shapes_image: index must be >= 0, got ", index);
  const int32_t w = o.width, h = o.height;
  Rng rng(splitmix64(splitmix64(splitmix64(o.seed) ^ uint64_t(split)) ^ uint64_t(index)));
  const SizeTable sizes(o.min_size, effective_max_size(o));

  ShapesImage out;
  out.image = Image(w, h);
  std::array<int32_t, 3> base{};
  for (auto& b : base) b = int32_t(rng.below(256));
  draw_background(out.image, rng, o, base);

  const int64_t wanted = rng.range(o.min_objects, o.max_objects);
  std::vector<Placed> placed;
  std::vector<std::array<int32_t, 4>> boxes;
  for (int64_t n = 0; n < wanted; ++n) {
    for (int attempt = 0; attempt < 50; ++attempt) {
      ShapeGeometry g;
      if (!draw_geometry(g, rng, o, sizes, boxes)) continue;
      bool outside = false;
      std::vector<uint8_t> cov = rasterize(g, w, h, &outside);
      if (outside) continue;  // cannot happen by the placement margin; kept as a guard
      std::vector<uint8_t> mask(cov.size());
      int64_t count = 0;
      for (std::size_t i = 0; i < cov.size(); ++i) {
        mask[i] = cov[i] > 8;
        count += mask[i];
      }
      if (count < 6) continue;  // a shape of a few pixels has no meaningful class
      // Occlusion rule: every earlier object keeps min_visible of its pixels and its box.
      bool ok = true;
      for (const Placed& p : placed) {
        int64_t hidden = 0;
        for (std::size_t i = 0; i < mask.size(); ++i) hidden += p.visible[i] & mask[i];
        if (hidden == 0) continue;
        if ((p.visible_count - hidden) * 1024 < int64_t(o.min_visible_q10) * p.object.full_area) {
          ok = false;
          break;
        }
        std::vector<uint8_t> remaining(mask.size());
        for (std::size_t i = 0; i < mask.size(); ++i) remaining[i] = p.visible[i] & !mask[i];
        if (tight_box(remaining, w, h) != p.object.box) {
          ok = false;
          break;
        }
      }
      if (!ok) continue;
      for (Placed& p : placed) {
        for (std::size_t i = 0; i < mask.size(); ++i) {
          if (p.visible[i] && mask[i]) {
            p.visible[i] = 0;
            --p.visible_count;
          }
        }
      }
      Placed q;
      q.object.geometry = g;
      q.object.label = int32_t(g.cls);
      q.object.full_area = count;
      q.object.box = tight_box(mask, w, h);
      q.object.color = draw_color(rng, o, base);
      q.coverage = std::move(cov);
      q.visible = std::move(mask);
      q.visible_count = count;
      boxes.push_back(q.object.box);
      placed.push_back(std::move(q));
      break;
    }
  }

  // Composite in order with anti-aliased edges: alpha = sample count / 16.
  for (const Placed& p : placed) {
    for (int32_t y = 0; y < h; ++y)
      for (int32_t x = 0; x < w; ++x) {
        const int a = p.coverage[std::size_t(y) * std::size_t(w) + std::size_t(x)];
        if (a == 0) continue;
        uint8_t* px = out.image.pixel(y, x);
        for (int c = 0; c < 3; ++c) px[c] = uint8_t((px[c] * (16 - a) + p.object.color[c] * a + 8) / 16);
      }
  }
  // Sensor-like noise over everything.
  const int64_t noise = rng.range(0, o.max_noise);
  if (noise > 0) {
    for (uint8_t& v : out.image.pixels) v = clamp8(int64_t(v) + rng.range(-noise, noise));
  }
  for (Placed& p : placed) {
    p.object.area = p.visible_count;
    if (keep_masks) p.object.coverage = std::move(p.coverage);
    out.objects.push_back(std::move(p.object));
  }
  return out;
}

void generate_shapes_dataset(const ShapesOptions& o, const std::filesystem::path& out_dir) {
  check_options(o);
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(out_dir / "annotations", ec);
  DRCNN_CHECK(!ec, "generate_shapes_dataset: cannot create ", (out_dir / "annotations").string(),
              ": ", ec.message());
  const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  const int32_t threads = o.threads > 0 ? o.threads : int32_t(hw);

  for (const auto& entry : {std::tuple{ShapesSplit::train, "train", o.train_images},
                            std::tuple{ShapesSplit::val, "val", o.val_images}}) {
    const ShapesSplit split = std::get<0>(entry);
    const std::string name = std::get<1>(entry);
    const int32_t count = std::get<2>(entry);
    const fs::path dir = out_dir / name;
    fs::create_directories(dir, ec);
    DRCNN_CHECK(!ec, "generate_shapes_dataset: cannot create ", dir.string(), ": ", ec.message());
    std::vector<std::vector<ShapeObject>> objects(static_cast<std::size_t>(count));
    std::atomic<int32_t> next{0};
    std::exception_ptr error;
    std::mutex error_mutex;
    const auto work = [&] {
      for (int32_t i = next++; i < count; i = next++) {
        try {
          ShapesImage im = generate_shapes_image(o, split, i);
          write_png(dir / fmt::format("{:06d}.png", i), im.image);
          objects[std::size_t(i)] = std::move(im.objects);
        } catch (...) {
          const std::lock_guard<std::mutex> lock(error_mutex);
          if (!error) error = std::current_exception();
          next = count;
        }
      }
    };
    std::vector<std::thread> pool;
    for (int32_t t = 1; t < std::min(threads, std::max(count, 1)); ++t) pool.emplace_back(work);
    work();
    for (auto& t : pool) t.join();
    if (error) std::rethrow_exception(error);

    nlohmann::ordered_json j;
    j["info"] = {{"description", "drcnn synthetic shapes"},
                 {"generator", "drcnn::data::generate_shapes_dataset"},
                 {"seed", o.seed},
                 {"split", name}};
    j["images"] = nlohmann::ordered_json::array();
    j["annotations"] = nlohmann::ordered_json::array();
    j["categories"] = nlohmann::ordered_json::array();
    for (int32_t c = 0; c < kNumShapeClasses; ++c) {
      j["categories"].push_back({{"id", c + 1}, {"name", shape_class_names()[std::size_t(c)]},
                                 {"supercategory", "shape"}});
    }
    int64_t ann_id = 1;
    for (int32_t i = 0; i < count; ++i) {
      j["images"].push_back({{"id", i + 1}, {"file_name", fmt::format("{:06d}.png", i)},
                             {"width", o.width}, {"height", o.height}});
      for (const ShapeObject& obj : objects[std::size_t(i)]) {
        const auto& b = obj.box;
        j["annotations"].push_back(
            {{"id", ann_id++},
             {"image_id", i + 1},
             {"category_id", obj.label + 1},
             {"bbox", {double(b[0]), double(b[1]), double(b[2] - b[0]), double(b[3] - b[1])}},
             {"area", double(obj.area)},
             {"iscrowd", 0}});
      }
    }
    const std::string text = j.dump();
    write_file_atomically(out_dir / "annotations" / fmt::format("instances_{}.json", name),
                          std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()),
                          "generate_shapes_dataset");
  }
}

}  // namespace drcnn::data
