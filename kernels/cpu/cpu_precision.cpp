// The CPU precision setting (include/drcnn/ops/cpu_precision.h): float32 by default, bfloat16
// convolutions on request where oneDNN has AVX-512 BF16 kernels for this CPU.
#include "drcnn/ops/cpu_precision.h"

#include <atomic>
#include <cstdlib>
#include <string>

#if DRCNN_HAVE_ONEDNN
#include <oneapi/dnnl/dnnl.h>
#endif

#include "drcnn/core/error.h"

namespace drcnn::ops {
namespace {
bool detect_bf16() {
#if DRCNN_HAVE_ONEDNN
  // oneDNN's own view (CPUID, capped by DNNL_MAX_CPU_ISA): the ISA its bf16 kernels need.
  const unsigned isa = unsigned(dnnl_get_effective_cpu_isa());
  const unsigned want = unsigned(dnnl_cpu_isa_avx512_core_bf16);
  return (isa & want) == want;
#else
  return false;
#endif
}

void check_available(std::string_view who) {
  DRCNN_CHECK(DRCNN_HAVE_ONEDNN, who,
              ": bf16 needs oneDNN, and this drcnn was built without it (install libdnnl-dev and reconfigure)");
  DRCNN_CHECK(detect_bf16(), who,
              ": bf16 needs a CPU with AVX-512 BF16 (avx512_bf16 in /proc/cpuinfo: Zen 4, Cooper Lake, "
              "Sapphire Rapids or later); oneDNN reports none on this one (or DNNL_MAX_CPU_ISA caps it)");
}

CpuPrecision initial() {
  const char* env = std::getenv("DRCNN_CPU_PRECISION");
  if (!env || !*env) return CpuPrecision::Float32;
  const CpuPrecision p = parse_cpu_precision(env, "DRCNN_CPU_PRECISION");
  if (p == CpuPrecision::BFloat16) check_available("DRCNN_CPU_PRECISION=bf16");
  return p;
}
std::atomic<CpuPrecision>& setting() {
  static std::atomic<CpuPrecision> p{initial()};
  return p;
}
}  // namespace

void set_cpu_precision(CpuPrecision p) {
  if (p == CpuPrecision::BFloat16) check_available("set_cpu_precision");
  setting().store(p);
}
CpuPrecision cpu_precision() { return setting().load(); }
namespace {
std::atomic<bool> g_fast_copies{true};
}
void set_cpu_fast_copies(bool on) { g_fast_copies.store(on); }
bool cpu_fast_copies() { return g_fast_copies.load(std::memory_order_relaxed); }
bool cpu_has_bf16() {
  static const bool has = detect_bf16();
  return has;
}
CpuPrecision parse_cpu_precision(std::string_view s, std::string_view what) {
  if (s == "fp32") return CpuPrecision::Float32;
  if (s == "bf16") return CpuPrecision::BFloat16;
  DRCNN_FAIL(what, ": expected 'fp32' or 'bf16', got '", std::string(s), "'");
}
const char* cpu_precision_name(CpuPrecision p) { return p == CpuPrecision::BFloat16 ? "bf16" : "fp32"; }
}  // namespace drcnn::ops
