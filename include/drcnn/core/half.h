// f16 and bf16 storage types with exact round-to-nearest-even conversion to and from float.
// Storage and conversion only for now; arithmetic happens in float (compute comes later).
#pragma once
#include <cstdint>
#include <cstring>

#include "drcnn/core/macros.h"

namespace drcnn {
namespace detail {
DRCNN_HD uint32_t float_bits(float f) {
#if DRCNN_ON_DEVICE
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}
DRCNN_HD float bits_float(uint32_t u) {
#if DRCNN_ON_DEVICE
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}

/// IEEE binary32 -> binary16, round to nearest even; overflow to inf, NaN stays NaN (quiet).
DRCNN_HD uint16_t float_to_half_bits(float f) {
  const uint32_t x = float_bits(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t absx = x & 0x7fffffffu;
  if (absx >= 0x7f800000u) {  // inf or NaN
    return uint16_t(sign | 0x7c00u | (absx > 0x7f800000u ? 0x0200u | ((absx >> 13) & 0x3ffu) : 0u));
  }
  if (absx >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // rounds to >= 65520 -> inf
  if (absx < 0x38800000u) {  // below the smallest normal half (2^-14): subnormal or zero
    if (absx < 0x33000000u) return uint16_t(sign);  // below half the smallest subnormal (2^-25)
    const uint32_t e = absx >> 23;                   // biased f32 exponent, 102..112
    const uint32_t m = (absx & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126u - e;                 // so that result = m >> shift (in units of 2^-24)
    uint32_t r = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1u);
    const uint32_t halfway = 1u << (shift - 1u);
    if (rem > halfway || (rem == halfway && (r & 1u))) ++r;
    return uint16_t(sign | r);
  }
  // Normal: rebias exponent (127 -> 15) and round the 13 dropped mantissa bits.
  uint32_t r = (absx - 0x38000000u) >> 13;
  const uint32_t rem = absx & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) ++r;  // carry may reach inf correctly
  return uint16_t(sign | r);
}

/// binary16 -> binary32, exact.
DRCNN_HD float half_bits_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1fu;
  uint32_t m = h & 0x3ffu;
  if (e == 0x1fu) return bits_float(sign | 0x7f800000u | (m << 13));  // inf / NaN
  if (e == 0) {
    if (m == 0) return bits_float(sign);
    // Subnormal: value = m * 2^-24; normalise.
    int shift = 0;
    while ((m & 0x400u) == 0) {
      m <<= 1;
      ++shift;
    }
    m &= 0x3ffu;
    return bits_float(sign | (uint32_t(113 - shift) << 23) | (m << 13));
  }
  return bits_float(sign | ((e + 112u) << 23) | (m << 13));
}

/// binary32 -> bfloat16, round to nearest even; NaN stays a quiet NaN.
DRCNN_HD uint16_t float_to_bf16_bits(float f) {
  const uint32_t x = float_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return uint16_t((x >> 16) | 0x40u);
  const uint32_t rounding = 0x7fffu + ((x >> 16) & 1u);
  return uint16_t((x + rounding) >> 16);
}
DRCNN_HD float bf16_bits_to_float(uint16_t b) { return bits_float(uint32_t(b) << 16); }
}  // namespace detail

/// IEEE half precision, stored as its 16 bits.
struct Half {
  uint16_t bits = 0;
  Half() = default;
  DRCNN_HD explicit Half(float f) : bits(detail::float_to_half_bits(f)) {}
  DRCNN_HD explicit operator float() const { return detail::half_bits_to_float(bits); }
  DRCNN_HD static Half from_bits(uint16_t b) {
    Half h;
    h.bits = b;
    return h;
  }
};
/// bfloat16 (8-bit exponent, 7-bit mantissa), stored as its 16 bits.
struct BFloat16 {
  uint16_t bits = 0;
  BFloat16() = default;
  DRCNN_HD explicit BFloat16(float f) : bits(detail::float_to_bf16_bits(f)) {}
  DRCNN_HD explicit operator float() const { return detail::bf16_bits_to_float(bits); }
  DRCNN_HD static BFloat16 from_bits(uint16_t b) {
    BFloat16 h;
    h.bits = b;
    return h;
  }
};
}  // namespace drcnn
