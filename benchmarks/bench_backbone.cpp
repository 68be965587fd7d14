// The whole backbone on the CPU: ResNet (torchvision layout, frozen BN) + FPN (max-pool P6),
// float32, batch 1, as the detector runs it. Cases:
//   model 0: ResNet-50 + FPN 256 channels on 1x3x320x320 (the detector's backbone)
//   model 1: ResNet-18 + FPN 128 channels on 1x3x256x256 (a smaller CPU-friendly case)
// each with frozen_stages 1 (the detector's setting: stem and layer1 frozen) and -1 (nothing
// frozen), forward only (under NoGradGuard) and forward + backward (backward of
// sum(P2) + ... + sum(P6), gradients into every trainable parameter; they are dropped before
// each iteration so nothing accumulates), at 1 and 2 CPU threads.
//
// FLOP rule (convolutions only, counted analytically from the architecture; norms, relu, adds,
// pooling, upsampling and the FPN biases are not counted): a convolution's forward is
// 2 * Cout * Ho * Wo * (Cin / groups) * kh * kw flops (batch 1). Its backward computes
// grad_weight when the weight is trainable and grad_input when its input carries a gradient
// (some trainable parameter lies upstream), each a product of the forward's size. So
// forward + backward counts the forward x (1 + [weight trainable] + [input needs a gradient]):
// x3 for a trainable conv inside the trainable part, x2 for a trainable conv whose input needs
// no gradient (the stem with frozen_stages -1; the first trainable block's conv1 and downsample
// and the FPN's C2 lateral with frozen_stages 1), x1 for frozen convs upstream of everything
// trainable (nothing to compute backward: the stem and layer1 with frozen_stages 1).
// Counters: real time per iteration (ms), "img/s" (items_per_second), "flops" = GFLOP/s over
// wall-clock time, "GFLOP" per iteration. The conv list is checked against the built model
// (number of 4-D weights and their element count) before timing.
//
// Args: {model, frozen_stages, backward (0/1), threads}. Use --benchmark_repetitions=N and the
// median aggregate (each repetition is one iteration at ~1 s); PyTorch on the same models:
// tools/bench_backbone_torch.py --binary build/<dir>/benchmarks/bench_backbone.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "drcnn/autograd/functions.h"
#include "drcnn/core/generator.h"
#include "drcnn/core/parallel_cpu.h"
#include "drcnn/core/tensor.h"
#include "drcnn/models/fpn.h"
#include "drcnn/models/resnet.h"

