// float32 CPU conv2d through oneDNN (Debian's libdnnl, the library PyTorch's CPU convolutions use):
// forward, backward-data and backward-weights behind the same ops::conv2d / conv2d_backward.
// Compiled only when CMake finds oneDNN (DRCNN_WITH_ONEDNN); kernels/cpu/conv.cpp calls it for
// float32 and keeps im2col + Eigen for float64 and as the fallback (docs/kernels/conv2d.md).
// - Primitives are created with format `any` (oneDNN picks its blocked layouts, e.g. nChw16c on
//   AVX-512) and cached per shape together with the reorders from/to drcnn's plain NCHW / OIHW.
// - Scratchpads and reorder buffers come from drcnn's caching allocator (no per-call malloc).
// - grad_bias stays with conv.cpp (double accumulation, as for float64).
// - bfloat16 (ops::set_cpu_precision, include/drcnn/ops/cpu_precision.h): the operands read by
//   a primitive (src/weights forward, diff_dst/weights backward-data, src/diff_dst
//   backward-weights) are reordered from drcnn's float32 into oneDNN's bf16 blocked layouts
//   (round to nearest even); outputs and gradients stay float32 (f32 accumulation and dst).
// - Bitwise the same for every thread count: the thread count is in the plan key (oneDNN fixes
//   a primitive's work split at creation; forward and backward-data give each output to one
//   thread), and backward-weights runs as shape-determined channel slices of one-thread
//   primitives (weight_slices).
#include "conv_onednn.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <unordered_map>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#if defined(__x86_64__)
#include <immintrin.h>
#define DRCNN_CONV_AVX512 1
#else
#define DRCNN_CONV_AVX512 0
#endif

#include "drcnn/core/error.h"
#include "drcnn/core/parallel_cpu.h"
#include "drcnn/core/storage.h"
#include "drcnn/ops/cpu_precision.h"
#include "cpu_features.h"

