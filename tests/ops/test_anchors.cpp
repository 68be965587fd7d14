// Anchor generator (include/drcnn/ops/anchors.h): the spec B.4 base-anchor table, float32
// values bit-identical to mmdet/torch (hex literals printed by tools/golden_anchors.py, and an
// mmdet-order float32 recomputation written here), a hand-computed grid, the 800x1344 size
// check, valid flags of an image smaller than the batch, the float64 reference of
// tests/reference/anchors_ref.h and every bad input. DRCNN_ANCHOR_REPORT=1 prints max errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "common/allclose.h"
#include "drcnn/ops/anchors.h"
#include "reference/anchors_ref.h"

using Catch::Contains;
using drcnn::DType;
using drcnn::Tensor;
using drcnn::test::compare_close;
using drcnn::test::expect_allclose;
using drcnn::test::expect_equal;
namespace ops = drcnn::ops;
namespace ref = drcnn::ref;

namespace {
std::vector<double> values(const Tensor& t) { return drcnn::test::strided_values(t); }

ref::AnchorRefLevel ref_level(const ops::AnchorConfig& c, size_t level) {
  ref::AnchorRefLevel lv;
  lv.stride = double(c.strides[level]);
  lv.base = c.base_sizes.empty() ? lv.stride : c.base_sizes[level];
  lv.center_offset = c.center_offset;
  lv.ratios = c.ratios;
  lv.scales = c.scales;
  lv.scale_major = c.scale_major;
  return lv;
}

/// The feature sizes of a padded input: ceil(size / stride) per level.
std::vector<ops::FeatureSize> feature_sizes(const ops::AnchorConfig& c, int64_t h, int64_t w) {
  std::vector<ops::FeatureSize> out;
  for (int64_t s : c.strides) out.push_back({(h + s - 1) / s, (w + s - 1) / s});
  return out;
}

/// mmdet's float32 base anchor, recomputed here in the order torch evaluates
/// gen_single_level_base_anchors (each step rounded to float).
void mmdet_f32_base(float base, float ratio, float scale, float center, bool scale_major, float* out) {
  const float hr = std::sqrt(ratio);
  const float wr = 1.0f / hr;
  float w, h;
  if (scale_major) {
    w = (base * wr) * scale;
    h = (base * hr) * scale;
  } else {
    w = (base * scale) * wr;
    h = (base * scale) * hr;
  }
  const float hw = 0.5f * w, hh = 0.5f * h;
  out[0] = center - hw;
  out[1] = center - hh;
  out[2] = center + hw;
  out[3] = center + hh;
}

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

/// Exact (bitwise) comparison of a float32 tensor with expected floats.
void require_bits(const Tensor& t, const std::vector<float>& expected) {
  REQUIRE(t.dtype() == DType::Float32);
  const auto v = t.contiguous().to_vector<float>();
  REQUIRE(v.size() == expected.size());
  int bad = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    if (bits(v[i]) != bits(expected[i])) {
      if (++bad <= 5) UNSCOPED_INFO("element " << i << ": got " << v[i] << " expected " << expected[i]);
    }
  }
  CHECK(bad == 0);
}

void report(const char* what, const drcnn::test::CloseReport& r) {
  if (std::getenv("DRCNN_ANCHOR_REPORT")) std::printf("%s: %s\n", what, r.text.c_str());
  INFO(what << ": " << r.text);
  CHECK(r.mismatches == 0);
}
}  // namespace

