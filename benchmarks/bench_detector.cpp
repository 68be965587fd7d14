// One CPU training iteration of the detector, split by stage (issue 5): backbone (ResNet + FPN
// forward), rpn (head + targets + losses), proposals, roi_head (targets, RoIAlign, head, losses),
// backward, optimizer (SGD step). Models:
//   small: DetectorConfig::small_cpu(6) (ResNet-18 GN, FPN 128) on one 256 x 256 image;
//   r50:   DetectorConfig::dynamic_rcnn_r50_fpn_1x(80) on a 320 x 320 image.
// Each image holds 6 ground-truth boxes of varied sizes; the weights are the presets' random
// initialisation (seed 1), the image a fixed pseudo-random texture. A plain main rather than
// Google Benchmark: the stage split is the result. Prints the mean over the timed iterations
// after the warm-up ones and each stage's share. --mode infer times predict() instead (eval
// mode, no gradient), --mode both does both. A last line per run,
//   RESULT <model> <train|infer> <threads> <mean ms> <median ms> <median process CPU ms>
// (CPU time of all threads, std::clock: less disturbed than wall time on a shared machine).
// is what tools/bench_compare.py reads.
//   bench_detector [--model small|r50|all] [--mode train|infer|both] [--iters N] [--warmup N] [--threads N]
//                  [--cpu-bf16]
// --cpu-bf16: bfloat16 convolutions (ops::set_cpu_precision; refused without AVX-512 BF16).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <string>
#include <vector>

#include "drcnn/core/parallel_cpu.h"
#include "drcnn/models/detector.h"
#include "drcnn/ops/cpu_precision.h"
#include "drcnn/ops/elementwise.h"
#include "drcnn/train/sgd.h"

using namespace drcnn;