namespace drcnn::ops::cpu::onednn {

namespace {
using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

enum class Dir { Forward, BackwardData, BackwardWeights };

// The thread count is part of the key: oneDNN fixes a primitive's work split (and the number of
// threads it runs) when the primitive is created.
using Key = std::tuple<int, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                       int64_t, int64_t, int64_t, int64_t, int64_t, bool, int, bool>;
Key key_of(Dir d, const Conv2dGeometry& g, bool bias, bool bf16) {
  const int threads = d == Dir::BackwardWeights ? 1 : cpu_threads();  // see weight_slices()
  return {int(d), g.n,  g.c_in, g.h,  g.w,  g.c_out, g.kh,  g.kw,   g.sh,
          g.sw,   g.ph, g.pw,   g.dh, g.dw, g.groups, g.ho, bias, threads, bf16};
}

/// Backward-weights is the one direction whose oneDNN result depends on the thread count (it
/// splits the reduction over images and pixels between threads; forward and backward-data give
/// each output to one thread, tested in tests/ops/test_conv.cpp). drcnn runs it as `slices`
/// equal slices of the output channels, each a one-thread primitive, the slices in parallel:
/// the split depends on the shape only, so the result is the same for every thread count.
int64_t weight_slices(const Conv2dGeometry& g) {
  if (g.groups != 1) return 1;
  for (int64_t s : {4, 2})
    if (g.c_out % (16 * s) == 0) return s;
  return 1;
}

/// Sets drcnn's (OpenMP's) thread count to 1 for a scope: oneDNN sizes a primitive's work split
/// and its thread team when the primitive is created.
struct OneThread {
  int saved = cpu_threads();
  OneThread() { set_cpu_threads(1); }
  ~OneThread() { set_cpu_threads(saved); }
  OneThread(const OneThread&) = delete;
  OneThread& operator=(const OneThread&) = delete;
};

/// Right padding for oneDNN, whose output size is floor((in + pl + pr - span) / s) + 1 as
/// PyTorch's. The exact value (out - 1) * s + span - in - pl is negative when PyTorch's floor
/// drops trailing input (e.g. a 1x1 stride-2 conv on an even size: -1); it is then above -s,
/// so pr = 0 gives the same floor, and the zero padding is never read.
int64_t pad_right(int64_t in, int64_t out, int64_t k, int64_t s, int64_t pl, int64_t d) {
  return std::max<int64_t>(0, (out - 1) * s + (k - 1) * d + 1 - in - pl);
}

struct Descs {
  memory::desc src_plain, wei_plain, dst_plain, bias_plain;
  memory::desc src_any, wei_any, dst_any, bias_any;
  memory::dims strides, dilates, pad_l, pad_r;
};
/// The data types of a primitive's src, weights and dst (or their diffs): float32 everywhere,
/// or bf16 for the operands it reads and float32 for the one it writes.
struct Types {
  dt src = dt::f32, wei = dt::f32, dst = dt::f32;
};
Types types_of(Dir dir, bool bf16) {
  if (!bf16) return {};
  switch (dir) {
    case Dir::Forward: return {dt::bf16, dt::bf16, dt::f32};
    case Dir::BackwardData: return {dt::f32, dt::bf16, dt::bf16};
    case Dir::BackwardWeights: return {dt::bf16, dt::f32, dt::bf16};
  }
  return {};
}

Descs descs_of(const Conv2dGeometry& g, Types t = {}) {
  Descs d;
  d.src_plain = memory::desc({g.n, g.c_in, g.h, g.w}, dt::f32, tag::nchw);
  d.dst_plain = memory::desc({g.n, g.c_out, g.ho, g.wo}, dt::f32, tag::nchw);
  d.bias_plain = memory::desc({g.c_out}, dt::f32, tag::x);
  if (g.groups == 1) {
    d.wei_plain = memory::desc({g.c_out, g.c_in, g.kh, g.kw}, dt::f32, tag::oihw);
    d.wei_any = memory::desc({g.c_out, g.c_in, g.kh, g.kw}, t.wei, tag::any);
  } else {
    const memory::dims wd = {g.groups, g.cout_g(), g.cin_g(), g.kh, g.kw};
    d.wei_plain = memory::desc(wd, dt::f32, tag::goihw);
    d.wei_any = memory::desc(wd, t.wei, tag::any);
  }
  d.src_any = memory::desc({g.n, g.c_in, g.h, g.w}, t.src, tag::any);
  d.dst_any = memory::desc({g.n, g.c_out, g.ho, g.wo}, t.dst, tag::any);
  d.bias_any = memory::desc({g.c_out}, dt::f32, tag::any);
  d.strides = {g.sh, g.sw};
  d.dilates = {g.dh - 1, g.dw - 1};
  d.pad_l = {g.ph, g.pw};
  d.pad_r = {pad_right(g.h, g.ho, g.kh, g.sh, g.ph, g.dh), pad_right(g.w, g.wo, g.kw, g.sw, g.pw, g.dw)};
  return d;
}

dnnl::primitive_attr user_scratchpad() {
  dnnl::primitive_attr a;
  a.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return a;
}

/// The forward primitive (types: Types of Forward), or the hint of a backward one (bf16: every
/// operand bf16, as oneDNN's bf16 backward kernels expect of their forward hint).
dnnl::convolution_forward::primitive_desc forward_pd(const Conv2dGeometry& g, bool bias, Types t = {}) {
  const Descs d = descs_of(g, t);
  const auto desc = bias ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training,
                                                           dnnl::algorithm::convolution_direct, d.src_any, d.wei_any,
                                                           d.bias_any, d.dst_any, d.strides, d.dilates, d.pad_l, d.pad_r)
                         : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training,
                                                           dnnl::algorithm::convolution_direct, d.src_any, d.wei_any,
                                                           d.dst_any, d.strides, d.dilates, d.pad_l, d.pad_r);
  return {desc, user_scratchpad(), engine()};
}

