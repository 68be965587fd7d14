// Run-time x86 feature checks for the CPU kernels' vector paths (functions compiled with
// target attributes; the build itself stays baseline x86-64). One place for all of them, with
// __builtin_cpu_init first: a check may run before libgcc's own initialiser has.
#pragma once

namespace drcnn::ops::cpu {
#if defined(__x86_64__) && defined(__GNUC__)
inline bool cpu_supports_avx2() {
  static const bool yes = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0;
  }();
  return yes;
}
inline bool cpu_supports_avx512f() {
  static const bool yes = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") != 0;
  }();
  return yes;
}
#else
inline bool cpu_supports_avx2() { return false; }
inline bool cpu_supports_avx512f() { return false; }
#endif
}  // namespace drcnn::ops::cpu
