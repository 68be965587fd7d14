// Loads a torchvision ResNet state_dict exported to safetensors into drcnn's ResNet (by name,
// frozen BatchNorm with eps 1e-5) and compares C2..C5 with torchvision's outputs.
//   drcnn_compare_resnet WEIGHTS.safetensors IO.safetensors DEPTH [pytorch|caffe EPS [DCN]]
// IO holds "input" and the reference's "C2".."C5" (tools/check_torchvision_resnet.py writes both;
// tools/check_detectron_resnet.py a converted Detectron trunk, style caffe, eps 0;
// tools/check_dcn_resnet.py a converted DCNv2 trunk, DCN "0111" = stage_with_dcn per layer).
// Prints the max errors; exits 1 when an output is off by more than 1e-4 relative to its scale.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "drcnn/autograd/variable.h"
#include "drcnn/core/error.h"
#include "drcnn/io/safetensors.h"
#include "drcnn/models/resnet.h"

int main(int argc, char** argv) {
  using namespace drcnn;
  using namespace drcnn::models;
  if (argc != 4 && argc != 6 && argc != 7) {
    std::fprintf(stderr, "usage: %s WEIGHTS.safetensors IO.safetensors DEPTH [pytorch|caffe EPS [DCN, e.g. 0111]]\n",
                 argv[0]);
    return 2;
  }
  try {
    const io::SafetensorsFile weights = io::load_safetensors(argv[1]);
    const io::SafetensorsFile data = io::load_safetensors(argv[2]);
    ResNetOptions o;
    o.depth = std::atoi(argv[3]);
    o.norm.kind = NormKind::FrozenBatchNorm;
    o.norm.eps = argc >= 6 ? std::atof(argv[5]) : 1e-5;
    if (argc == 7) {
      const std::string dcn = argv[6];
      if (dcn.size() != 4 || dcn.find_first_not_of("01") != std::string::npos) {
        std::fprintf(stderr, "drcnn_compare_resnet: DCN must be four 0/1 digits (layer1..layer4), got '%s'\n", argv[6]);
        return 2;
      }
      for (size_t s = 0; s < 4; ++s) o.stage_with_dcn[s] = dcn[s] == '1';
    }
    if (argc >= 6) {
      const std::string style = argv[4];
      if (style != "pytorch" && style != "caffe") {
        std::fprintf(stderr, "drcnn_compare_resnet: style must be pytorch or caffe, got '%s'\n", argv[4]);
        return 2;
      }
      o.style = style == "caffe" ? ResNetStyle::Caffe : ResNetStyle::Pytorch;
    }
    Generator gen(0);
    ResNet<float> net(o, gen);
    NamedTensors state;
    for (const auto& [name, t] : weights.tensors)
      if (name.rfind("fc.", 0) != 0) state.emplace_back(name, t);  // the classifier is not part of the trunk
    net.load_state_dict(state);  // strict: every trunk key must be there
    net.eval();
    NoGradGuard no_grad;
    const auto t0 = std::chrono::steady_clock::now();
    const auto outs = net.forward(Variable(data.at("input")));
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    bool ok = true;
    for (int i = 0; i < 4; ++i) {
      char name_buf[8];
      std::snprintf(name_buf, sizeof name_buf, "C%d", i + 2);
      const std::string name = name_buf;
      const auto a = outs[size_t(i)].data().to_vector<double>();
      const auto e = data.at(name).to_vector<double>();
      double max_abs = 0, scale = 0;
      for (size_t k = 0; k < a.size(); ++k) {
        max_abs = std::max(max_abs, std::abs(a[k] - e[k]));
        scale = std::max(scale, std::abs(e[k]));
      }
      const bool good = a.size() == e.size() && max_abs <= 1e-4 * scale;
      ok = ok && good;
      std::printf("%s: %zu values, max |torchvision| %.4g, max abs error %.3g (%.3g of the scale) %s\n", name.c_str(),
                  e.size(), scale, max_abs, max_abs / scale, good ? "ok" : "TOO LARGE");
    }
    std::printf("loaded %zu tensors, forward %.0f ms, %s\n", state.size(), ms, ok ? "match" : "MISMATCH");
    return ok ? 0 : 1;
  } catch (const Error& e) {
    std::fprintf(stderr, "drcnn_compare_resnet: %s\n", e.what());
    return 1;
  }
}