namespace {

using drcnn::Generator;
using drcnn::Shape;
using drcnn::Tensor;
using drcnn::Variable;

struct ModelCase {
  const char* name;
  int depth;
  int64_t fpn_channels, size;  // square input size x size
};
// Same list (names and order) as tools/bench_backbone_torch.py.
const std::vector<ModelCase> kModels = {
    {"r50_fpn256_320", 50, 256, 320},
    {"r18_fpn128_256", 18, 128, 256},
};

// ------------------------------------------------------------------ analytic FLOP count
struct ConvCost {
  int64_t macs;      // Cout * Ho * Wo * Cin * kh * kw (groups 1 throughout)
  int64_t weights;   // Cout * Cin * kh * kw
  bool weight_grad;  // the weight is trainable
  bool input_grad;   // a gradient flows into the input
};

struct Walker {
  std::vector<ConvCost> convs;
  /// Appends the conv and returns the output size for a square input of size h.
  int64_t conv(int64_t cin, int64_t cout, int64_t k, int64_t stride, int64_t h, bool trainable, bool input_grad) {
    const int64_t ho = (h + 2 * (k / 2) - k) / stride + 1;
    convs.push_back({cout * ho * ho * cin * k * k, cout * cin * k * k, trainable, input_grad});
    return ho;
  }
};

/// Every convolution of ResNet-`depth` (style pytorch) + FPN (max-pool P6) for a size x size
/// image that needs no gradient, with what its backward computes.
std::vector<ConvCost> backbone_convs(int depth, int64_t fpn_channels, int64_t size, int frozen_stages) {
  Walker w;
  const bool bottleneck = depth >= 50;
  const std::vector<int> blocks = depth == 18 ? std::vector<int>{2, 2, 2, 2} : std::vector<int>{3, 4, 6, 3};
  const int64_t base = 64, expansion = bottleneck ? 4 : 1;
  bool grad = frozen_stages < 0;  // does the current activation carry a gradient?
  int64_t h = w.conv(3, base, 7, 2, size, frozen_stages < 0, false);
  h = (h + 2 - 3) / 2 + 1;  // max pool 3x3 / 2, padding 1
  int64_t in = base;
  std::vector<std::tuple<int64_t, int64_t, bool>> levels;  // (channels, size, grad) of C2..C5
  for (int s = 0; s < 4; ++s) {
    const bool trainable = s >= frozen_stages;  // layer(s+1) is frozen when s + 1 <= frozen_stages
    const int64_t planes = base << s, out = planes * expansion;
    for (int b = 0; b < blocks[size_t(s)]; ++b) {
      const int64_t stride = (s > 0 && b == 0) ? 2 : 1;
      const bool in_grad = grad, inner_grad = grad || trainable;
      int64_t ho;
      if (bottleneck) {
        const int64_t h1 = w.conv(in, planes, 1, 1, h, trainable, in_grad);
        ho = w.conv(planes, planes, 3, stride, h1, trainable, inner_grad);
        w.conv(planes, out, 1, 1, ho, trainable, inner_grad);
      } else {
        ho = w.conv(in, planes, 3, stride, h, trainable, in_grad);
        w.conv(planes, planes, 3, 1, ho, trainable, inner_grad);
      }
      if (stride != 1 || in != out) w.conv(in, out, 1, stride, h, trainable, in_grad);
      h = ho;
      in = out;
      grad = inner_grad;
    }
    levels.emplace_back(in, h, grad);
  }
  for (const auto& [c, hl, g] : levels) w.conv(c, fpn_channels, 1, 1, hl, true, g);         // laterals
  for (const auto& [c, hl, g] : levels) w.conv(fpn_channels, fpn_channels, 3, 1, hl, true, true);  // outputs
  return w.convs;
}

double conv_flops(const std::vector<ConvCost>& convs, bool backward) {
  double total = 0;
  for (const ConvCost& c : convs)
    total += 2.0 * double(c.macs) * (backward ? 1.0 + double(c.weight_grad) + double(c.input_grad) : 1.0);
  return total;
}

// ------------------------------------------------------------------------------ models
struct Backbone {
  std::unique_ptr<drcnn::models::ResNet<float>> resnet;
  std::unique_ptr<drcnn::models::Fpn<float>> fpn;
  std::vector<Variable> trainable;
  Variable input;
  double flops_fwd = 0, flops_fwd_bwd = 0;
};

void abort_with(const std::string& msg) {
  std::fprintf(stderr, "bench_backbone: %s\n", msg.c_str());
  std::abort();
}

/// Built once per (model, frozen_stages) and kept: construction (initialising ~26M weights)
/// would otherwise be repeated for every repetition.
Backbone& backbone(int model, int frozen_stages) {
  static std::map<std::pair<int, int>, std::unique_ptr<Backbone>> cache;
  auto& slot = cache[{model, frozen_stages}];
  if (slot) return *slot;
  const ModelCase& m = kModels[size_t(model)];
  slot = std::make_unique<Backbone>();
  Backbone& b = *slot;
  Generator gen(0);
  drcnn::models::ResNetOptions ro;
  ro.depth = m.depth;
  ro.norm.kind = drcnn::models::NormKind::FrozenBatchNorm;
  ro.frozen_stages = frozen_stages;
  b.resnet = std::make_unique<drcnn::models::ResNet<float>>(ro, gen);
  drcnn::models::FpnOptions fo;
  fo.in_channels = b.resnet->out_channels();
  fo.out_channels = m.fpn_channels;
  fo.num_outs = 5;
  fo.extra = drcnn::models::FpnExtra::MaxPool;
  b.fpn = std::make_unique<drcnn::models::Fpn<float>>(fo, gen);
  b.resnet->train();
  b.fpn->train();
  b.input = Variable(Tensor::randn(Shape{1, 3, m.size, m.size}, gen));

  // The analytic conv list must describe the model that runs.
  const std::vector<ConvCost> convs = backbone_convs(m.depth, m.fpn_channels, m.size, frozen_stages);
  int64_t n4 = 0, numel4 = 0, trainable4 = 0;
  for (const drcnn::Module* mod : {static_cast<const drcnn::Module*>(b.resnet.get()), static_cast<const drcnn::Module*>(b.fpn.get())})
    for (const auto& [name, p] : mod->named_parameters()) {
      if (p.ndim() == 4) {
        ++n4;
        numel4 += p.numel();
        trainable4 += p.requires_grad() ? p.numel() : 0;
      }
      if (p.requires_grad()) b.trainable.push_back(p);
    }
  int64_t ana_numel = 0, ana_trainable = 0;
  for (const ConvCost& c : convs) {
    ana_numel += c.weights;
    ana_trainable += c.weight_grad ? c.weights : 0;
  }
  if (n4 != int64_t(convs.size()) || numel4 != ana_numel || trainable4 != ana_trainable)
    abort_with(std::string("conv list of ") + m.name + " does not match the model: " + std::to_string(n4) + " vs " +
               std::to_string(convs.size()) + " convs, " + std::to_string(numel4) + " vs " + std::to_string(ana_numel) +
               " weights, " + std::to_string(trainable4) + " vs " + std::to_string(ana_trainable) + " trainable");
  b.flops_fwd = conv_flops(convs, false);
  b.flops_fwd_bwd = conv_flops(convs, true);
  return b;
}

std::vector<Variable> run_forward(const Backbone& b) { return b.fpn->forward(b.resnet->forward(b.input)); }

void run_forward_backward(Backbone& b) {
  for (Variable& p : b.trainable) p.zero_grad();
  const std::vector<Variable> outs = run_forward(b);
  Variable total = drcnn::sum(outs[0]);
  for (size_t i = 1; i < outs.size(); ++i) total = drcnn::add(total, drcnn::sum(outs[i]));
  total.backward();
  benchmark::DoNotOptimize(b.trainable.back().grad().data_ptr());
}

struct ThreadScope {
  explicit ThreadScope(int n) { drcnn::set_cpu_threads(n); }
  ~ThreadScope() { drcnn::set_cpu_threads(0); }
};

// args: {model, frozen_stages, backward (0/1), threads}
void BM_Backbone(benchmark::State& state) {
  const int model = int(state.range(0)), frozen = int(state.range(1));
  const bool backward = state.range(2) != 0;
  ThreadScope threads(int(state.range(3)));
  static std::map<std::tuple<int, int, bool, int>, bool> warmed;
  Backbone& b = backbone(model, frozen);
  auto once = [&] {
    if (backward) {
      run_forward_backward(b);
    } else {
      drcnn::NoGradGuard no_grad;
      const std::vector<Variable> outs = run_forward(b);
      benchmark::DoNotOptimize(outs.back().data().data_ptr());
    }
  };
  // One untimed warm-up per case (fills the caching allocator for this thread count).
  if (!warmed[{model, frozen, backward, int(state.range(3))}]) {
    once();
    warmed[{model, frozen, backward, int(state.range(3))}] = true;
  }
  for (auto _ : state) {
    once();
    benchmark::ClobberMemory();
  }
  const double flops = backward ? b.flops_fwd_bwd : b.flops_fwd;
  state.SetItemsProcessed(state.iterations());  // one image per iteration
  state.counters["flops"] = benchmark::Counter(flops * double(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["GFLOP"] = flops / 1e9;
  state.SetLabel(std::string(kModels[size_t(model)].name) + " frozen_stages " + std::to_string(frozen) +
                 (backward ? " fwd+bwd" : " fwd"));
}

void args(benchmark::internal::Benchmark* b) {
  for (int threads : {1, 2})
    for (int64_t model = 0; model < int64_t(kModels.size()); ++model)
      for (int frozen : {1, -1})
        for (int bwd : {0, 1}) {
          if (bwd == 0 && frozen == -1) continue;  // frozen stages change nothing in a no-grad forward
          b->Args({model, frozen, bwd, threads});
        }
}
// With --benchmark_repetitions=N, Google Benchmark's "median" aggregate is the figure to read
// (tools/bench_backbone_torch.py reports the median of N on both sides).
// CPU time is the process's (all threads): on a shared machine it is less sensitive to other
// jobs than wall-clock time (which the counters use).
BENCHMARK(BM_Backbone)->Apply(args)->Unit(benchmark::kMillisecond)->UseRealTime()->MeasureProcessCPUTime();
}  // namespace

BENCHMARK_MAIN();