// ============================================================================ spec B.4 table
TEST_CASE("ops/anchors: base anchors of P2..P6 match the spec B.4 MMDET column", "[ops][cpu][anchors]") {
  // The table's values, to the 3 decimals it gives (so atol 5e-4 + rounding slack 1e-6).
  const double table[5][3][4] = {
      {{-22.627, -11.314, 22.627, 11.314}, {-16, -16, 16, 16}, {-11.314, -22.627, 11.314, 22.627}},
      {{-45.255, -22.627, 45.255, 22.627}, {-32, -32, 32, 32}, {-22.627, -45.255, 22.627, 45.255}},
      {{-90.510, -45.255, 90.510, 45.255}, {-64, -64, 64, 64}, {-45.255, -90.510, 45.255, 90.510}},
      {{-181.019, -90.510, 181.019, 90.510}, {-128, -128, 128, 128}, {-90.510, -181.019, 90.510, 181.019}},
      {{-362.039, -181.019, 362.039, 181.019}, {-256, -256, 256, 256}, {-181.019, -362.039, 181.019, 362.039}}};
  const ops::AnchorConfig c;  // defaults: the Dynamic R-CNN RPN anchors
  REQUIRE(c.anchors_per_location() == 3);
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (int64_t lvl = 0; lvl < 5; ++lvl) {
      const Tensor b = ops::base_anchors(c, lvl, dt);
      REQUIRE(b.shape() == drcnn::Shape{3, 4});
      std::vector<double> e(&table[lvl][0][0], &table[lvl][0][0] + 12);
      expect_allclose(b, e, 0.0, 5e-4 + 1e-6);
    }
  }
}

TEST_CASE("ops/anchors: float32 base anchors are bit-identical to mmdet in torch", "[ops][cpu][anchors]") {
  // Printed by `/usr/bin/python3 tools/golden_anchors.py --hex` (torch 1.13, float32), which
  // re-implements mmdet v2's gen_single_level_base_anchors. s2 = float32(sqrt(2)) = 0x1.6a09e6p0.
  const float s2 = 0x1.6a09e6p+0f;
  const ops::AnchorConfig c;
  for (int64_t lvl = 0; lvl < 5; ++lvl) {
    const float u = float(int64_t(8) << lvl);  // 8 * 2^lvl: half the square anchor's side / 2
    // ratio 0.5: w = 32 * 2^lvl / sqrt(0.5) ... = (2u * s2, u * s2) half-extents; the torch hex
    // values are exactly these products (powers of two times s2).
    const std::vector<float> e = {-2 * u * s2, -u * s2, 2 * u * s2, u * s2,  //
                                  -2 * u,      -2 * u,  2 * u,      2 * u,   //
                                  -u * s2,     -2 * u * s2, u * s2, 2 * u * s2};
    require_bits(ops::base_anchors(c, lvl), e);
  }
  // P2 literally as printed: -0x1.6a09e6p+4 etc.
  require_bits(ops::base_anchors(c, 0), {-0x1.6a09e6p+4f, -0x1.6a09e6p+3f, 0x1.6a09e6p+4f, 0x1.6a09e6p+3f,  //
                                         -16, -16, 16, 16,                                                  //
                                         -0x1.6a09e6p+3f, -0x1.6a09e6p+4f, 0x1.6a09e6p+3f, 0x1.6a09e6p+4f});
}

