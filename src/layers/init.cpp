// Weight initialisers (include/drcnn/layers/init.h): a uniform or normal draw from the seeded
// generator, then an affine map, written into the target in place.
#include "drcnn/layers/init.h"

#include <cmath>

#include "drcnn/core/error.h"
#include "drcnn/ops/elementwise.h"

namespace drcnn::init {

namespace {
void check_target(const char* op, const Tensor& t) {
  DRCNN_CHECK(t.defined(), op, ": the tensor is undefined");
  DRCNN_CHECK(t.dtype() == DType::Float32 || t.dtype() == DType::Float64, op,
              ": the tensor must be float32 or float64, got ", t.dtype());
}

double fan(const char* op, const Tensor& t, FanMode mode) {
  check_target(op, t);
  DRCNN_CHECK(t.ndim() >= 2, op, ": fan in/out needs a tensor with at least 2 dims, got shape ", t.shape());
  const auto [in, out] = fans(t);
  const int64_t f = mode == FanMode::FanIn ? in : out;
  DRCNN_CHECK(f > 0, op, ": the fan of shape ", t.shape(), " is 0");
  return static_cast<double>(f);
}
}  // namespace

double calculate_gain(Nonlinearity nl, double param) {
  switch (nl) {
    case Nonlinearity::Linear:
    case Nonlinearity::Sigmoid: return 1.0;
    case Nonlinearity::Tanh: return 5.0 / 3.0;
    case Nonlinearity::Relu: return std::sqrt(2.0);
    case Nonlinearity::LeakyRelu: return std::sqrt(2.0 / (1.0 + param * param));
  }
  DRCNN_FAIL("calculate_gain: unknown nonlinearity");
}

std::pair<int64_t, int64_t> fans(const Tensor& t) {
  DRCNN_CHECK(t.ndim() >= 2, "init::fans: needs a tensor with at least 2 dims, got shape ", t.shape());
  int64_t receptive = 1;
  for (int d = 2; d < t.ndim(); ++d) receptive *= t.size(d);
  return {t.size(1) * receptive, t.size(0) * receptive};
}

void uniform_(Tensor& t, Generator& gen, double lo, double hi) {
  check_target("init::uniform_", t);
  DRCNN_CHECK(std::isfinite(lo) && std::isfinite(hi) && lo <= hi, "init::uniform_: needs finite lo <= hi, got ", lo,
              " and ", hi);
  const Tensor u = Tensor::rand(t.shape(), gen, t.dtype(), t.device());
  t.copy_(ops::add(ops::mul(u, hi - lo), lo));
}

void normal_(Tensor& t, Generator& gen, double mean, double std) {
  check_target("init::normal_", t);
  DRCNN_CHECK(std::isfinite(mean) && std::isfinite(std) && std >= 0, "init::normal_: needs finite mean and std >= 0, got ",
              mean, " and ", std);
  const Tensor z = Tensor::randn(t.shape(), gen, t.dtype(), t.device());
  t.copy_(ops::add(ops::mul(z, std), mean));
}

void constant_(Tensor& t, double value) {
  check_target("init::constant_", t);
  t.fill_(value);
}

void kaiming_uniform_(Tensor& t, Generator& gen, double a, FanMode mode, Nonlinearity nl) {
  const double bound = calculate_gain(nl, a) * std::sqrt(3.0 / fan("init::kaiming_uniform_", t, mode));
  uniform_(t, gen, -bound, bound);
}

void kaiming_normal_(Tensor& t, Generator& gen, double a, FanMode mode, Nonlinearity nl) {
  const double std = calculate_gain(nl, a) / std::sqrt(fan("init::kaiming_normal_", t, mode));
  normal_(t, gen, 0.0, std);
}

void xavier_uniform_(Tensor& t, Generator& gen, double gain) {
  const double fan_in = fan("init::xavier_uniform_", t, FanMode::FanIn);
  const double fan_out = fan("init::xavier_uniform_", t, FanMode::FanOut);
  const double bound = gain * std::sqrt(6.0 / (fan_in + fan_out));
  uniform_(t, gen, -bound, bound);
}

}  // namespace drcnn::init