namespace {

struct Args {
  std::string model = "all";
  std::string mode = "train";
  int iters = 5, warmup = 1, threads = 1;
  bool bf16 = false;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const auto next = [&](const char* flag) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_detector: %s needs a value\n", flag);
        std::exit(2);
      }
      return argv[++i];
    };
    if (!std::strcmp(argv[i], "--model")) a.model = next("--model");
    else if (!std::strcmp(argv[i], "--mode")) a.mode = next("--mode");
    else if (!std::strcmp(argv[i], "--iters")) a.iters = std::atoi(next("--iters"));
    else if (!std::strcmp(argv[i], "--warmup")) a.warmup = std::atoi(next("--warmup"));
    else if (!std::strcmp(argv[i], "--threads")) a.threads = std::atoi(next("--threads"));
    else if (!std::strcmp(argv[i], "--cpu-bf16")) a.bf16 = true;
    else {
      std::fprintf(stderr, "usage: bench_detector [--model small|r50|all] [--mode train|infer|both] [--iters N] [--warmup N] [--threads N] [--cpu-bf16]\n");
      std::exit(2);
    }
  }
  if (a.iters < 1 || a.warmup < 0 || a.threads < 1 || (a.mode != "train" && a.mode != "infer" && a.mode != "both")) {
    std::fprintf(stderr, "bench_detector: --iters >= 1, --warmup >= 0, --threads >= 1, --mode train|infer|both\n");
    std::exit(2);
  }
  return a;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void run(const char* key, const char* label, const models::DetectorConfig& cfg, int64_t size, const Args& args) {
  Generator gen(1);
  models::TwoStageDetector<float> model(cfg, gen);
  std::vector<Variable> params;
  for (const Variable& p : model.parameters())
    if (p.requires_grad()) params.push_back(p);
  train::Sgd sgd(params, train::SgdOptions{});
  const ImageList images = ImageList::from_images({ops::sub(Tensor::rand({3, size, size}, gen), Tensor::full({}, 0.5))}, 32);
  const double s = double(size) / 256.0;
  std::vector<float> boxes;
  for (const double b : {10., 12., 60., 50., 80., 30., 200., 140., 30., 150., 90., 240., 120., 100., 250., 210.,
                         150., 20., 170., 36., 5., 200., 40., 250.})
    boxes.push_back(float(b * s));
  std::vector<Instances> targets;
  targets.emplace_back(ImageSize{size, size}, Boxes(Tensor::from_vector(boxes, Shape{6, 4})),
                       Tensor::from_vector(std::vector<int64_t>{0, 1, 2, 3, 4, 5}, Shape{6}));
  Generator sample(2);
  using Clock = std::chrono::steady_clock;
  if (args.mode != "train") {
    model.eval();
    std::vector<double> times, cpu;
    size_t dets = 0;
    for (int it = 0; it < args.warmup + args.iters; ++it) {
      const auto t0 = Clock::now();
      const std::clock_t c0 = std::clock();
      const std::vector<Instances> r = model.predict(images);
      const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
      if (it >= args.warmup) cpu.push_back(double(std::clock() - c0) / CLOCKS_PER_SEC);
      dets = size_t(r[0].size());
      if (it >= args.warmup) times.push_back(dt);
    }
    double mean = 0;
    for (double t : times) mean += t / double(times.size());
    std::printf("%s: inference (predict), 1 x 3 x %lld x %lld, %d thread%s, %zu detections\n", label,
                (long long)size, (long long)size, args.threads, args.threads == 1 ? "" : "s", dets);
    std::printf("  %-10s %9.1f ms mean, %9.1f ms median of %d after %d warm-up\n", "total", 1e3 * mean,
                1e3 * median(times), args.iters, args.warmup);
    std::printf("RESULT %s infer %d %.3f %.3f %.3f\n", key, args.threads, 1e3 * mean, 1e3 * median(times),
                1e3 * median(cpu));
    model.train(true);
    if (args.mode == "infer") return;
  }
  std::map<std::string, double> total;
  std::vector<double> step_times, step_cpu;
  const char* order[] = {"backbone", "rpn", "proposals", "roi_head", "backward", "optimizer"};
  for (int it = 0; it < args.warmup + args.iters; ++it) {
    const auto t_start = Clock::now();
    const std::clock_t c_start = std::clock();
    models::DetectorLosses out = model.forward_train(images, targets, {0.5, 1.0}, sample);
    auto t0 = Clock::now();
    sgd.zero_grad();
    out.total.backward();
    auto t1 = Clock::now();
    sgd.step();
    auto t2 = Clock::now();
    out.seconds["backward"] = std::chrono::duration<double>(t1 - t0).count();
    out.seconds["optimizer"] = std::chrono::duration<double>(t2 - t1).count();
    if (it >= args.warmup) {
      for (const auto& [k, v] : out.seconds) total[k] += v / args.iters;
      step_times.push_back(std::chrono::duration<double>(Clock::now() - t_start).count());
      step_cpu.push_back(double(std::clock() - c_start) / CLOCKS_PER_SEC);
    }
  }
  double sum = 0;
  for (const char* k : order) sum += total[k];
  std::printf("%s: 1 x 3 x %lld x %lld, %d thread%s, mean of %d iterations after %d warm-up\n", label, (long long)size,
              (long long)size, args.threads, args.threads == 1 ? "" : "s", args.iters, args.warmup);
  for (const char* k : order) std::printf("  %-10s %9.1f ms  %5.1f%%\n", k, 1e3 * total[k], 100 * total[k] / sum);
  std::printf("  %-10s %9.1f ms  (%.2f iterations/s)\n", "total", 1e3 * sum, 1.0 / sum);
  double mean = 0;
  for (double t : step_times) mean += t / double(step_times.size());
  std::printf("RESULT %s train %d %.3f %.3f %.3f\n", key, args.threads, 1e3 * mean, 1e3 * median(step_times),
              1e3 * median(step_cpu));
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse(argc, argv);
  set_cpu_threads(args.threads);
  try {
    if (args.bf16) ops::set_cpu_precision(ops::CpuPrecision::BFloat16);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_detector --cpu-bf16: %s\n", e.what());
    return 1;
  }
  std::printf("CPU precision: %s\n", ops::cpu_precision_name(ops::cpu_precision()));
  if (args.model == "small" || args.model == "all")
    run("small", "small_cpu (ResNet-18 GN, FPN 128)", models::DetectorConfig::small_cpu(6), 256, args);
  if (args.model == "r50" || args.model == "all")
    run("r50", "dynamic_rcnn_r50_fpn_1x (ResNet-50, FPN 256, 80 classes)", models::DetectorConfig::dynamic_rcnn_r50_fpn_1x(80),
        320, args);
  return 0;
}
