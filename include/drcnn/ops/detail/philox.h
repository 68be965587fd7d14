// Philox-4x32-10 (Salmon et al., SC'11, "Parallel random numbers: as easy as 1, 2, 3"):
// a counter-based generator, so element i's random bits depend only on (key, counter i).
// Used identically by the CPU and CUDA random kernels.
#pragma once
#include <cstdint>

#include "drcnn/core/macros.h"
#include "drcnn/ops/detail/math.h"

namespace drcnn::ops::detail {

struct Philox4x32 {
  uint32_t v[4];
};

DRCNN_HD void mulhilo32(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t p = uint64_t(a) * uint64_t(b);
  hi = uint32_t(p >> 32);
  lo = uint32_t(p);
}

/// Ten rounds of Philox-4x32 on a 128-bit counter with a 64-bit key.
DRCNN_HD Philox4x32 philox4x32_10(uint64_t counter_lo, uint64_t counter_hi, uint64_t key) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  uint32_t c0 = uint32_t(counter_lo), c1 = uint32_t(counter_lo >> 32);
  uint32_t c2 = uint32_t(counter_hi), c3 = uint32_t(counter_hi >> 32);
  uint32_t k0 = uint32_t(key), k1 = uint32_t(key >> 32);
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo32(kM0, c0, hi0, lo0);
    mulhilo32(kM1, c2, hi1, lo1);
    const uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += kW0;
    k1 += kW1;
  }
  return {{c0, c1, c2, c3}};
}

/// 24 random bits -> float in [0, 1); 53 bits -> double in [0, 1).
DRCNN_HD float uniform_float(uint32_t x) { return float(x >> 8) * (1.0f / 16777216.0f); }
DRCNN_HD double uniform_double(uint32_t hi, uint32_t lo) {
  const uint64_t bits = (uint64_t(hi) << 21) ^ uint64_t(lo >> 11);
  return double(bits & ((uint64_t(1) << 53) - 1)) * (1.0 / 9007199254740992.0);
}

/// out[i] from counter (offset + i), key seed: uniform [0,1) or standard normal (Box-Muller,
/// cosine branch; log argument is 1 - u so it never sees 0). Contiguous out.
template <typename T>
struct RandomBody {
  T* out;
  uint64_t seed, offset;
  bool normal;
  DRCNN_HD void operator()(int64_t i) const {
    const Philox4x32 r = philox4x32_10(offset + uint64_t(i), 0, seed);
    T u1, u2;
    if constexpr (sizeof(T) == 4) {
      u1 = uniform_float(r.v[0]);
      u2 = uniform_float(r.v[1]);
    } else {
      u1 = T(uniform_double(r.v[0], r.v[1]));
      u2 = T(uniform_double(r.v[2], r.v[3]));
    }
    if (!normal) {
      out[i] = u1;
      return;
    }
    const T kTwoPi = T(6.283185307179586476925286766559);
    out[i] = hd::sqrt(T(-2) * hd::log(T(1) - u1)) * hd::cos(kTwoPi * u2);
  }
};
}  // namespace drcnn::ops::detail