/// A reorder between a plain user layout and the primitive's, or nothing when they agree.
struct Conversion {
  bool needed = false;
  memory::desc inner;  // the primitive's layout
  dnnl::reorder to_inner, from_inner;
  /// to_inner is float32 NCHW -> bf16 nChw16c with whole 16-channel blocks: inner_input runs
  /// nchw_to_bf16_16c_block instead (unless ops::cpu_fast_copies() is false).
  bool bf16_16c = false;
};
Conversion conversion(const memory::desc& plain, const memory::desc& inner, bool to, bool from) {
  Conversion c;
  c.inner = inner;
  c.needed = plain != inner;
  if (c.needed && to && plain.dims().size() == 4 && plain.dims()[1] % 16 == 0 &&
      plain == memory::desc(plain.dims(), dt::f32, tag::nchw))
    c.bf16_16c = inner == memory::desc(plain.dims(), dt::bf16, tag::aBcd16b);
  if (c.needed) {
    if (to) c.to_inner = dnnl::reorder(dnnl::reorder::primitive_desc(engine(), plain, engine(), inner));
    if (from) c.from_inner = dnnl::reorder(dnnl::reorder::primitive_desc(engine(), inner, engine(), plain));
  }
  return c;
}

/// One cached primitive with its operand conversions.
struct Plan {
  dnnl::primitive prim;
  size_t scratch_bytes = 0;
  Conversion src, wei, dst;  // forward: src/wei in, dst out; bwd data: dst=diff_dst in, wei in, src=diff_src out;
                             // bwd weights: src in, dst=diff_dst in, wei=diff_weights out
};

Types hint_types(bool bf16) { return bf16 ? Types{dt::bf16, dt::bf16, dt::bf16} : Types{}; }

std::shared_ptr<const Plan> make_plan(Dir dir, const Conv2dGeometry& g, bool bias, bool bf16) {
  auto p = std::make_shared<Plan>();
  const Descs d = descs_of(g, types_of(dir, bf16));
  const auto fwd = forward_pd(g, bias, dir == Dir::Forward ? types_of(dir, bf16) : hint_types(bf16));
  if (dir == Dir::Forward) {
    p->prim = dnnl::convolution_forward(fwd);
    p->scratch_bytes = fwd.scratchpad_desc().get_size();
    p->src = conversion(d.src_plain, fwd.src_desc(), true, false);
    p->wei = conversion(d.wei_plain, fwd.weights_desc(), true, false);
    p->dst = conversion(d.dst_plain, fwd.dst_desc(), false, true);
  } else if (dir == Dir::BackwardData) {
    const dnnl::convolution_backward_data::desc desc(dnnl::algorithm::convolution_direct, d.src_any, d.wei_any,
                                                     d.dst_any, d.strides, d.dilates, d.pad_l, d.pad_r);
    const dnnl::convolution_backward_data::primitive_desc pd(desc, user_scratchpad(), engine(), fwd);
    p->prim = dnnl::convolution_backward_data(pd);
    p->scratch_bytes = pd.scratchpad_desc().get_size();
    p->src = conversion(d.src_plain, pd.diff_src_desc(), false, true);
    p->wei = conversion(d.wei_plain, pd.weights_desc(), true, false);
    p->dst = conversion(d.dst_plain, pd.diff_dst_desc(), true, false);
  }
  return p;
}

