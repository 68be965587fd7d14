// Detects objects in one image with a converted checkpoint, in a program of your own: what
// drcnn_detect does, in the fewest lines. Built against an installed drcnn through
// find_package(drcnn) (tests/consumer builds and runs it), and in this tree as drcnn_detect_image.
//   detect_image CONFIG.yaml WEIGHTS.safetensors IMAGE OUT.png [SCORE]
// CONFIG and WEIGHTS: tools/convert_checkpoint.py's output (or a drcnn_train run's config.yaml
// and model.safetensors). Prints one line per detection with score >= SCORE (default 0.3) and
// draws them into OUT.png.
#include <array>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "drcnn/core/error.h"
#include "drcnn/data/dataset.h"
#include "drcnn/data/draw.h"
#include "drcnn/data/image.h"
#include "drcnn/data/sampler.h"
#include "drcnn/data/transforms.h"
#include "drcnn/io/config.h"
#include "drcnn/io/safetensors.h"
#include "drcnn/models/detector.h"

// The "classes" metadata the converter writes: a JSON list of plain strings (["a", "b"]).
static std::vector<std::string> class_names(const drcnn::io::SafetensorsFile& f, int64_t count) {
  std::vector<std::string> names;
  const auto it = f.metadata.find("classes");
  if (it != f.metadata.end()) {
    const std::string& s = it->second;
    for (size_t a = s.find('"'); a != std::string::npos; a = s.find('"', s.find('"', a + 1) + 1))
      names.push_back(s.substr(a + 1, s.find('"', a + 1) - a - 1));
  }
  if (int64_t(names.size()) != count) {
    names.clear();
    for (int64_t k = 0; k < count; ++k) names.push_back("class_" + std::to_string(k));
  }
  return names;
}

int main(int argc, char** argv) {
  if (argc != 5 && argc != 6) {
    std::fprintf(stderr, "usage: %s CONFIG.yaml WEIGHTS.safetensors IMAGE OUT.png [SCORE]\n", argv[0]);
    return 2;
  }
  const float score = argc == 6 ? std::strtof(argv[5], nullptr) : 0.3f;
  try {
    using namespace drcnn;
    // The model: its config, then the weights by name (strict: every tensor must fit).
    const io::RunConfig cfg = io::resolve_config(argv[1], {});
    const io::SafetensorsFile weights = io::load_safetensors(argv[2]);
    Generator gen(0);
    models::TwoStageDetector<float> model(cfg.model, gen);
    model.load_state_dict(weights.tensors);
    model.eval();

    // The image through the config's test transform (resize, normalise), padded to 32.
    data::Image image = data::read_image(argv[3]);
    data::Sample sample = data::make_sample(data::DetectionRecord{}, image);
    data::RandomStream rng(0, 0);  // the test pipeline draws nothing
    data::test_pipeline(io::test_resize(cfg.data), cfg.data.normalize).run(sample, rng);
    const ImageList batch = ImageList::from_images({sample.tensor}, cfg.model.size_divisor);

    // Detections in the original image's pixels.
    const data::ImageMeta& m = sample.meta;
    const Instances det = model.predict(batch, {{m.scale_w, m.scale_h}}, {{m.original_height, m.original_width}}).at(0);

    const std::vector<std::string> classes = class_names(weights, cfg.model.num_classes);
    const std::vector<float> b = det.boxes.tensor().to_vector<float>();
    const std::vector<float> s = det.scores.to_vector<float>();
    const std::vector<int64_t> l = det.labels.to_vector<int64_t>();
    std::vector<std::array<float, 4>> boxes;
    for (size_t k = 0; k < s.size(); ++k) {
      boxes.push_back({b[4 * k], b[4 * k + 1], b[4 * k + 2], b[4 * k + 3]});
      if (s[k] >= score)
        std::printf("%-12s %.3f  [%.1f, %.1f, %.1f, %.1f]\n", classes[size_t(l[k])].c_str(), double(s[k]),
                    double(b[4 * k]), double(b[4 * k + 1]), double(b[4 * k + 2]), double(b[4 * k + 3]));
    }
    data::DrawOptions draw;
    draw.score_threshold = score;
    data::draw_detections(image, boxes, l, s, classes, draw);
    data::write_png(argv[4], image);
    std::printf("%zu detections, drawn into %s\n", s.size(), argv[4]);
    return 0;
  } catch (const drcnn::Error& e) {
    std::fprintf(stderr, "detect_image: %s\n", e.what());
    return 1;
  }
}
