// f16 / bf16 conversions (include/drcnn/core/half.h) against hand-computed bit patterns, an
// independent nearest-value search, and exhaustive round trips.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>

#include "common/allclose.h"
#include "drcnn/core/half.h"

using drcnn::BFloat16;
using drcnn::Half;
using drcnn::test::decode_bf16;
using drcnn::test::decode_half;

namespace {
uint16_t h(float f) { return Half(f).bits; }
uint16_t b16(float f) { return BFloat16(f).bits; }
float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
bool half_is_nan(uint16_t b) { return (b & 0x7c00u) == 0x7c00u && (b & 0x3ffu) != 0; }
bool bf16_is_nan(uint16_t b) { return (b & 0x7f80u) == 0x7f80u && (b & 0x7fu) != 0; }

// Reference f32 -> f16 from the definition: the nearest finite half by value (binary search
// over the positive bit patterns, which are ordered like their values), ties to the even bit
// pattern; magnitudes at or beyond 65504 + ulp/2 = 65520 become infinity.
uint16_t reference_half(float f) {
  if (std::isnan(f)) return 0x7e00;  // only NaN-ness is compared for NaNs
  const uint16_t sign = std::signbit(f) ? 0x8000 : 0;
  const double a = std::abs(double(f));
  if (a >= 65520.0) return sign | 0x7c00;
  uint16_t lo = 0, hi = 0x7bff;  // largest b with decode(b) <= a
  while (lo < hi) {
    const uint16_t mid = uint16_t((lo + hi + 1) / 2);
    if (decode_half(mid) <= a) lo = mid;
    else hi = uint16_t(mid - 1);
  }
  if (lo == 0x7bff) return sign | lo;  // a in [65504, 65520)
  const double below = decode_half(lo), above = decode_half(uint16_t(lo + 1));
  const double dl = a - below, du = above - a;
  uint16_t r;
  if (dl < du) r = lo;
  else if (du < dl) r = uint16_t(lo + 1);
  else r = (lo & 1) ? uint16_t(lo + 1) : lo;
  return sign | r;
}
}  // namespace

TEST_CASE("core/half: float to half hand-computed bit patterns", "[core][cpu]") {
  CHECK(h(1.0f) == 0x3C00);
  CHECK(h(-2.0f) == 0xC000);
  CHECK(h(0.5f) == 0x3800);
  CHECK(h(65504.0f) == 0x7BFF);                       // largest finite half
  CHECK(h(65519.99f) == 0x7BFF);                      // just below the halfway point to 2^16
  CHECK(h(65520.0f) == 0x7C00);                       // halfway: ties to even = infinity
  CHECK(h(1e10f) == 0x7C00);
  CHECK(h(-1e10f) == 0xFC00);
  CHECK(h(std::ldexp(1.0f, -14)) == 0x0400);          // smallest normal
  CHECK(h(std::ldexp(1.0f, -24)) == 0x0001);          // smallest subnormal
  CHECK(h(std::ldexp(1.0f, -25)) == 0x0000);          // exactly half of it: ties to even (0)
  CHECK(h(std::ldexp(1.0f, -25) * 1.0000001f) == 0x0001);  // just above half: rounds up
  CHECK(h(3.0f * std::ldexp(1.0f, -26)) == 0x0001);   // 0.75 * 2^-24 rounds up to 2^-24
  CHECK(h(std::ldexp(1.0f, -26)) == 0x0000);          // 0.25 * 2^-24 rounds down
  CHECK(h(1023.0f * std::ldexp(1.0f, -24)) == 0x03FF);  // largest subnormal
  CHECK(h(0.0f) == 0x0000);
  CHECK(h(-0.0f) == 0x8000);
  CHECK(h(std::numeric_limits<float>::infinity()) == 0x7C00);
  CHECK(h(-std::numeric_limits<float>::infinity()) == 0xFC00);
  CHECK(half_is_nan(h(std::numeric_limits<float>::quiet_NaN())));
  CHECK(half_is_nan(h(-std::numeric_limits<float>::quiet_NaN())));
  CHECK(half_is_nan(h(from_bits(0x7f800001u))));  // signalling NaN whose payload lives only in low bits
  CHECK(half_is_nan(h(from_bits(0xff800001u))));
}

TEST_CASE("core/half: round to nearest even ties both ways", "[core][cpu]") {
  // Normal range: the half ulp at 1.0 is 2^-10, so 1 + 2^-11 is halfway between 0x3C00 and 0x3C01.
  CHECK(h(1.0f + std::ldexp(1.0f, -11)) == 0x3C00);        // tie, even below: down
  CHECK(h(1.0f + 3.0f * std::ldexp(1.0f, -11)) == 0x3C02);  // tie between 0x3C01 (odd) and 0x3C02: up
  CHECK(h(-(1.0f + 3.0f * std::ldexp(1.0f, -11))) == 0xBC02);
  CHECK(h(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)) == 0x3C01);  // just above a tie: up
  // Subnormal range, in units of 2^-24.
  CHECK(h(1.5f * std::ldexp(1.0f, -24)) == 0x0002);  // tie 1|2: to 2
  CHECK(h(2.5f * std::ldexp(1.0f, -24)) == 0x0002);  // tie 2|3: to 2
  CHECK(h(1023.5f * std::ldexp(1.0f, -24)) == 0x0400);  // tie between largest subnormal and smallest normal
  // The mantissa carry into the exponent: 2047.5 * 2^-10 -> 2.0.
  CHECK(h(2.0f - std::ldexp(1.0f, -11)) == 0x4000);
}