/// Backward-weights plan for one output-channel slice of g (weight_slices): a one-thread
/// primitive whose diff_dst is read through a strided view of the whole [N, Cout, Ho, Wo].
std::shared_ptr<const Plan> make_weights_plan(const Conv2dGeometry& g, bool bf16) {
  const OneThread one;
  Conv2dGeometry gs = g;
  gs.c_out = g.c_out / weight_slices(g);
  auto p = std::make_shared<Plan>();
  const Descs d = descs_of(gs, types_of(Dir::BackwardWeights, bf16));
  const memory::desc dst_view({gs.n, gs.c_out, gs.ho, gs.wo}, dt::f32,
                              memory::dims{g.c_out * g.ho * g.wo, g.ho * g.wo, g.wo, 1});
  const auto fwd = forward_pd(gs, false, hint_types(bf16));
  const dnnl::convolution_backward_weights::desc desc(dnnl::algorithm::convolution_direct, d.src_any, d.wei_any,
                                                      d.dst_any, d.strides, d.dilates, d.pad_l, d.pad_r);
  const dnnl::convolution_backward_weights::primitive_desc pd(desc, user_scratchpad(), engine(), fwd);
  p->prim = dnnl::convolution_backward_weights(pd);
  p->scratch_bytes = pd.scratchpad_desc().get_size();
  p->src = conversion(d.src_plain, pd.src_desc(), true, false);
  p->wei = conversion(d.wei_plain, pd.diff_weights_desc(), false, true);
  p->dst = conversion(dst_view, pd.diff_dst_desc(), true, false);
  p->dst.needed = true;  // always copy the slice out of the strided view (contiguous for the kernel)
  if (dst_view == pd.diff_dst_desc())
    p->dst.to_inner = dnnl::reorder(dnnl::reorder::primitive_desc(engine(), dst_view, engine(), pd.diff_dst_desc()));
  return p;
}

// Plans per (direction, shape). Bounded: a detector meets a few hundred shapes (padded batch
// sizes x layers); past kMaxPlans the cache starts over rather than growing without limit.
constexpr size_t kMaxPlans = 2048;
std::mutex g_mutex;
std::map<Key, std::shared_ptr<const Plan>>& plans() {
  static std::map<Key, std::shared_ptr<const Plan>> m;
  return m;
}

std::shared_ptr<const Plan> plan_for(Dir dir, const Conv2dGeometry& g, bool bias, bool bf16) {
  const Key k = key_of(dir, g, bias, bf16);
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    auto it = plans().find(k);
    if (it != plans().end()) return it->second;
  }
  // Outside the lock: JIT compilation takes milliseconds.
  auto p = dir == Dir::BackwardWeights ? make_weights_plan(g, bf16) : make_plan(dir, g, bias, bf16);
  std::lock_guard<std::mutex> lock(g_mutex);
  if (plans().size() >= kMaxPlans) plans().clear();
  return plans().emplace(k, std::move(p)).first->second;
}

// drcnn's own AVX-512 copies for two layout changes that oneDNN 2.6 does with its generic
// reorder kernels (ops::set_cpu_fast_copies; false runs the path they replaced). Pure data
// movement, plus the float32 -> bf16 rounding of vcvtneps2bf16, which is what oneDNN's reorder
// computes on these CPUs (round to nearest even, denormal inputs to signed zero, NaN quiet):
// the same bits (tests/ops/test_conv_bf16.cpp compares both paths on inputs with bf16 ties,
// denormals and -0; a check on random bit patterns, NaN and infinities included, agreed too).
#if DRCNN_CONV_AVX512
// GCC 12's AVX-512 intrinsics pass _mm512_undefined_ps() as the unused merge operand, which
// -Wmaybe-uninitialized reports (a known false positive) once inlined here.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define DRCNN_AVX512 __attribute__((target("avx512f")))
#define DRCNN_AVX512_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

/// r[0..16) as the rows of a 16 x 16 float matrix, transposed in place.
DRCNN_AVX512 inline void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
    const __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
    r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
    r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
  }
  // r[4i + k]: rows 4i..4i+3, column k of each 4-wide lane group; then the 128-bit lanes.
  for (int i = 0; i < 2; ++i)
    for (int k = 0; k < 4; ++k) {
      t[8 * i + k] = _mm512_shuffle_f32x4(r[8 * i + k], r[8 * i + 4 + k], 0x88);
      t[8 * i + 4 + k] = _mm512_shuffle_f32x4(r[8 * i + k], r[8 * i + 4 + k], 0xdd);
    }
  for (int k = 0; k < 8; ++k) {
    r[k] = _mm512_shuffle_f32x4(t[k], t[8 + k], 0x88);
    r[8 + k] = _mm512_shuffle_f32x4(t[k], t[8 + k], 0xdd);
  }
}

