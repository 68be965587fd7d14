// Opt-in bfloat16 arithmetic for the CPU's float32 convolutions and matrix products (issue 14).
// Default: float32 everywhere. BFloat16: oneDNN's float32 conv2d / conv2d_backward read their
// operands (input, weight, grad_out) rounded to bfloat16 and accumulate in float32 with
// float32 outputs and gradients; float32 ops::matmul / linear do the same through oneDNN's
// bf16 matmul primitive (kernels/cpu/gemm_bf16.cpp). Master weights, the optimizer, norms, losses and every other op stay
// float32, and float64 is never affected. Needs a build with oneDNN and a CPU with AVX-512 BF16
// (vdpbf16ps; Zen 4, Cooper Lake, Sapphire Rapids); set_cpu_precision refuses it otherwise.
// Results stay bitwise identical for every thread count. Accuracy and speed: docs/kernels/conv2d.md,
// docs/benchmarks.md. Tests: tests/ops/test_conv_bf16.cpp, tests/ops/test_matmul_bf16.cpp.
#pragma once
#include <string_view>

namespace drcnn::ops {

enum class CpuPrecision { Float32, BFloat16 };

/// Selects the precision (process-wide). BFloat16 throws drcnn::Error when cpu_has_bf16() is false.
/// The environment variable DRCNN_CPU_PRECISION=fp32|bf16 sets it at start-up.
void set_cpu_precision(CpuPrecision p);
CpuPrecision cpu_precision();
/// Whether BFloat16 can be selected: this build has oneDNN and oneDNN sees AVX-512 BF16 on this CPU.
bool cpu_has_bf16();
/// "fp32" -> Float32, "bf16" -> BFloat16; anything else throws, naming `what` (a flag, a config key).
CpuPrecision parse_cpu_precision(std::string_view s, std::string_view what);
/// "fp32" or "bf16".
const char* cpu_precision_name(CpuPrecision p);

/// For tests: whether the CPU's float32 convolutions and bf16 matmuls may use drcnn's AVX-512
/// copies (run-time checked) for three conversions: the oneDNN weight gradient's OIhw16i16o ->
/// OIHW, float32 NCHW -> bf16 nChw16c operands of the bf16 convolutions, and float32 -> bf16
/// matmul operands. false runs what they replaced (a scalar copy, oneDNN's reorder, a scalar
/// rounding loop). Default true; the results are the same bits either way
/// (tests/ops/test_conv_bf16.cpp, tests/ops/test_matmul_bf16.cpp).
void set_cpu_fast_copies(bool on);
bool cpu_fast_copies();
}  // namespace drcnn::ops