TEST_CASE("core/half: half to float hand-computed values", "[core][cpu]") {
  CHECK(float(Half::from_bits(0x3C00)) == 1.0f);
  CHECK(float(Half::from_bits(0x7BFF)) == 65504.0f);
  CHECK(float(Half::from_bits(0x0001)) == std::ldexp(1.0f, -24));
  CHECK(float(Half::from_bits(0x03FF)) == 1023.0f * std::ldexp(1.0f, -24));
  CHECK(float(Half::from_bits(0x0400)) == std::ldexp(1.0f, -14));
  CHECK(float(Half::from_bits(0xC000)) == -2.0f);
  CHECK(float(Half::from_bits(0x7C00)) == std::numeric_limits<float>::infinity());
  CHECK(float(Half::from_bits(0xFC00)) == -std::numeric_limits<float>::infinity());
  CHECK(std::isnan(float(Half::from_bits(0x7E00))));
  CHECK(std::isnan(float(Half::from_bits(0x7C01))));
  const float nz = float(Half::from_bits(0x8000));
  CHECK(nz == 0.0f);
  CHECK(std::signbit(nz));
}

TEST_CASE("core/half: every half bit pattern decodes exactly and round-trips", "[core][cpu]") {
  int64_t bad_decode = 0, bad_trip = 0;
  for (uint32_t b = 0; b < 65536; ++b) {
    const uint16_t bits = uint16_t(b);
    const float f = float(Half::from_bits(bits));
    const double expect = decode_half(bits);
    if (std::isnan(expect)) {
      if (!std::isnan(f)) ++bad_decode;
      if (!half_is_nan(Half(f).bits)) ++bad_trip;
      continue;
    }
    if (double(f) != expect || std::signbit(f) != std::signbit(expect)) ++bad_decode;
    if (Half(f).bits != bits) ++bad_trip;
  }
  CHECK(bad_decode == 0);
  CHECK(bad_trip == 0);
}

TEST_CASE("core/half: float to half matches the nearest-value reference on sampled floats", "[core][cpu]") {
  // Every 257th f32 bit pattern (16.7M samples would take too long; 257 is odd and coprime to
  // the mantissa steps, so the low mantissa bits cycle through all residues), plus every
  // float whose exponent is in the half range with the 13 dropped bits near a tie.
  int64_t bad = 0, checked = 0;
  uint32_t first_bad = 0;
  auto check = [&](uint32_t u) {
    const float f = from_bits(u);
    const uint16_t got = h(f), want = reference_half(f);
    const bool ok = std::isnan(f) ? half_is_nan(got) : got == want;
    if (!ok && bad++ == 0) first_bad = u;
    ++checked;
  };
  for (uint64_t u = 0; u <= 0xffffffffull; u += 257) check(uint32_t(u));
  for (uint32_t e = 100; e <= 143; ++e)            // 2^-27 .. 2^16
    for (uint32_t hi = 0; hi < 1024; hi += 7)      // kept mantissa bits (sampled)
      for (uint32_t low : {0x0fffu, 0x1000u, 0x1001u, 0x0001u, 0x1fffu})
        check((e << 23) | (hi << 13) | low);
  INFO("first mismatch at f32 bits 0x" << std::hex << first_bad);
  CHECK(bad == 0);
  CHECK(checked > 16000000);
}

TEST_CASE("core/half: bfloat16 conversions", "[core][cpu]") {
  CHECK(b16(1.0f) == 0x3F80);
  CHECK(b16(-2.0f) == 0xC000);
  CHECK(b16(0.0f) == 0x0000);
  CHECK(b16(-0.0f) == 0x8000);
  CHECK(b16(from_bits(0x3F808000u)) == 0x3F80);  // tie, even below: down
  CHECK(b16(from_bits(0x3F818000u)) == 0x3F82);  // tie, odd below: up
  CHECK(b16(from_bits(0x3F808001u)) == 0x3F81);  // above the tie: up
  CHECK(b16(from_bits(0x3F807FFFu)) == 0x3F80);  // below the tie: down
  CHECK(b16(from_bits(0x7F7FFFFFu)) == 0x7F80);  // FLT_MAX rounds to infinity
  CHECK(b16(std::numeric_limits<float>::infinity()) == 0x7F80);
  CHECK(b16(-std::numeric_limits<float>::infinity()) == 0xFF80);
  CHECK(bf16_is_nan(b16(std::numeric_limits<float>::quiet_NaN())));
  CHECK(bf16_is_nan(b16(from_bits(0x7f800001u))));  // payload only in the dropped bits: still NaN
  CHECK(bf16_is_nan(b16(from_bits(0xffffffffu))));
  CHECK(float(BFloat16::from_bits(0x3F80)) == 1.0f);
  CHECK(float(BFloat16::from_bits(0x4049)) == 3.140625f);
  int64_t bad = 0;
  for (uint32_t b = 0; b < 65536; ++b) {
    const uint16_t bits = uint16_t(b);
    const float f = float(BFloat16::from_bits(bits));
    const double expect = decode_bf16(bits);
    if (bf16_is_nan(bits)) {
      if (!std::isnan(f) || !bf16_is_nan(BFloat16(f).bits)) ++bad;
    } else if (double(f) != expect || BFloat16(f).bits != bits) {
      ++bad;
    }
  }
  CHECK(bad == 0);
  CHECK(bits_of(float(BFloat16::from_bits(0x8000))) == 0x80000000u);
}
