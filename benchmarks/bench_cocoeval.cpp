// COCO box evaluation benchmark: drcnn::eval::evaluate_bbox (evaluate + accumulate + summarize,
// the work of pycocotools' COCOeval.evaluate/accumulate/summarize) on a COCO-val-sized case,
// 5,000 images x 100 detections over 80 classes, with 1 and 2 OpenMP threads; and the whole
// drcnn-cocoeval path (parse both JSON files + evaluate). tools/bench_cocoeval.py times
// pycocotools on the SAME files (the program writes them first). docs/eval.md has the numbers.
//
// The case (deterministic; LCG state = state * 6364136223846793005 + 1442695040888963407,
// u() = (state >> 11) * 2^-53, seed 2024):
//   80 categories with COCO's ids (1..90 without 12 26 29 30 45 66 68 69 71 83), images
//   640 x 480 with ids 1..5000. Per image: 1 + floor(14 u()) GT boxes (7.5 on average, COCO val
//   has 7.3): class floor(80 u()), w = 8 * 50^u() (8..400 px, log-uniform), h = w * 2^(2u()-1),
//   clipped to the image; area = w h (0.6 + 0.4 u()) (a segmentation-like area); iscrowd when
//   u() < 0.01. Detections, 100 per image: for each GT, with probability 0.9, 1 + floor(3 u())
//   jittered copies (offsets and size changes up to 15% of the size; class wrong when u() < 0.1;
//   score 0.3 + 0.7 u()); the rest up to 100 random boxes of random classes with score 0.3 u().
// Files: $DRCNN_COCOEVAL_BENCH_DIR (default /tmp/drcnn_bench_cocoeval)/{gt,results}.json.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "drcnn/data/coco.h"
#include "drcnn/eval/coco_eval.h"

