// Large COCO annotation file: load_coco (simdjson On-Demand) and the CocoDataset build, on a
// generated COCO-like file written to a temporary folder and deleted afterwards.
//
//   bench_coco_load [--images N] [--annotations N] [--repeat N] [--keep PATH] [--python EXE]
//
// Defaults are instances_train2017's counts: 118,287 images, 860,001 annotations (80 categories
// with COCO's non-contiguous ids 1..90), which with polygons like COCO's (8 to 42 points,
// two-decimal coordinates) and 1% crowd RLE annotations makes a file of about 450 MB.
// Prints seconds, MB/s and the peak RSS (getrusage; it includes the file buffer simdjson needs).
// --python EXE also runs tools/bench_coco_load.py (Python json.load and, when installed,
// pycocotools.coco.COCO) on the same file. A plain main: one large run, not a micro-benchmark.
#include <fmt/format.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "drcnn/data/coco.h"

namespace {
namespace fs = std::filesystem;

struct Lcg {
  uint64_t state;
  uint64_t next() {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return state >> 33;
  }
  int64_t below(int64_t n) { return int64_t(next() % uint64_t(n)); }
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// User + system CPU seconds of this process (the machine may be shared: wall time alone misleads).
double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + 1e-6 * double(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) / 1024.0;  // KiB on Linux
}

/// Writes value/100 with two decimals ("123.45").
void centi(fmt::memory_buffer& b, int64_t v) { fmt::format_to(std::back_inserter(b), "{}.{:02}", v / 100, v % 100); }

/// Streams the file in 4 MB pieces (the generator never holds the whole file).
void generate(const fs::path& path, int64_t n_images, int64_t n_anns) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) {
    fmt::print(stderr, "cannot write {}\n", path.string());
    std::exit(1);
  }
  fmt::memory_buffer b;
  const auto flush = [&](bool force) {
    if (force || b.size() > (4u << 20)) {
      std::fwrite(b.data(), 1, b.size(), f);
      b.clear();
    }
  };
  auto out = std::back_inserter(b);
  Lcg rng{2017};
  fmt::format_to(out, R"({{"info": {{"description": "drcnn bench_coco_load synthetic COCO", "year": 2017}},)"
                      "\n" R"("licenses": [{{"url": "http://creativecommons.org/licenses/by-nc-sa/2.0/", "id": 1, )"
                      R"("name": "Attribution-NonCommercial-ShareAlike License"}}],)"
                      "\n\"images\": [");
  const auto n = static_cast<size_t>(n_images);
  std::vector<int64_t> ids(n), widths(n), heights(n);
  int64_t id = 9;
  for (int64_t i = 0; i < n_images; ++i) {
    id += 1 + rng.below(8);
    ids[size_t(i)] = id;
    widths[size_t(i)] = 200 + rng.below(441);
    heights[size_t(i)] = 200 + rng.below(441);
    fmt::format_to(out,
                   R"({}{{"license": {}, "file_name": "{:012}.jpg", "coco_url": "http://images.cocodataset.org/train2017/{:012}.jpg", )"
                   R"("height": {}, "width": {}, "date_captured": "2013-11-14 11:18:45", )"
                   R"("flickr_url": "http://farm4.staticflickr.com/3153/{}_2ab5e8e7a3_z.jpg", "id": {}}})",
                   i ? ",\n" : "", 1 + rng.below(8), id, id, heights[size_t(i)], widths[size_t(i)], id * 31, id);
    flush(false);
  }
  static const int cat_ids[80] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21,
                                  22, 23, 24, 25, 27, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44,
                                  46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65,
                                  67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90};
  fmt::format_to(out, "],\n\"annotations\": [");
  for (int64_t k = 0; k < n_anns; ++k) {
    const size_t im = size_t(rng.below(n_images));
    const int64_t W = widths[im] * 100, H = heights[im] * 100;  // in hundredths of a pixel
    const int64_t w = 100 + rng.below(W / 2), h = 100 + rng.below(H / 2);
    const int64_t x = rng.below(W - w + 1), y = rng.below(H - h + 1);
    const bool crowd = rng.below(100) == 0;
    fmt::format_to(out, R"({}{{"segmentation": )", k ? ",\n" : "");
    if (crowd) {
      fmt::format_to(out, R"({{"counts": [)");
      const int runs = 20 + int(rng.below(40));
      for (int r = 0; r < runs; ++r) fmt::format_to(out, "{}{}", r ? "," : "", rng.below(5000));
      fmt::format_to(out, R"(], "size": [{}, {}]}})", H / 100, W / 100);
    } else {
      b.push_back('[');
      b.push_back('[');
      const int points = 8 + int(rng.below(35));
      for (int p = 0; p < points; ++p) {
        if (p) b.push_back(',');
        centi(b, x + rng.below(w + 1));
        b.push_back(',');
        centi(b, y + rng.below(h + 1));
      }
      b.push_back(']');
      b.push_back(']');
    }
    fmt::format_to(out, R"(, "area": )");
    centi(b, (w / 10) * (h / 10) * 6 / 10 + 1);
    fmt::format_to(out, R"(, "iscrowd": {}, "image_id": {}, "bbox": [)", crowd ? 1 : 0, ids[im]);
    centi(b, x);
    b.push_back(',');
    centi(b, y);
    b.push_back(',');
    centi(b, w);
    b.push_back(',');
    centi(b, h);
    fmt::format_to(out, R"(], "category_id": {}, "id": {}}})", cat_ids[rng.below(80)], 900000 + k);
    flush(false);
  }
  fmt::format_to(out, "],\n\"categories\": [");
  for (int c = 0; c < 80; ++c)
    fmt::format_to(out, R"({}{{"supercategory": "thing", "id": {}, "name": "class{}"}})", c ? ", " : "", cat_ids[c],
                   cat_ids[c]);
  fmt::format_to(out, "]}}\n");
  flush(true);
  std::fclose(f);
}

}  // namespace