TEST_CASE("ops/anchors: non-trivial rounding configurations are bit-identical to torch", "[ops][cpu][anchors]") {
  // tools/golden_anchors.py: strides [16], ratios (0.5, 1, 2), scales (4, 8), base 13.5,
  // center_offset 0.5, scale_major false; and strides [8], ratios (0.3, 0.7, 1.9), scales
  // (3, 5.5), base 11, center_offset 0.25, scale_major true.
  ops::AnchorConfig c1;
  c1.strides = {16};
  c1.scales = {4, 8};
  c1.base_sizes = {13.5};
  c1.center_offset = 0.5;
  c1.scale_major = false;
  require_bits(ops::base_anchors(c1, 0),
               {-0x1.f6f0b4p+4f, -0x1.8af0b4p+3f, 0x1.67785ap+5f, 0x1.9d785ap+4f,  //
                -0x1.44p+4f,     -0x1.44p+4f,     0x1.0ep+5f,     0x1.0ep+5f,      //
                -0x1.8af0b4p+3f, -0x1.f6f0b4p+4f, 0x1.9d785ap+4f, 0x1.67785ap+5f,  //
                -0x1.16785ap+6f, -0x1.f6f0b4p+4f, 0x1.4c785ap+6f, 0x1.67785ap+5f,  //
                -0x1.7ap+5f,     -0x1.7ap+5f,     0x1.e6p+5f,     0x1.e6p+5f,      //
                -0x1.f6f0b4p+4f, -0x1.16785ap+6f, 0x1.67785ap+5f, 0x1.4c785ap+6f});
  // Last 6 rows (cell y = 2, x = 1) of its 3 x 2 grid (torch single_level_grid_priors).
  const Tensor g = ops::grid_anchors(c1, {{3, 2}})[0];
  REQUIRE(g.shape() == drcnn::Shape{36, 4});
  require_bits(g.narrow(0, 30, 6),
               {-0x1.ede168p+3f, 0x1.3a87a6p+4f,  0x1.e7785ap+5f, 0x1.cebc2cp+5f,  //
                -0x1.1p+2f,      0x1.78p+3f,      0x1.8ep+5f,     0x1.07p+6f,      //
                0x1.d43d3p+1f,   0x1.21e98p-1f,   0x1.4ebc2cp+5f, 0x1.33bc2cp+6f,  //
                -0x1.acf0b4p+5f, 0x1.21e98p-1f,   0x1.8c785ap+6f, 0x1.33bc2cp+6f,  //
                -0x1.f4p+4f,     -0x1.e8p+3f,     0x1.33p+6f,     0x1.73p+6f,      //
                -0x1.ede168p+3f, -0x1.2cf0b4p+5f, 0x1.e7785ap+5f, 0x1.cc785ap+6f});
  ops::AnchorConfig c2;
  c2.strides = {8};
  c2.ratios = {0.3, 0.7, 1.9};
  c2.scales = {3, 5.5};
  c2.base_sizes = {11};
  c2.center_offset = 0.25;
  require_bits(ops::base_anchors(c2, 0),
               {-0x1.b5fef0p+4f, -0x1.926520p+2f, 0x1.06ff78p+5f, 0x1.793290p+3f,  //
                -0x1.a3d45cp+5f, -0x1.ba3208p+3f, 0x1.cfd45cp+5f, 0x1.351904p+4f,  //
                -0x1.0f8a54p+4f, -0x1.61c1aap+3f, 0x1.678a54p+4f, 0x1.08e0d4p+4f,  //
                -0x1.0b3eccp+5f, -0x1.68f186p+4f, 0x1.373eccp+5f, 0x1.c0f186p+4f,  //
                -0x1.270d2cp+3f, -0x1.3fe61ep+4f, 0x1.d70d2cp+3f, 0x1.97e61ep+4f,  //
                -0x1.33216ap+4f, -0x1.3792f0p+5f, 0x1.8b216ap+4f, 0x1.6392f0p+5f});
}

TEST_CASE("ops/anchors: float32 grids equal an mmdet-order float32 recomputation bit for bit", "[ops][cpu][anchors]") {
  // Many configurations (ratios, scales, base sizes, offsets, both orders); the expected
  // values are computed in this test with mmdet's float32 operation order.
  const std::vector<std::vector<double>> ratio_sets = {{0.5, 1, 2}, {0.25, 0.33, 1.7, 3.1}, {1.3}};
  const std::vector<std::vector<double>> scale_sets = {{8}, {2, 2.5198421, 3.1748021}, {0.7, 11}};
  int configs = 0;
  for (const auto& ratios : ratio_sets) {
    for (const auto& scales : scale_sets) {
      for (double offset : {0.0, 0.5, 0.3}) {
        for (bool major : {true, false}) {
          ops::AnchorConfig c;
          c.strides = {4, 12, 64};
          c.ratios = ratios;
          c.scales = scales;
          c.base_sizes = offset == 0.3 ? std::vector<double>{3.7, 12, 50.1} : std::vector<double>{};
          c.center_offset = offset;
          c.scale_major = major;
          const std::vector<ops::FeatureSize> fs = {{5, 7}, {3, 4}, {2, 1}};
          const auto grids = ops::grid_anchors(c, fs);
          for (size_t lvl = 0; lvl < 3; ++lvl) {
            const double base = c.base_sizes.empty() ? double(c.strides[lvl]) : c.base_sizes[lvl];
            const float center = float(offset * base);
            std::vector<float> e;
            for (int64_t y = 0; y < fs[lvl].height; ++y) {
              for (int64_t x = 0; x < fs[lvl].width; ++x) {
                for (size_t o = 0; o < (major ? ratios.size() : scales.size()); ++o) {
                  for (size_t in = 0; in < (major ? scales.size() : ratios.size()); ++in) {
                    const double r = major ? ratios[o] : ratios[in], s = major ? scales[in] : scales[o];
                    float b[4];
                    mmdet_f32_base(float(base), float(r), float(s), center, major, b);
                    const float sx = float(x * c.strides[lvl]), sy = float(y * c.strides[lvl]);
                    e.insert(e.end(), {b[0] + sx, b[1] + sy, b[2] + sx, b[3] + sy});
                  }
                }
              }
            }
            require_bits(grids[lvl], e);
          }
          ++configs;
        }
      }
    }
  }
  CHECK(configs == 54);
}