namespace {
namespace fs = std::filesystem;
using drcnn::data::CocoFile;
using drcnn::eval::CocoResults;

struct Lcg {
  uint64_t state;
  double operator()() {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return double(state >> 11) * 0x1p-53;
  }
};

struct Case {
  CocoFile gt;
  CocoResults dt;
  fs::path gt_path, dt_path;
};

Case make_case(int images, int dets_per_image) {
  Case c;
  c.gt.source = "bench_gt";
  c.dt.source = "bench_results";
  constexpr double W = 640, H = 480;
  for (int id = 1, n = 0; n < 80; ++id) {
    if (id == 12 || id == 26 || id == 29 || id == 30 || id == 45 || id == 66 || id == 68 || id == 69 || id == 71 ||
        id == 83)
      continue;
    drcnn::data::CocoCategory cat;
    cat.id = id;
    cat.name = "class" + std::to_string(id);
    c.gt.categories.push_back(cat);
    ++n;
  }
  Lcg u{2024};
  auto& a = c.gt.annotations;
  auto clip_box = [&](double x, double y, double w, double h) {
    x = std::clamp(x, 0.0, W - 1);
    y = std::clamp(y, 0.0, H - 1);
    return std::array<double, 4>{x, y, std::min(w, W - x), std::min(h, H - y)};
  };
  int64_t ann_id = 1;
  for (int img = 1; img <= images; ++img) {
    drcnn::data::CocoImage im;
    im.id = img;
    im.file_name = std::to_string(img) + ".jpg";
    im.width = int(W);
    im.height = int(H);
    c.gt.images.push_back(im);
    const int n_gt = 1 + int(14 * u());
    const std::size_t first = a.size();
    for (int g = 0; g < n_gt; ++g) {
      const int64_t cat = c.gt.categories[std::size_t(80 * u())].id;
      const double w = 8 * std::pow(50.0, u());
      const double h = w * std::pow(2.0, 2 * u() - 1);
      const auto box = clip_box(u() * (W - 8), u() * (H - 8), w, h);
      a.id.push_back(ann_id++);
      a.image_id.push_back(img);
      a.category_id.push_back(cat);
      a.bbox.push_back(box);
      a.area.push_back(box[2] * box[3] * (0.6 + 0.4 * u()));
      a.iscrowd.push_back(u() < 0.01 ? 1 : 0);
    }
    int made = 0;
    for (std::size_t g = first; g < a.size() && made < dets_per_image; ++g) {
      if (u() >= 0.9) continue;
      const int copies = 1 + int(3 * u());
      for (int k = 0; k < copies && made < dets_per_image; ++k, ++made) {
        const auto& b = a.bbox[g];
        const double dx = 0.3 * (u() - 0.5) * b[2], dy = 0.3 * (u() - 0.5) * b[3];
        const double sw = 1 + 0.3 * (u() - 0.5), sh = 1 + 0.3 * (u() - 0.5);
        const int64_t cat = u() < 0.1 ? c.gt.categories[std::size_t(80 * u())].id : a.category_id[g];
        c.dt.push_back(img, cat, clip_box(b[0] + dx, b[1] + dy, b[2] * sw, b[3] * sh), 0.3 + 0.7 * u());
      }
    }
    for (; made < dets_per_image; ++made) {
      const int64_t cat = c.gt.categories[std::size_t(80 * u())].id;
      const double w = 8 * std::pow(50.0, u());
      c.dt.push_back(img, cat, clip_box(u() * (W - 8), u() * (H - 8), w, w * std::pow(2.0, 2 * u() - 1)), 0.3 * u());
    }
  }
  return c;
}

void write_gt(const CocoFile& f, const fs::path& path) {
  nlohmann::ordered_json j;
  j["images"] = nlohmann::ordered_json::array();
  for (const auto& im : f.images)
    j["images"].push_back({{"id", im.id}, {"file_name", im.file_name}, {"width", im.width}, {"height", im.height}});
  j["categories"] = nlohmann::ordered_json::array();
  for (const auto& c : f.categories) j["categories"].push_back({{"id", c.id}, {"name", c.name}, {"supercategory", ""}});
  j["annotations"] = nlohmann::ordered_json::array();
  const auto& a = f.annotations;
  for (std::size_t i = 0; i < a.size(); ++i)
    j["annotations"].push_back({{"id", a.id[i]},
                                {"image_id", a.image_id[i]},
                                {"category_id", a.category_id[i]},
                                {"bbox", {a.bbox[i][0], a.bbox[i][1], a.bbox[i][2], a.bbox[i][3]}},
                                {"area", a.area[i]},
                                {"iscrowd", int(a.iscrowd[i])}});
  std::ofstream(path, std::ios::binary) << j.dump() << '\n';
}

Case& the_case() {
  static Case c = [] {
    Case k = make_case(5000, 100);
    const char* dir_env = std::getenv("DRCNN_COCOEVAL_BENCH_DIR");
    const fs::path dir = dir_env ? fs::path(dir_env) : fs::temp_directory_path() / "drcnn_bench_cocoeval";
    fs::create_directories(dir);
    k.gt_path = dir / "gt.json";
    k.dt_path = dir / "results.json";
    write_gt(k.gt, k.gt_path);
    drcnn::eval::save_results(k.dt, k.dt_path);
    std::cerr << "bench_cocoeval: " << k.gt.images.size() << " images, " << k.gt.annotations.size() << " GT, "
              << k.dt.size() << " detections; files " << k.gt_path << " " << k.dt_path << "\n"
              << "  pycocotools on the same files: /work/venv/bin/python tools/bench_cocoeval.py " << dir << "\n";
    return k;
  }();
  return c;
}

void BM_CocoEvalBbox(benchmark::State& state) {
  const Case& c = the_case();
  auto params = drcnn::eval::CocoEvalParams::bbox();
  params.num_threads = int(state.range(0));
  double ap = 0;
  for (auto _ : state) {
    const auto r = drcnn::eval::evaluate_bbox(c.gt, c.dt, params);
    ap = r.stats[0];
    // A pointer, not the double: Debian's benchmark 1.7 DoNotOptimize(double&) uses an "+m,r"
    // asm constraint that GCC can satisfy with a general register, corrupting the value.
    benchmark::DoNotOptimize(r.precision.data());
  }
  state.counters["AP"] = ap;
  state.counters["dets"] = double(c.dt.size());
}

void BM_CocoEvalFiles(benchmark::State& state) {
  const Case& c = the_case();
  double ap = 0;
  for (auto _ : state) {
    const auto r = drcnn::eval::evaluate_files(c.gt_path, c.dt_path);
    ap = r.stats[0];
    // A pointer, not the double: Debian's benchmark 1.7 DoNotOptimize(double&) uses an "+m,r"
    // asm constraint that GCC can satisfy with a general register, corrupting the value.
    benchmark::DoNotOptimize(r.precision.data());
  }
  state.counters["AP"] = ap;
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::RegisterBenchmark("BM_CocoEvalBbox", BM_CocoEvalBbox)
      ->ArgName("threads")
      ->Arg(1)
      ->Arg(2)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  benchmark::RegisterBenchmark("BM_CocoEvalFiles", BM_CocoEvalFiles)->Unit(benchmark::kMillisecond)->UseRealTime();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  the_case();  // generate and write the files before timing
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