/// blocked16x16_to_oihw for taps <= 16 with 16 x 16 transposes: per input channel i of a block,
/// its taps x 16 (tap, output channel) floats become 16 rows (output channels) of taps floats,
/// each stored where OIHW keeps (o, i, all taps); taps == 1 transposes the (i, o) block at once.
DRCNN_AVX512 void blocked16x16_to_oihw_avx512(const float* src, float* dst, int64_t O, int64_t I, int64_t taps) {
  const int64_t ib_count = I / 16;
  const __mmask16 mask = __mmask16((1u << taps) - 1);
  __m512 r[16];
  for (int64_t ob = 0; ob < O / 16; ++ob)
    for (int64_t ib = 0; ib < ib_count; ++ib) {
      const float* s = src + (ob * ib_count + ib) * taps * 256;  // [tap][i][o]
      float* d = dst + (ob * 16 * I + ib * 16) * taps;           // row o at d + o * I * taps: [i][tap]
      if (taps == 1) {
        for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(s + i * 16);
        transpose16(r);
        for (int o = 0; o < 16; ++o) _mm512_storeu_ps(d + o * I, r[o]);
        continue;
      }
      for (int64_t i = 0; i < 16; ++i) {
        for (int64_t t = 0; t < 16; ++t) r[t] = t < taps ? _mm512_loadu_ps(s + (t * 16 + i) * 16) : _mm512_setzero_ps();
        transpose16(r);
        for (int64_t o = 0; o < 16; ++o) _mm512_mask_storeu_ps(d + o * I * taps + i * taps, mask, r[o]);
      }
    }
}

/// float32 NCHW -> bf16 nChw16c, C a multiple of 16 (Conversion::bf16_16c): per 16 channels and
/// 16 pixels, a 16 x 16 transpose and vcvtneps2bf16 of each pixel's 16 channels.
DRCNN_AVX512_BF16 void nchw_to_bf16_16c_block(const float* s, uint16_t* d, int64_t HW) {
  __m512 r[16];
  for (int64_t p = 0; p < HW; p += 16) {
    const int64_t n = HW - p < 16 ? HW - p : 16;
    const __mmask16 m = __mmask16((1u << n) - 1);
    for (int c = 0; c < 16; ++c) r[c] = _mm512_maskz_loadu_ps(m, s + c * HW + p);
    transpose16(r);
    for (int64_t q = 0; q < n; ++q)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + (p + q) * 16), (__m256i)_mm512_cvtneps_pbh(r[q]));
  }
}
#pragma GCC diagnostic pop
#endif

/// A buffer from drcnn's caching allocator, as a oneDNN memory object.
struct Buffer {
  ScratchBuffer<unsigned char> holder;
  memory mem;
};
void make_buffer(Buffer& b, const memory::desc& md) {
  b.holder = ScratchBuffer<unsigned char>(int64_t(md.get_size()) + 64, Device::cpu());
  b.mem = memory(md, engine(), b.holder.data());
}

/// The operand in the primitive's layout: `user` itself or a reordered copy in `tmp`.
memory inner_input(dnnl::stream& s, const Conversion& c, const memory::desc& plain, const float* user, Buffer& tmp) {
  memory m(plain, engine(), const_cast<float*>(user));
  if (!c.needed) return m;
  make_buffer(tmp, c.inner);
#if DRCNN_CONV_AVX512
  // bf16_16c plans exist only in bf16 mode, which needs AVX-512 BF16 (ops/cpu_precision.h).
  if (c.bf16_16c && cpu_fast_copies()) {
    const memory::dims d = plain.dims();
    const int64_t blocks = d[0] * d[1] / 16, hw = d[2] * d[3];
    auto* out = static_cast<uint16_t*>(tmp.mem.get_data_handle());
    parallel_for_cpu(
        blocks, [&](int64_t b) { nchw_to_bf16_16c_block(user + b * 16 * hw, out + b * 16 * hw, hw); },
        kParallelGrain / (16 * hw) + 1);
    return tmp.mem;
  }
#endif
  c.to_inner.execute(s, m, tmp.mem);
  return tmp.mem;
}
memory inner_output(const Conversion& c, const memory::desc& plain, float* user, Buffer& tmp) {
  if (!c.needed) return memory(plain, engine(), user);
  make_buffer(tmp, c.inner);
  return tmp.mem;
}
void finish_output(dnnl::stream& s, const Conversion& c, const memory::desc& plain, float* user, memory inner) {
  if (!c.needed) return;
  memory m(plain, engine(), user);
  c.from_inner.execute(s, inner, m);
}