int main(int argc, char** argv) {
  int64_t n_images = 118287, n_anns = 860001;
  int repeat = 2;
  std::string keep, python;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        fmt::print(stderr, "{} needs a value\n", a);
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--images") n_images = std::stoll(value());
    else if (a == "--annotations") n_anns = std::stoll(value());
    else if (a == "--repeat") repeat = std::stoi(value());
    else if (a == "--keep") keep = value();
    else if (a == "--python") python = value();
    else {
      fmt::print(stderr, "usage: {} [--images N] [--annotations N] [--repeat N] [--keep PATH] [--python EXE]\n",
                 argv[0]);
      return 2;
    }
  }
  const fs::path dir = keep.empty() ? fs::temp_directory_path() / fmt::format("drcnn_bench_coco_{}", ::getpid())
                                    : fs::path(keep).parent_path();
  if (!dir.empty()) fs::create_directories(dir);
  const fs::path file = keep.empty() ? dir / "instances_synthetic.json" : fs::path(keep);

  auto t0 = std::chrono::steady_clock::now();
  generate(file, n_images, n_anns);
  const double mb = double(fs::file_size(file)) / 1e6;
  fmt::print("generated {} ({:.1f} MB, {} images, {} annotations) in {:.2f} s; peak RSS {:.0f} MB\n", file.string(),
             mb, n_images, n_anns, seconds_since(t0), peak_rss_mb());

  for (int r = 0; r < repeat; ++r) {
    t0 = std::chrono::steady_clock::now();
    double c0 = cpu_seconds();
    const drcnn::data::CocoFile coco = drcnn::data::load_coco(file);
    const double t_load = seconds_since(t0), c_load = cpu_seconds() - c0;
    const double rss_load = peak_rss_mb();
    t0 = std::chrono::steady_clock::now();
    c0 = cpu_seconds();
    const drcnn::data::CocoDataset ds(coco, drcnn::data::CocoDatasetOptions{});
    const double t_ds = seconds_since(t0), c_ds = cpu_seconds() - c0;
    const auto& s = ds.stats();
    fmt::print("run {}: load_coco {:.2f} s wall, {:.2f} s CPU ({:.0f} MB/s wall), peak RSS {:.0f} MB | CocoDataset {:.2f} s "
               "wall, {:.2f} s CPU, {} images kept, "
               "{} targets, {} ignored, {} dropped, peak RSS {:.0f} MB | CocoFile: {} annotations, "
               "segmentation text {:.0f} MB\n",
               r, t_load, c_load, mb / t_load, rss_load, t_ds, c_ds, s.images_kept, s.targets, s.ignored,
               s.dropped_outside + s.dropped_area + s.dropped_small, peak_rss_mb(), coco.annotations.size(),
               double(coco.annotations.segmentation_json.size()) / 1e6);
  }

  if (!python.empty()) {
    const fs::path script = fs::path(__FILE__).parent_path().parent_path() / "tools" / "bench_coco_load.py";
    const std::string cmd = fmt::format("'{}' '{}' '{}'", python, script.string(), file.string());
    std::fflush(stdout);
    if (std::system(cmd.c_str()) != 0) fmt::print("python comparison failed: {}\n", cmd);
  }
  if (keep.empty()) fs::remove_all(dir);
  return 0;
}
