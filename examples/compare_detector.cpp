// Runs a detector on prepared input tensors and writes its detections, so a framework's own
// detections on the same tensors can be compared with drcnn's (tools/compare_mmdet.py).
//   drcnn_compare_detector --config CFG.yaml --checkpoint W.safetensors --inputs IN.safetensors
//                          --out OUT.safetensors [--dtype f32|f64] [--threads T]
// IN holds, for i = 0 .. count - 1 (metadata "count"): "image_i" [1, 3, H, W] (normalised and
// padded), "size_i" int64 [2] (h, w before padding), "scale_i" f64 [2] (w_scale, h_scale) and
// "orig_i" int64 [2] (the original h, w). OUT gets "boxes_i" [K, 4], "scores_i" [K] (the model's
// dtype) and "labels_i" int64 [K], each image's detections in predict's order.
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "drcnn/autograd/variable.h"
#include "drcnn/core/error.h"
#include "drcnn/core/parallel_cpu.h"
#include "drcnn/io/config.h"
#include "drcnn/io/safetensors.h"
#include "drcnn/models/detector.h"

namespace {

template <typename T>
int run(const drcnn::io::RunConfig& cfg, const drcnn::io::SafetensorsFile& weights,
        const drcnn::io::SafetensorsFile& in, const std::string& out_path) {
  using namespace drcnn;
  const DType dtype = sizeof(T) == 8 ? DType::Float64 : DType::Float32;
  Generator gen(cfg.seed);
  models::TwoStageDetector<T> model(cfg.model, gen);
  NamedTensors state;
  for (const auto& [name, t] : weights.tensors)
    state.emplace_back(name, t.dtype() == DType::Int64 ? t : t.to(dtype));
  model.load_state_dict(state);
  model.eval();
  const auto count_it = in.metadata.find("count");
  DRCNN_CHECK(count_it != in.metadata.end(), "drcnn_compare_detector: the inputs have no \"count\" metadata");
  const int64_t count = std::stoll(count_it->second);
  std::map<std::string, Tensor> out;
  double seconds = 0;
  for (int64_t i = 0; i < count; ++i) {
    const std::string k = std::to_string(i);
    const Tensor image = in.at("image_" + k).to(dtype);
    const std::vector<int64_t> size = in.at("size_" + k).to_vector<int64_t>();
    const std::vector<double> scale = in.at("scale_" + k).to(DType::Float64).to_vector<double>();
    const std::vector<int64_t> orig = in.at("orig_" + k).to_vector<int64_t>();
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<Instances> det = model.predict(ImageList(image, {ImageSize{size[0], size[1]}}),
                                                     {{scale[0], scale[1]}}, {ImageSize{orig[0], orig[1]}});
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    out["boxes_" + k] = det[0].boxes.tensor();
    out["scores_" + k] = det[0].scores;
    out["labels_" + k] = det[0].labels;
  }
  io::save_safetensors(out_path, out, {{"count", std::to_string(count)}});
  std::printf("%lld images, %s, predict %.2f s per image\n", static_cast<long long>(count),
              sizeof(T) == 8 ? "float64" : "float32", seconds / double(count));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"drcnn detections on prepared input tensors (tools/compare_mmdet.py)"};
  std::string config, checkpoint, inputs, out, dtype = "f32";
  int threads = 0;
  app.add_option("--config", config, "run config YAML (tools/convert_checkpoint.py writes one)")->required();
  app.add_option("--checkpoint", checkpoint, "weights (safetensors)")->required();
  app.add_option("--inputs", inputs, "input tensors (safetensors)")->required();
  app.add_option("--out", out, "detections (safetensors)")->required();
  app.add_option("--dtype", dtype, "f32 or f64")->check(CLI::IsMember({"f32", "f64"}));
  app.add_option("--threads", threads, "compute threads (default: the config's)");
  CLI11_PARSE(app, argc, argv);
  try {
    const drcnn::io::RunConfig cfg = drcnn::io::resolve_config(config, {});
    drcnn::set_cpu_threads(threads > 0 ? threads : cfg.threads);
    const drcnn::io::SafetensorsFile weights = drcnn::io::load_safetensors(checkpoint);
    const drcnn::io::SafetensorsFile in = drcnn::io::load_safetensors(inputs);
    return dtype == "f64" ? run<double>(cfg, weights, in, out) : run<float>(cfg, weights, in, out);
  } catch (const drcnn::Error& e) {
    std::fprintf(stderr, "drcnn_compare_detector: %s\n", e.what());
    return 1;
  }
}