void add_scratchpad(std::unordered_map<int, memory>& args, size_t bytes, Buffer& holder) {
  if (bytes == 0) return;
  make_buffer(holder, memory::desc({int64_t(bytes)}, dt::u8, tag::x));
  args.emplace(DNNL_ARG_SCRATCHPAD, holder.mem);
}

/// OIhw16i16o (oneDNN's ABcd16b16a: 16 x 16 (input, output) channel tiles, output innermost)
/// float32 [O, I, taps] to OIHW, O and I multiples of 16: a copy, one (O, I) block of all its
/// taps at a time, so the block's reads stay in L1 and each output channel's writes are one
/// contiguous run of 16 * taps floats. (oneDNN's generic reorder ran at ~9 GB/s on it.)
void blocked16x16_to_oihw(const float* src, float* dst, int64_t O, int64_t I, int64_t taps) {
#if DRCNN_CONV_AVX512
  if (taps <= 16 && cpu_supports_avx512f() && cpu_fast_copies()) return blocked16x16_to_oihw_avx512(src, dst, O, I, taps);
#endif
  const int64_t ib_count = I / 16, row = 16 * taps;
  std::vector<float> tile(size_t(16 * row));
  for (int64_t ob = 0; ob < O / 16; ++ob)
    for (int64_t ib = 0; ib < ib_count; ++ib) {
      // The block is read in order into an L1 tile [o][i][tap], then 16 rows are copied out.
      const float* s = src + (ob * ib_count + ib) * taps * 256;
      for (int64_t t = 0; t < taps; ++t)
        for (int64_t i = 0; i < 16; ++i, s += 16)
          for (int64_t o = 0; o < 16; ++o) tile[size_t(o * row + i * taps + t)] = s[o];
      for (int64_t o = 0; o < 16; ++o)
        std::memcpy(dst + ((ob * 16 + o) * I + ib * 16) * taps, tile.data() + o * row, size_t(row) * sizeof(float));
    }
}

bool supported(const Conv2dGeometry& g) { return g.n > 0 && g.p() > 0; }

/// The forward's converted input, kept for backward-weights (ops::Conv2dSaved): a buffer from
/// the caching allocator whose memory's descriptor is its oneDNN layout (checked by the backward).
struct SavedInput {
  Buffer buf;
};

template <typename F>
bool guarded(const char* what, const F& f) {
  try {
    f();
    return true;
  } catch (const dnnl::error& e) {
    // A shape oneDNN refuses (no implementation): the caller falls back to im2col. Anything
    // after a primitive started writing would be a bug in oneDNN; rethrow as a drcnn error.
    if (e.status == dnnl_unimplemented) return false;
    DRCNN_FAIL(what, ": oneDNN failed: ", e.what(), " (status ", int(e.status), ")");
  }
}
}  // namespace

