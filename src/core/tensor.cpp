// Tensor: factories, views, copies and host access.
#include "drcnn/core/tensor.h"

#include <cmath>
#include <cstdint>
#include <cstring>

#include "ops/dispatch.h"
#include "drcnn/ops/device_checks.h"
#include "drcnn/ops/detail/elementwise_body.h"

namespace drcnn {

using runtime::on_device;

// ---------------------------------------------------------------------------- factories
Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int d = 0; d < shape.ndim(); ++d)
    DRCNN_CHECK(shape[d] >= 0, "Tensor::empty: negative extent ", shape[d], " in dimension ", d, " of shape ", shape);
  if (device.is_cuda()) {
    const int n = cuda::device_count();
    DRCNN_CHECK(n > 0, "Tensor::empty: cannot allocate on ", device, ": ", cuda::unavailable_reason());
    DRCNN_CHECK(device.index >= 0 && device.index < n, "Tensor::empty: ", device, " does not exist (", n,
                " visible CUDA devices)");
  }
  // The byte count must not wrap around (a wrapped size would allocate a tiny block).
  bool has_zero = false, overflow = false;
  int64_t numel = 1;
  for (int d = 0; d < shape.ndim(); ++d) has_zero = has_zero || shape[d] == 0;
  for (int d = 0; d < shape.ndim() && !has_zero; ++d) overflow = overflow || __builtin_mul_overflow(numel, shape[d], &numel);
  size_t bytes = 0;
  if (!has_zero) overflow = overflow || __builtin_mul_overflow(size_t(numel), dtype_size(dtype), &bytes);
  DRCNN_CHECK(!overflow && bytes <= size_t(PTRDIFF_MAX), "Tensor::empty: shape ", shape, " has too many elements of ",
              dtype, " to address (the byte size exceeds ", PTRDIFF_MAX, ")");
  Stream stream = device.is_cuda() ? cuda::current_stream(device) : Stream{};
  auto storage = std::make_shared<Storage>(bytes, device, stream);
  Tensor t;
  t.m_storage = std::move(storage);
  t.m_shape = shape;
  t.m_strides = contiguous_strides(shape);
  t.m_dtype = dtype;
  t.m_device = device;
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) { return full(shape, 0.0, dtype, device); }
Tensor Tensor::ones(const Shape& shape, DType dtype, Device device) { return full(shape, 1.0, dtype, device); }

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.fill_(value);
  return t;
}

Tensor Tensor::arange(double start, double end, double step, DType dtype, Device device) {
  DRCNN_CHECK(step != 0.0, "Tensor::arange: step must be non-zero");
  DRCNN_CHECK(std::isfinite(start) && std::isfinite(end) && std::isfinite(step),
              "Tensor::arange: start, end and step must be finite, got ", start, ", ", end, ", ", step);
  const double count = std::ceil((end - start) / step);
  DRCNN_CHECK(count >= 0, "Tensor::arange: step ", step, " moves away from end (start ", start, ", end ", end, ")");
  // int64_t(count) is undefined beyond 2^63; such a range could never be allocated anyway.
  DRCNN_CHECK(count < 9223372036854775808.0, "Tensor::arange: [", start, ", ", end, ") in steps of ", step,
              " has ", count, " elements, too many to address");
  const int64_t n = int64_t(count);
  Tensor t = empty({n}, dtype, device);
  if (n == 0) return t;
  on_device(
      device, "arange", [&] { ops::cpu::arange(dtype, n, t.data_ptr(), start, step); },
      [&](auto s) { ops::cuda::arange(s, dtype, n, t.data_ptr(), start, step); });
  return t;
}

namespace {
Tensor random_tensor(const Shape& shape, Generator& gen, DType dtype, Device device, bool normal, const char* op) {
  DRCNN_CHECK(dtype == DType::Float32 || dtype == DType::Float64, op,
              ": expected dtype float32 or float64, got ", dtype);
  Tensor t = Tensor::empty(shape, dtype, device);
  const int64_t n = t.numel();
  const uint64_t first = gen.advance(uint64_t(n));
  if (n == 0) return t;
  on_device(
      device, op, [&] { ops::cpu::random(dtype, normal, n, t.data_ptr(), gen.seed, first); },
      [&](auto s) { ops::cuda::random(s, dtype, normal, n, t.data_ptr(), gen.seed, first); });
  return t;
}
}  // namespace