// ============================================================================ hand-computed
TEST_CASE("ops/anchors: a 2x3 grid at stride 4 is ordered (y, x, a)", "[ops][cpu][anchors]") {
  ops::AnchorConfig c;
  c.strides = {4};
  for (DType dt : {DType::Float32, DType::Float64}) {
    const Tensor g = ops::grid_anchors(c, {{2, 3}}, dt)[0];
    REQUIRE(g.shape() == drcnn::Shape{18, 4});
    const Tensor b = ops::base_anchors(c, 0, dt);
    const auto bv = values(b), gv = values(g);
    for (int64_t y = 0; y < 2; ++y) {
      for (int64_t x = 0; x < 3; ++x) {
        for (int64_t a = 0; a < 3; ++a) {
          const int64_t row = (y * 3 + x) * 3 + a;
          for (int k = 0; k < 4; ++k) {
            const double shift = (k % 2 == 0) ? 4.0 * double(x) : 4.0 * double(y);
            // The base anchor plus the cell's shift, rounded to the tensor's dtype (as mmdet adds).
            const double e = dt == DType::Float32 ? double(float(bv[size_t(4 * a + k)]) + float(shift))
                                                  : bv[size_t(4 * a + k)] + shift;
            CHECK(gv[size_t(4 * row + k)] == e);
          }
        }
      }
    }
    // Row 16 = (y 1, x 2, a 1): the square anchor (-16, -16, 16, 16) shifted by (8, 4).
    expect_equal(g.narrow(0, 16, 1), {-8, -12, 24, 20});
    // Row 5 = (y 0, x 1, a 2): the tall anchor shifted by (4, 0).
    expect_allclose(g.narrow(0, 5, 1), {-8 * std::sqrt(2.0) + 4, -16 * std::sqrt(2.0), 8 * std::sqrt(2.0) + 4,
                                        16 * std::sqrt(2.0)},
                    0, 1e-5);
  }
}

TEST_CASE("ops/anchors: an 800x1344 padded input has 268569 anchors", "[ops][cpu][anchors]") {
  const ops::AnchorConfig c;
  const auto fs = feature_sizes(c, 800, 1344);
  CHECK(ops::num_anchors(c, fs) == 268569);
  const auto grids = ops::grid_anchors(c, fs);
  const int64_t expected[5] = {201600, 50400, 12600, 3150, 819};
  int64_t total = 0;
  for (size_t i = 0; i < 5; ++i) {
    CHECK(grids[i].shape() == drcnn::Shape{expected[i], 4});
    total += grids[i].size(0);
  }
  CHECK(total == 268569);
  // And every level against the float64 reference. Tolerance: the float32 base anchor carries
  // 4 roundings of values <= 363 (<= 4 * 2^-24 * 363 < 1e-4) and the shifted result one more
  // rounding of a value < 2048 (half-ulp 6.1e-5): 2e-4 absolute bounds both.
  for (size_t i = 0; i < 5; ++i) {
    report("800x1344 f32 vs f64 reference", compare_close(values(grids[i]),
                                                          ref::anchors_level(ref_level(c, i), fs[i].height, fs[i].width),
                                                          0, 2e-4));
  }
}