bool conv2d_forward(const Conv2dForwardLaunch<float>& l, bool bf16) {
  const Conv2dGeometry& g = l.g;
  if (!supported(g)) return false;
  std::shared_ptr<const Plan> p;
  if (!guarded("conv2d", [&] { p = plan_for(Dir::Forward, g, l.bias != nullptr, bf16); })) return false;
  Buffer src_t;
  guarded("conv2d", [&] {
    const Descs d = descs_of(g);
    dnnl::stream s(engine());
    Buffer wei_t, dst_t, scratch;
    const memory src = inner_input(s, p->src, d.src_plain, l.input, src_t);
    const memory wei = inner_input(s, p->wei, d.wei_plain, l.weight, wei_t);
    const memory dst = inner_output(p->dst, d.dst_plain, l.out, dst_t);
    std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}};
    add_scratchpad(args, p->scratch_bytes, scratch);
    if (l.bias) args.emplace(DNNL_ARG_BIAS, memory(d.bias_plain, engine(), const_cast<float*>(l.bias)));
    p->prim.execute(s, args);
    finish_output(s, p->dst, d.dst_plain, l.out, dst);
    s.wait();
  });
  // Keep the converted input for backward-weights when its plan reads the same layout (the
  // usual case: nChw16c, bf16 or float32), so the backward does not convert it again. A shape
  // backward-weights has no kernel for keeps nothing.
  if (l.save && p->src.needed)
    guarded("conv2d", [&] {
      const std::shared_ptr<const Plan> pw = plan_for(Dir::BackwardWeights, g, false, bf16);
      if (!pw->src.needed || pw->src.inner != p->src.inner) return;
      auto saved = std::make_shared<SavedInput>();
      saved->buf = std::move(src_t);
      *static_cast<std::shared_ptr<const void>*>(l.save) = std::move(saved);  // an ops::Conv2dSaved
    });
  return true;
}