Tensor Tensor::rand(const Shape& shape, Generator& gen, DType dtype, Device device) {
  return random_tensor(shape, gen, dtype, device, false, "Tensor::rand");
}
Tensor Tensor::randn(const Shape& shape, Generator& gen, DType dtype, Device device) {
  return random_tensor(shape, gen, dtype, device, true, "Tensor::randn");
}

Tensor Tensor::from_storage(std::shared_ptr<Storage> storage, const Shape& shape, const Strides& strides,
                            int64_t offset, DType dtype) {
  DRCNN_CHECK(storage != nullptr, "Tensor::from_storage: null storage");
  DRCNN_CHECK(shape.ndim() == strides.ndim(), "Tensor::from_storage: shape ", shape, " and strides ", strides,
              " differ in rank");
  DRCNN_CHECK(offset >= 0, "Tensor::from_storage: negative offset ", offset);
  int64_t max_index = offset;
  for (int d = 0; d < shape.ndim(); ++d) {
    DRCNN_CHECK(shape[d] >= 0 && strides[d] >= 0, "Tensor::from_storage: negative extent or stride in ", shape,
                " / ", strides);
    if (shape[d] == 0) max_index = -1;
    if (max_index >= 0) max_index += (shape[d] - 1) * strides[d];
  }
  if (shape.numel() > 0) {
    DRCNN_CHECK(size_t(max_index + 1) * dtype_size(dtype) <= storage->bytes(), "Tensor::from_storage: shape ",
                shape, " with strides ", strides, " and offset ", offset, " reaches element ", max_index,
                " but the storage holds ", storage->bytes() / dtype_size(dtype), " elements of ", dtype);
  }
  Tensor t;
  t.m_device = storage->device();
  t.m_storage = std::move(storage);
  t.m_shape = shape;
  t.m_strides = strides;
  t.m_offset = offset;
  t.m_dtype = dtype;
  return t;
}

// ---------------------------------------------------------------------------- properties
int64_t Tensor::size(int dim) const { return m_shape[wrap_dim(dim, ndim(), "Tensor::size")]; }
int64_t Tensor::stride(int dim) const { return m_strides[wrap_dim(dim, ndim(), "Tensor::stride")]; }

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (int d = ndim() - 1; d >= 0; --d) {
    if (m_shape[d] == 0) return true;
    if (m_shape[d] != 1 && m_strides[d] != expected) return false;
    expected *= m_shape[d];
  }
  return true;
}

void* Tensor::data_ptr() const {
  DRCNN_CHECK(defined(), "Tensor::data_ptr: undefined tensor");
  return static_cast<char*>(m_storage->data()) + m_offset * int64_t(dtype_size(m_dtype));
}

void Tensor::check_dtype(DType expected, const char* op) const {
  DRCNN_CHECK(defined(), op, ": undefined tensor");
  DRCNN_CHECK(m_dtype == expected, op, ": tensor has dtype ", m_dtype, ", expected ", expected);
}

bool Tensor::is_same(const Tensor& o) const {
  return m_storage == o.m_storage && m_offset == o.m_offset && m_shape == o.m_shape && m_strides == o.m_strides &&
         m_dtype == o.m_dtype;
}

// ---------------------------------------------------------------------------- views
Tensor Tensor::as_strided(const Shape& shape, const Strides& strides, int64_t offset) const {
  Tensor t = *this;
  t.m_shape = shape;
  t.m_strides = strides;
  t.m_offset = offset;
  return t;
}