TEST_CASE("ops/anchors: float64 and float32 grids match the float64 reference", "[ops][cpu][anchors]") {
  ops::AnchorConfig c;
  c.strides = {4, 8, 16, 32, 64, 128};
  c.ratios = {0.25, 0.5, 1, 2, 4};
  c.scales = {4, 5.0396842, 6.3496042};  // RetinaNet-like octave scales
  c.base_sizes = {4, 8, 16, 32, 64, 100};
  c.center_offset = 0.5;
  for (bool major : {true, false}) {
    c.scale_major = major;
    const std::vector<ops::FeatureSize> fs = {{17, 23}, {9, 12}, {5, 6}, {3, 3}, {2, 2}, {1, 1}};
    const auto g64 = ops::grid_anchors(c, fs, DType::Float64);
    const auto g32 = ops::grid_anchors(c, fs, DType::Float32);
    for (size_t i = 0; i < fs.size(); ++i) {
      const auto e = ref::anchors_level(ref_level(c, i), fs[i].height, fs[i].width);
      // f64: a few roundings in a different order than the reference (1/sqrt vs /sqrt):
      // relative 1e-15 of values <= ~1000, so 1e-12 absolute.
      report("f64 vs reference", compare_close(values(g64[i]), e, 0, 1e-12));
      // f32: values <= ~1000: 5 roundings of 2^-24 relative each: 5 * 6e-8 * 1000 = 3e-4.
      report("f32 vs reference", compare_close(values(g32[i]), e, 0, 3e-4));
    }
  }
}

TEST_CASE("ops/anchors: empty feature maps give 0 x 4 anchors", "[ops][cpu][anchors]") {
  ops::AnchorConfig c;
  const auto g = ops::grid_anchors(c, {{0, 5}, {3, 0}, {0, 0}, {1, 1}, {2, 2}});
  CHECK(g[0].shape() == drcnn::Shape{0, 4});
  CHECK(g[1].shape() == drcnn::Shape{0, 4});
  CHECK(g[2].shape() == drcnn::Shape{0, 4});
  CHECK(g[3].shape() == drcnn::Shape{3, 4});
  CHECK(g[4].shape() == drcnn::Shape{12, 4});
  const auto v = ops::anchor_valid_flags(c, {{0, 5}, {3, 0}, {0, 0}, {1, 1}, {2, 2}}, 100, 100);
  CHECK(v[0].numel() == 0);
  CHECK(v[4].numel() == 12);
}

// ============================================================================ valid flags
TEST_CASE("ops/anchors: valid flags of an image smaller than the padded batch", "[ops][cpu][anchors]") {
  const ops::AnchorConfig c;
  const auto fs = feature_sizes(c, 800, 1344);  // the batch's padded size
  // Image padded to 608 x 1024 (600 x 1000 resized, size_divisor 32), and an odd 610 x 1030.
  for (auto [ph, pw] : {std::pair<int64_t, int64_t>{608, 1024}, {610, 1030}, {800, 1344}, {0, 0}, {5000, 9}}) {
    const auto flags = ops::anchor_valid_flags(c, fs, ph, pw);
    REQUIRE(flags.size() == 5);
    for (size_t i = 0; i < 5; ++i) {
      REQUIRE(flags[i].dtype() == DType::Bool);
      const auto e = ref::anchor_valid_level(double(c.strides[i]), 3, fs[i].height, fs[i].width, double(ph), double(pw));
      expect_equal(flags[i], e);
    }
  }
  // Hand count for 608 x 1024 at P2: ceil(608/4) = 152 rows, 256 columns, 3 anchors each.
  // P6: ceil(608/64) = 10 of 13 rows, ceil(1024/64) = 16 of 21 columns.
  const auto flags = ops::anchor_valid_flags(c, fs, 608, 1024);
  auto count = [](const Tensor& t) {
    int64_t n = 0;
    for (double v : values(t)) n += v != 0;
    return n;
  };
  CHECK(count(flags[0]) == 152 * 256 * 3);
  CHECK(count(flags[4]) == 10 * 16 * 3);
  // 610 x 1030: partial cells count (ceil): P2 153 x 258, P6 10 x 17.
  const auto odd = ops::anchor_valid_flags(c, fs, 610, 1030);
  CHECK(count(odd[0]) == 153 * 258 * 3);
  CHECK(count(odd[4]) == 10 * 17 * 3);
  // Anchor (y 151, x 255, a 2) is valid, (y 152, x 0, a 0) is not.
  const auto p2 = values(flags[0]);
  CHECK(p2[size_t((151 * 336 + 255) * 3 + 2)] == 1);
  CHECK(p2[size_t((152 * 336 + 0) * 3 + 0)] == 0);
  CHECK(p2[size_t((0 * 336 + 256) * 3 + 0)] == 0);
}