bool conv2d_backward(const Conv2dBackwardLaunch<float>& l, bool bf16) {
  const Conv2dGeometry& g = l.g;
  if (!supported(g)) return false;
  std::shared_ptr<const Plan> pd, pw;
  if (!guarded("conv2d_backward", [&] {
        if (l.grad_input) pd = plan_for(Dir::BackwardData, g, false, bf16);
        if (l.grad_weight) pw = plan_for(Dir::BackwardWeights, g, false, bf16);
      }))
    return false;
  guarded("conv2d_backward", [&] {
    const Descs d = descs_of(g);
    dnnl::stream s(engine());
    // grad_out in backward-data's layout (backward-weights reads its own channel slices).
    Buffer go_d_t;
    memory go_d;
    if (pd) go_d = inner_input(s, pd->dst, d.dst_plain, l.grad_out, go_d_t);
    if (pd) {
      Buffer wei_t, dsrc_t, scratch;
      const memory wei = inner_input(s, pd->wei, d.wei_plain, l.weight, wei_t);
      const memory dsrc = inner_output(pd->src, d.src_plain, l.grad_input, dsrc_t);
      std::unordered_map<int, memory> args = {
          {DNNL_ARG_DIFF_DST, go_d}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DIFF_SRC, dsrc}};
      add_scratchpad(args, pd->scratch_bytes, scratch);
      pd->prim.execute(s, args);
      finish_output(s, pd->src, d.src_plain, l.grad_input, dsrc);
    }
    s.wait();
    if (pw) {
      // Slices of the output channels, each on one thread (weight_slices): every buffer is
      // taken before the parallel loop, each slice has its own stream, scratchpad and copies.
      const int64_t slices = weight_slices(g), cs = g.c_out / slices;
      Conv2dGeometry gs = g;
      gs.c_out = cs;
      const Descs ds = descs_of(gs);
      const memory::desc dst_view({g.n, cs, g.ho, g.wo}, dt::f32, memory::dims{g.c_out * g.ho * g.wo, g.ho * g.wo, g.wo, 1});
      Buffer src_t;
      memory src;
      const auto* saved = static_cast<const SavedInput*>(l.saved);
      if (saved && saved->buf.mem.get_desc() == pw->src.inner) {
        src = saved->buf.mem;  // the forward's conversion of the same input (conv2d_forward)
      } else {
        dnnl::stream s1(engine());
        src = inner_input(s1, pw->src, ds.src_plain, l.input, src_t);
        s1.wait();
      }
      const size_t ns = size_t(slices);
      std::vector<Buffer> go_t(ns), dwei_t(ns), scratch(ns);
      std::vector<memory> go(ns), dwei(ns);
      std::vector<std::unordered_map<int, memory>> args(ns);
      const int64_t wslice = cs * g.cin_g() * g.kh * g.kw;
      // grad_out is already in backward-data's layout (go_d). When that is nChw16c and each
      // slice's is too (same type, whole 16-channel blocks), a slice is per image one
      // contiguous run of go_d: used in place (one image, or one slice) or copied (memcpy)
      // instead of converted again from the float32 NCHW view. Same values (the same rounding
      // of the same floats, or a copy), one conversion of grad_out instead of two.
      const size_t esize = pw->dst.inner.data_type() == dt::bf16 ? 2 : 4;
      const bool share = pd && pd->dst.needed && cs % 16 == 0 &&
                         pd->dst.inner == memory::desc({g.n, g.c_out, g.ho, g.wo}, pw->dst.inner.data_type(), tag::aBcd16b) &&
                         pw->dst.inner == memory::desc({g.n, cs, g.ho, g.wo}, pw->dst.inner.data_type(), tag::aBcd16b);
      // The weight gradient slices come out as OIhw16i16o float32 (ABcd16b16a): copied to OIHW
      // by blocked16x16_to_oihw rather than oneDNN's generic reorder.
      const bool oihw_copy = pw->wei.needed && g.groups == 1 && cs % 16 == 0 && g.c_in % 16 == 0 &&
                             pw->wei.inner == memory::desc({cs, g.c_in, g.kh, g.kw}, dt::f32, tag::ABcd16b16a);
      const size_t run = size_t(cs * g.ho * g.wo) * esize, image = size_t(g.c_out * g.ho * g.wo) * esize;
      auto* go_base = share ? static_cast<unsigned char*>(go_d.get_data_handle()) : nullptr;
      for (int64_t k = 0; k < slices; ++k) {
        if (share && (g.n == 1 || slices == 1)) {
          go[size_t(k)] = memory(pw->dst.inner, engine(), go_base + size_t(k) * run);
        } else {
          make_buffer(go_t[size_t(k)], pw->dst.inner);
          go[size_t(k)] = go_t[size_t(k)].mem;
        }
        dwei[size_t(k)] = inner_output(pw->wei, ds.wei_plain, l.grad_weight + k * wslice, dwei_t[size_t(k)]);
        args[size_t(k)] = {{DNNL_ARG_DIFF_DST, go[size_t(k)]}, {DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_WEIGHTS, dwei[size_t(k)]}};
        add_scratchpad(args[size_t(k)], pw->scratch_bytes, scratch[size_t(k)]);
      }
      parallel_for_cpu(
          slices,
          [&](int64_t k) {
            dnnl::stream sk(engine());
            if (!share) {
              memory view(dst_view, engine(), const_cast<float*>(l.grad_out + k * cs * g.ho * g.wo));
              pw->dst.to_inner.execute(sk, view, go[size_t(k)]);
            } else if (g.n > 1 && slices > 1) {
              auto* to = static_cast<unsigned char*>(go[size_t(k)].get_data_handle());
              for (int64_t i = 0; i < g.n; ++i)
                std::memcpy(to + size_t(i) * run, go_base + size_t(i) * image + size_t(k) * run, run);
            }
            pw->prim.execute(sk, args[size_t(k)]);
            if (oihw_copy)
              blocked16x16_to_oihw(static_cast<const float*>(dwei[size_t(k)].get_data_handle()),
                                   l.grad_weight + k * wslice, cs, g.c_in, g.kh * g.kw);
            else
              finish_output(sk, pw->wei, ds.wei_plain, l.grad_weight + k * wslice, dwei[size_t(k)]);
            sk.wait();
          },
          2);
    }
  });
  return true;
}

size_t cached_plans() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return plans().size();
}
}  // namespace drcnn::ops::cpu::onednn