namespace {
// Strides for viewing a tensor (shape, strides) as `target` without copying, if possible
// (the rule of torch's computeStride: each run of merged input dims must be contiguous in
// itself). Returns false when a copy is needed.
bool view_strides(const Shape& shape, const Strides& strides, const Shape& target, Strides& out) {
  out = target;
  // No elements, or a single one (a 0-d tensor has no strides to merge): any strides will do.
  if (shape.numel() <= 1) {
    out = contiguous_strides(target);
    return true;
  }
  int view_d = target.ndim() - 1;
  int64_t chunk_base_stride = shape.ndim() > 0 ? strides[shape.ndim() - 1] : 1;
  int64_t tensor_numel = 1, view_numel = 1;
  for (int d = shape.ndim() - 1; d >= 0; --d) {
    tensor_numel *= shape[d];
    if (d == 0 || (shape[d - 1] != 1 && strides[d - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || target[view_d] == 1)) {
        out[view_d] = view_numel * chunk_base_stride;
        view_numel *= target[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return false;
      if (d > 0) {
        chunk_base_stride = strides[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  return view_d == -1;
}
}  // namespace

Tensor Tensor::reshape(const Shape& shape_in) const {
  DRCNN_CHECK(defined(), "reshape: undefined tensor");
  Shape shape = shape_in;
  int infer = -1;
  int64_t known = 1;
  for (int d = 0; d < shape.ndim(); ++d) {
    if (shape[d] == -1) {
      DRCNN_CHECK(infer < 0, "reshape: more than one -1 in ", shape_in);
      infer = d;
    } else {
      DRCNN_CHECK(shape[d] >= 0, "reshape: invalid extent ", shape[d], " in ", shape_in);
      known *= shape[d];
    }
  }
  if (infer >= 0) {
    DRCNN_CHECK(known != 0 && numel() % known == 0, "reshape: cannot infer -1 in ", shape_in, " for ", numel(),
                " elements of shape ", m_shape);
    shape[infer] = numel() / known;
  }
  DRCNN_CHECK(shape.numel() == numel(), "reshape: shape ", shape_in, " holds ", shape.numel(),
              " elements but the tensor of shape ", m_shape, " has ", numel());
  Strides strides;
  if (view_strides(m_shape, m_strides, shape, strides)) return as_strided(shape, strides, m_offset);
  // Not expressible as a view: copy. (Not contiguous().reshape(): a tensor for which
  // view_strides fails although it is contiguous would recurse forever.)
  const Tensor c = clone();
  return c.as_strided(shape, contiguous_strides(shape), c.m_offset);
}

Tensor Tensor::narrow(int dim, int64_t start, int64_t length) const {
  const int d = wrap_dim(dim, ndim(), "narrow");
  const int64_t n = m_shape[d];
  if (start < 0) start += n;
  DRCNN_CHECK(start >= 0 && length >= 0 && start + length <= n, "narrow: start ", start, " and length ", length,
              " do not fit in dimension ", d, " of extent ", n, " (shape ", m_shape, ")");
  Shape s = m_shape;
  s[d] = length;
  return as_strided(s, m_strides, m_offset + start * m_strides[d]);
}

Tensor Tensor::slice(int dim, int64_t start, int64_t end, int64_t step) const {
  const int d = wrap_dim(dim, ndim(), "slice");
  DRCNN_CHECK(step > 0, "slice: step must be positive, got ", step);
  const int64_t n = m_shape[d];
  auto clampi = [n](int64_t v) { return v < 0 ? std::max<int64_t>(v + n, 0) : std::min(v, n); };
  start = clampi(start);
  end = clampi(end);
  const int64_t len = end > start ? (end - start + step - 1) / step : 0;
  Shape s = m_shape;
  Strides st = m_strides;
  s[d] = len;
  st[d] = m_strides[d] * step;
  return as_strided(s, st, m_offset + start * m_strides[d]);
}

Tensor Tensor::select(int dim, int64_t index) const {
  const int d = wrap_dim(dim, ndim(), "select");
  const int64_t n = m_shape[d];
  DRCNN_CHECK(index >= -n && index < n, "select: index ", index, " is out of range for dimension ", d,
              " of extent ", n);
  if (index < 0) index += n;
  Shape s = m_shape;
  Strides st = m_strides;
  s.erase(d);
  st.erase(d);
  return as_strided(s, st, m_offset + index * m_strides[d]);
}

Tensor Tensor::permute(const std::vector<int>& perm) const {
  DRCNN_CHECK(int(perm.size()) == ndim(), "permute: got ", perm.size(), " dims for a tensor with ", ndim());
  Shape s;
  Strides st;
  bool seen[kMaxDims] = {};
  for (int p : perm) {
    const int d = wrap_dim(p, ndim(), "permute");
    DRCNN_CHECK(!seen[d], "permute: dimension ", d, " appears twice");
    seen[d] = true;
    s.push_back(m_shape[d]);
    st.push_back(m_strides[d]);
  }
  return as_strided(s, st, m_offset);
}

Tensor Tensor::transpose(int dim0, int dim1) const {
  std::vector<int> perm(static_cast<size_t>(ndim()));
  for (int i = 0; i < ndim(); ++i) perm[size_t(i)] = i;
  std::swap(perm[size_t(wrap_dim(dim0, ndim(), "transpose"))], perm[size_t(wrap_dim(dim1, ndim(), "transpose"))]);
  return permute(perm);
}

Tensor Tensor::expand(const Shape& shape) const {
  DRCNN_CHECK(shape.ndim() >= ndim(), "expand: target ", shape, " has fewer dims than the tensor's ", m_shape);
  const int off = shape.ndim() - ndim();
  Shape s;
  Strides st;
  for (int d = 0; d < shape.ndim(); ++d) {
    const int td = d - off;
    int64_t want = shape[d];
    if (td < 0) {
      DRCNN_CHECK(want >= 0, "expand: cannot use ", want, " for a new leading dimension in ", shape);
      s.push_back(want);
      st.push_back(0);
      continue;
    }
    if (want == -1) want = m_shape[td];
    if (m_shape[td] == want) {
      s.push_back(want);
      st.push_back(m_strides[td]);
    } else {
      DRCNN_CHECK(m_shape[td] == 1, "expand: the tensor's extent ", m_shape[td], " in dimension ", td,
                  " must be 1 to expand to ", want, " (", m_shape, " -> ", shape, ")");
      s.push_back(want);
      st.push_back(0);
    }
  }
  return as_strided(s, st, m_offset);
}

Tensor Tensor::squeeze(int dim) const {
  const int d = wrap_dim(dim, ndim(), "squeeze");
  if (m_shape[d] != 1) return *this;
  Shape s = m_shape;
  Strides st = m_strides;
  s.erase(d);
  st.erase(d);
  return as_strided(s, st, m_offset);
}

Tensor Tensor::squeeze() const {
  Shape s;
  Strides st;
  for (int d = 0; d < ndim(); ++d) {
    if (m_shape[d] == 1) continue;
    s.push_back(m_shape[d]);
    st.push_back(m_strides[d]);
  }
  return as_strided(s, st, m_offset);
}

Tensor Tensor::unsqueeze(int dim) const {
  const int d = wrap_dim(dim, ndim() + 1, "unsqueeze");
  Shape s = m_shape;
  Strides st = m_strides;
  const int64_t stride = d < ndim() ? m_strides[d] * m_shape[d] : 1;
  s.insert(d, 1);
  st.insert(d, stride);
  return as_strided(s, st, m_offset);
}

Tensor Tensor::flatten(int start_dim, int end_dim) const {
  if (ndim() == 0) return reshape({1});
  const int a = wrap_dim(start_dim, ndim(), "flatten"), b = wrap_dim(end_dim, ndim(), "flatten");
  DRCNN_CHECK(a <= b, "flatten: start_dim ", a, " is after end_dim ", b);
  Shape s;
  for (int d = 0; d < a; ++d) s.push_back(m_shape[d]);
  int64_t merged = 1;
  for (int d = a; d <= b; ++d) merged *= m_shape[d];
  s.push_back(merged);
  for (int d = b + 1; d < ndim(); ++d) s.push_back(m_shape[d]);
  return reshape(s);
}

// ---------------------------------------------------------------------------- copies
Tensor Tensor::contiguous() const {
  DRCNN_CHECK(defined(), "contiguous: undefined tensor");
  return is_contiguous() ? *this : clone();
}

void Tensor::record_stream(Stream stream) const {
  DRCNN_CHECK(defined(), "record_stream: undefined tensor");
  if (m_device.is_cpu() || !m_storage) return;
  allocator_for(m_device).record_stream(m_storage->data(), stream);
}

Tensor Tensor::clone() const {
  DRCNN_CHECK(defined(), "clone: undefined tensor");
  Tensor t = empty(m_shape, m_dtype, m_device);
  t.copy_(*this);
  return t;
}

Tensor Tensor::to(Device device) const {
  DRCNN_CHECK(defined(), "to: undefined tensor");
  if (device == m_device) return *this;
  // Fail here, naming this op, rather than in the allocation of the destination below.
  if (device.is_cuda() || m_device.is_cuda())
    DRCNN_CHECK(cuda::device_count() > 0, "to(", device, "): ", cuda::unavailable_reason());
  const Tensor src = contiguous();
  Tensor dst = empty(m_shape, m_dtype, device);
  const size_t bytes = size_t(numel()) * element_size();
  if (bytes == 0) return dst;
#if DRCNN_WITH_CUDA
  if (m_device.is_cpu()) {
    DeviceGuard g(device);
    ops::cuda::memcpy_host_to_device(cuda::current_stream(device), dst.data_ptr(), src.data_ptr(), bytes);
  } else if (device.is_cpu()) {
    {
      DeviceGuard g(m_device);
      ops::cuda::memcpy_device_to_host(cuda::current_stream(m_device), dst.data_ptr(), src.data_ptr(), bytes);
    }
    // The host has waited for the stream: the deferred kernel error flags cost one more copy now.
    ops::check_device_errors();
  } else {
    cuda::synchronize(m_device);  // the source's producers run on its own device's stream
    DeviceGuard g(device);
    ops::cuda::memcpy_device_to_device(cuda::current_stream(device), dst.data_ptr(), src.data_ptr(), bytes);
  }
#else
  DRCNN_FAIL("to(", device, "): drcnn was built without CUDA (DRCNN_WITH_CUDA=OFF)");
#endif
  return dst;
}

Tensor Tensor::to(DType dtype) const {
  DRCNN_CHECK(defined(), "to: undefined tensor");
  if (dtype == m_dtype) return *this;
  Tensor t = empty(m_shape, dtype, m_device);
  t.copy_(*this);
  return t;
}

Tensor& Tensor::copy_(const Tensor& src_in) {
  DRCNN_CHECK(defined() && src_in.defined(), "copy_: undefined tensor");
  DRCNN_CHECK(broadcast_shapes(m_shape, src_in.shape(), "copy_") == m_shape, "copy_: source of shape ",
              src_in.shape(), " does not broadcast to the destination's shape ", m_shape);
  if (numel() == 0) return *this;
  if (is_same(src_in)) return *this;  // copying a tensor onto itself changes nothing
  // A source that partly overlaps the destination would be read after it was overwritten, in
  // an order that depends on threads. Checked where it is decidable cheaply: both contiguous
  // (PyTorch raises the same error; strided overlaps are the caller's responsibility).
  if (m_storage == src_in.m_storage && is_contiguous() && src_in.is_contiguous() && src_in.numel() > 0) {
    const int64_t a0 = m_offset * int64_t(element_size()), a1 = a0 + numel() * int64_t(element_size());
    const int64_t b0 = src_in.m_offset * int64_t(src_in.element_size());
    const int64_t b1 = b0 + src_in.numel() * int64_t(src_in.element_size());
    DRCNN_CHECK(a1 <= b0 || b1 <= a0, "copy_: the source (shape ", src_in.shape(), ", offset ", src_in.m_offset,
                ") partly overlaps the destination (shape ", m_shape, ", offset ", m_offset,
                ") in the same storage; copy the source with clone() first");
  }
  const Tensor src = src_in.device() == m_device ? src_in : src_in.to(m_device);
  const ops::ElementwiseLaunch l = runtime::make_elementwise_launch(*this, {&src});
  if (src.dtype() == m_dtype) {
    on_device(
        m_device, "copy_", [&] { ops::cpu::copy(element_size(), l); },
        [&](auto s) { ops::cuda::copy(s, element_size(), l); });
  } else {
    on_device(
        m_device, "copy_", [&] { ops::cpu::cast(m_dtype, src.dtype(), l); },
        [&](auto s) { ops::cuda::cast(s, m_dtype, src.dtype(), l); });
  }
  return *this;
}

Tensor& Tensor::fill_(double value) {
  DRCNN_CHECK(defined(), "fill_: undefined tensor");
  if (is_integral(m_dtype)) {
    // static_cast of NaN, inf or an out-of-range double to an integer is undefined behaviour:
    // the value, truncated toward zero, must fit the dtype. (Bounds are exact doubles.)
    const double t = std::trunc(value);
    double lo = 0, hi_excl = 256;                                               // uint8
    if (m_dtype == DType::Int32) lo = -2147483648.0, hi_excl = 2147483648.0;
    if (m_dtype == DType::Int64) lo = -9223372036854775808.0, hi_excl = 9223372036854775808.0;
    DRCNN_CHECK(std::isfinite(value) && t >= lo && t < hi_excl, "fill_: ", value, " is not representable in ",
                m_dtype, " (after truncation toward zero it must lie in [", lo, ", ", hi_excl, "))");
  }
  if (numel() == 0) return *this;
  ops::ElementwiseLaunch l = runtime::make_elementwise_launch(*this, {});
  l.scalar[0] = value;
  on_device(
      m_device, "fill_", [&] { ops::cpu::fill(m_dtype, l); }, [&](auto s) { ops::cuda::fill(s, m_dtype, l); });
  return *this;
}

// ---------------------------------------------------------------------------- host access
namespace detail {
void copy_host_to(const Tensor& dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  if (dst.device().is_cpu()) {
    std::memcpy(dst.data_ptr(), src, bytes);
    return;
  }
#if DRCNN_WITH_CUDA
  DeviceGuard g(dst.device());
  ops::cuda::memcpy_host_to_device(cuda::current_stream(dst.device()), dst.data_ptr(), src, bytes);
#else
  DRCNN_FAIL("copy to ", dst.device(), ": drcnn was built without CUDA");
#endif
}
}  // namespace detail

template <typename T>
std::vector<T> Tensor::to_vector() const {
  DRCNN_CHECK(defined(), "to_vector: undefined tensor");
  const Tensor host = to(Device::cpu()).contiguous();
  std::vector<T> out(static_cast<size_t>(numel()));
  dispatch_all(m_dtype, "to_vector", [&](auto tag) {
    using S = typename decltype(tag)::type;
    const S* p = static_cast<const S*>(host.data_ptr());
    for (size_t i = 0; i < out.size(); ++i) out[i] = ops::detail::convert<T>(p[i]);
  });
  return out;
}

template <typename T>
T Tensor::item() const {
  DRCNN_CHECK(defined(), "item: undefined tensor");
  DRCNN_CHECK(numel() == 1, "item: expected a tensor with one element, got shape ", m_shape);
  return to_vector<T>()[0];
}

#define DRCNN_INSTANTIATE_HOST_ACCESS(T)                  \
  template std::vector<T> Tensor::to_vector<T>() const;  \
  template T Tensor::item<T>() const;
DRCNN_INSTANTIATE_HOST_ACCESS(float)
DRCNN_INSTANTIATE_HOST_ACCESS(double)
DRCNN_INSTANTIATE_HOST_ACCESS(int32_t)
DRCNN_INSTANTIATE_HOST_ACCESS(int64_t)
DRCNN_INSTANTIATE_HOST_ACCESS(uint8_t)
DRCNN_INSTANTIATE_HOST_ACCESS(bool)
DRCNN_INSTANTIATE_HOST_ACCESS(Half)
DRCNN_INSTANTIATE_HOST_ACCESS(BFloat16)
#undef DRCNN_INSTANTIATE_HOST_ACCESS

// ---------------------------------------------------------------------------- printing
std::string to_string(const Tensor& t, int max_elements) {
  if (!t.defined()) return "tensor(undefined)";
  std::string out = "tensor(";
  if (t.numel() <= max_elements) {
    const std::vector<double> v = t.to_vector<double>();
    // Nested brackets, row-major.
    const Shape& s = t.shape();
    std::vector<int64_t> idx(static_cast<size_t>(s.ndim()), 0);
    if (s.ndim() == 0) out += fmt::format("{}", v.empty() ? 0.0 : v[0]);
    for (size_t i = 0; i < v.size() && s.ndim() > 0; ++i) {
      int opened = 0;
      for (int d = s.ndim() - 1; d >= 0 && idx[size_t(d)] == 0; --d) ++opened;
      if (i > 0) out += ", ";
      out.append(size_t(opened), '[');
      out += fmt::format("{:.6g}", v[i]);
      int closed = 0;
      for (int d = s.ndim() - 1; d >= 0; --d) {
        if (++idx[size_t(d)] < s[d]) break;
        idx[size_t(d)] = 0;
        ++closed;
      }
      out.append(size_t(closed), ']');
    }
    if (v.empty() && s.ndim() > 0) out += "[]";
  } else {
    out += fmt::format("<{} elements>", t.numel());
  }
  out += fmt::format(", shape={}, dtype={}, device={})", t.shape(), t.dtype(), t.device());
  return out;
}
}  // namespace drcnn