// ============================================================================ bad inputs
TEST_CASE("ops/anchors: bad configurations and sizes are errors naming the op", "[ops][cpu][anchors]") {
  const ops::AnchorConfig ok;
  const std::vector<ops::FeatureSize> fs5 = {{2, 2}, {1, 1}, {1, 1}, {1, 1}, {1, 1}};
  auto with = [&](auto edit) {
    ops::AnchorConfig c = ok;
    edit(c);
    return c;
  };
  REQUIRE_THROWS_WITH(ops::grid_anchors(with([](auto& c) { c.strides.clear(); }), {}),
                      Contains("grid_anchors: config.strides must have at least one level"));
  REQUIRE_THROWS_WITH(ops::grid_anchors(with([](auto& c) { c.strides[2] = 0; }), fs5),
                      Contains("grid_anchors: config.strides[2] must be > 0, got 0"));
  REQUIRE_THROWS_WITH(ops::grid_anchors(with([](auto& c) { c.ratios = {0.5, -1}; }), fs5),
                      Contains("grid_anchors: config.ratios[1] must be finite and > 0, got -1"));
  REQUIRE_THROWS_WITH(ops::grid_anchors(with([](auto& c) { c.ratios = {NAN}; }), fs5),
                      Contains("config.ratios[0] must be finite and > 0"));
  REQUIRE_THROWS_WITH(ops::grid_anchors(with([](auto& c) { c.ratios.clear(); }), fs5),
                      Contains("grid_anchors: config.ratios must have 1 to 16 entries, got 0"));
  REQUIRE_THROWS_WITH(ops::grid_anchors(with([](auto& c) { c.scales = {0}; }), fs5),
                      Contains("grid_anchors: config.scales[0] must be finite and > 0, got 0"));
  REQUIRE_THROWS_WITH(ops::grid_anchors(with([](auto& c) { c.scales = std::vector<double>(17, 1.0); }), fs5),
                      Contains("config.scales must have 1 to 16 entries, got 17"));
  REQUIRE_THROWS_WITH(ops::grid_anchors(with([](auto& c) { c.base_sizes = {4, 8}; }), fs5),
                      Contains("grid_anchors: config.base_sizes must be empty (= strides) or have one entry per level (5), got 2"));
  REQUIRE_THROWS_WITH(ops::grid_anchors(with([](auto& c) { c.base_sizes = {4, 8, 16, -32, 64}; }), fs5),
                      Contains("config.base_sizes[3] must be finite and > 0, got -32"));
  REQUIRE_THROWS_WITH(ops::grid_anchors(with([](auto& c) { c.center_offset = 1.5; }), fs5),
                      Contains("grid_anchors: config.center_offset must be in [0, 1], got 1.5"));
  REQUIRE_THROWS_WITH(ops::grid_anchors(ok, {{2, 2}}),
                      Contains("grid_anchors: expected one feature size per level (5), got 1"));
  REQUIRE_THROWS_WITH(ops::grid_anchors(ok, {{2, 2}, {1, -1}, {1, 1}, {1, 1}, {1, 1}}),
                      Contains("grid_anchors: feature size of level 1 must be >= 0, got (1, -1)"));
  REQUIRE_THROWS_WITH(ops::grid_anchors(ok, fs5, DType::Int64),
                      Contains("grid_anchors: dtype must be float32 or float64, got int64"));
  REQUIRE_THROWS_WITH(ops::base_anchors(ok, 5), Contains("base_anchors: level must be in [0, 5), got 5"));
  REQUIRE_THROWS_WITH(ops::anchor_valid_flags(ok, fs5, -1, 10),
                      Contains("anchor_valid_flags: padded image size must be >= 0, got (-1, 10)"));
  REQUIRE_THROWS_WITH(ops::anchor_valid_flags(with([](auto& c) { c.strides = {4, -8, 16, 32, 64}; }), fs5, 8, 8),
                      Contains("anchor_valid_flags: config.strides[1] must be > 0, got -8"));
  REQUIRE_THROWS_WITH(ops::num_anchors(ok, {}), Contains("num_anchors: expected one feature size per level (5), got 0"));
}
