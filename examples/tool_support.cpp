#include "tool_support.h"

#include <fmt/core.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>

#include <unistd.h>

#include "drcnn/core/error.h"
#include "drcnn/core/generator.h"
#include "drcnn/data/draw.h"
#include "drcnn/data/loader.h"
#include "drcnn/data/voc.h"
#include "drcnn/dist/communicator.h"
#include "drcnn/io/safetensors.h"
#include "drcnn/structures/image_list.h"

namespace fs = std::filesystem;

namespace drcnn::tools {

std::vector<std::string> read_id_list(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error("cannot open the image-id list " + path);
  std::vector<std::string> ids;
  for (std::string line; std::getline(in, line);) {
    const size_t b = line.find_first_not_of(" \t\r"), e = line.find_last_not_of(" \t\r");
    if (b != std::string::npos) ids.push_back(line.substr(b, e - b + 1));
  }
  return ids;
}

Split load_split(const io::DatasetConfig& d, bool training, const std::vector<std::string>& class_names) {
  Split s;
  if (d.format == io::DatasetFormat::Coco) {
    s.gt = data::load_coco(d.ann);
    data::CocoDatasetOptions opts;
    if (training) {
      opts.image_root = d.images;
      opts.min_size = 0;
    } else {
      opts = data::CocoDatasetOptions::evaluation(d.images);
    }
    auto ds = std::make_unique<data::CocoDataset>(s.gt, opts);
    s.describe = fmt::format("{} (COCO: {} images kept of {}, {} targets, {} crowd)", d.ann, ds->size(),
                             ds->stats().images_in_file, ds->stats().targets, ds->stats().ignored);
    s.dataset = std::move(ds);
    return s;
  }
  data::VocDatasetOptions opts;
  opts.annotation_dir = d.ann;
  opts.image_dir = d.images;
  if (!d.image_list.empty()) opts.image_ids = read_id_list(d.image_list);
  opts.class_names = class_names;  // validation: the training set's classes, in its order
  if (!training) opts.filter_empty = data::EmptyImageFilter::kKeepAll;
  auto ds = std::make_unique<data::VocDataset>(opts);
  s.gt = eval::coco_ground_truth(*ds, d.ann);
  s.describe = fmt::format("{} (VOC: {} images kept of {}, {} targets, {} difficult)", d.ann, ds->size(),
                           ds->stats().images_in_list, ds->stats().targets, ds->stats().ignored);
  s.dataset = std::move(ds);
  return s;
}

int64_t category_id(const data::DetectionDataset& dataset, int64_t label) {
  const auto* coco = dynamic_cast<const data::CocoDataset*>(&dataset);
  return coco ? coco->label_to_category_id(label) : label + 1;
}

std::vector<std::string> config_class_names(const io::RunConfig& c) {
  if (!c.data.train.ann.empty()) return load_split(c.data.train, true, {}).dataset->class_names();
  if (!c.data.val.ann.empty() && c.data.val.format == io::DatasetFormat::Coco)
    return load_split(c.data.val, false, {}).dataset->class_names();
  return {};
}

std::unique_ptr<models::TwoStageDetector<float>> load_detector(const io::RunConfig& c, const fs::path& checkpoint,
                                                                const std::string& config_source) {
  if (!fs::is_regular_file(checkpoint))
    throw Error(fmt::format("checkpoint {} does not exist (give a model_N.safetensors of RUN/checkpoints or a "
                            "RUN/model.safetensors)",
                            checkpoint.string()));
  Generator gen(c.seed);
  auto model = std::make_unique<models::TwoStageDetector<float>>(c.model, gen);
  const io::SafetensorsFile file = io::load_safetensors(checkpoint);
  try {
    model->load_state_dict(file.tensors);
  } catch (const Error& e) {
    throw Error(fmt::format("checkpoint {} does not fit the model of {} ({}, {} classes): {}\n"
                            "use the config.yaml of the run that wrote the checkpoint (or --set the model keys "
                            "that differ, e.g. model.num_classes)",
                            checkpoint.string(), config_source, c.model.name, c.model.num_classes, e.what()));
  }
  model->eval();
  return model;
}

namespace {

std::vector<Instances> predict_batch(const models::TwoStageDetector<float>& model, const ImageList& images,
                                     const std::vector<data::ImageMeta>& metas, Device device) {
  std::vector<std::array<double, 2>> factors;
  std::vector<ImageSize> originals;
  for (const data::ImageMeta& m : metas) {
    factors.push_back({double(m.scale_w), double(m.scale_h)});
    originals.push_back({m.original_height, m.original_width});
  }
  if (device.is_cpu()) return model.predict(images, factors, originals);
  return model.predict(ImageList(images.tensor().to(device), images.image_sizes()), factors, originals);
}

/// Appends one image's detections as COCO results (xywh, the dataset's category ids).
void push_results(eval::CocoResults& results, const data::DetectionDataset& dataset, int64_t image_id,
                  const Instances& det) {
  const std::vector<float> b = det.boxes.tensor().to_vector<float>();
  const std::vector<float> s = det.scores.to_vector<float>();
  const std::vector<int64_t> l = det.labels.to_vector<int64_t>();
  for (size_t k = 0; k < s.size(); ++k)
    results.push_back(image_id, category_id(dataset, l[k]),
                      {b[4 * k], b[4 * k + 1], double(b[4 * k + 2]) - b[4 * k], double(b[4 * k + 3]) - b[4 * k + 1]},
                      s[k]);
}

/// predict_dataset with test-time augmentation: the images one at a time, in order.
eval::CocoResults predict_dataset_tta(const models::TwoStageDetector<float>& model, const Split& split,
                                      const io::RunConfig& c, Device device, std::map<int64_t, Instances>* keep,
                                      int64_t keep_count, const std::string& source) {
  eval::CocoResults results;
  results.source = source;
  const eval::TtaOptions o = tta_options(c);
  for (size_t i = 0; i < split.dataset->size(); ++i) {
    const data::DetectionRecord rec = split.dataset->record(i);
    const Instances det = eval::predict_tta(model, data::read_image(rec.image_path), o, c.data.normalize, device);
    push_results(results, *split.dataset, rec.image_id, det);
    if (keep && int64_t(keep->size()) < keep_count) keep->emplace(int64_t(i), det);
  }
  return results;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

Instances predict_image(const models::TwoStageDetector<float>& model, const data::Image& image,
                        const data::Pipeline& pipeline, Device device) {
  data::DetectionRecord rec;
  data::Sample sample = data::make_sample(rec, image);
  data::RandomStream rng(0, 0);  // the test pipeline draws nothing
  pipeline.run(sample, rng);
  const ImageList batch = ImageList::from_images({sample.tensor}, 32);
  return predict_batch(model, batch, {sample.meta}, device).at(0);
}

eval::TtaOptions tta_options(const io::RunConfig& c) {
  eval::TtaOptions o;
  for (int32_t s : c.eval.tta_short) o.scales.push_back({c.eval.tta_long, s});
  o.flip = c.eval.tta_flip;
  o.nms_iou = c.eval.tta_nms_iou;
  o.max_per_img = c.eval.tta_max_per_img;
  return o;
}

void apply_tta_file(io::RunConfig& c, const std::string& path) {
  const io::EvalConfig t = io::load_config(path).eval;
  c.eval.tta_short = t.tta_short;
  c.eval.tta_long = t.tta_long;
  c.eval.tta_flip = t.tta_flip;
  c.eval.tta_nms_iou = t.tta_nms_iou;
  c.eval.tta_max_per_img = t.tta_max_per_img;
}

Instances predict_with_config(const models::TwoStageDetector<float>& model, const data::Image& image,
                              const io::RunConfig& c, Device device) {
  if (!c.eval.tta_short.empty()) return eval::predict_tta(model, image, tta_options(c), c.data.normalize, device);
  return predict_image(model, image, data::test_pipeline(io::test_resize(c.data), c.data.normalize), device);
}

eval::CocoResults predict_dataset(const models::TwoStageDetector<float>& model, const Split& split,
                                  const data::Pipeline& pipeline, int workers, Device device,
                                  std::map<int64_t, Instances>* keep_for_drawing, int64_t keep_count,
                                  const std::string& source, int world_size, int rank) {
  data::LoaderOptions lo;
  lo.batch_size = 1;
  lo.num_workers = workers;
  lo.skip_corrupt_images = false;
  data::DataLoader loader(*split.dataset, data::sequential_indices(int64_t(split.dataset->size()), world_size, rank),
                          pipeline, lo);
  loader.start_epoch(0);
  eval::CocoResults results;
  results.source = source;
  data::Batch batch;
  // A progress bar on a terminal (stderr), as mmcv's ProgressBar; nothing in a log file.
  const bool bar = ::isatty(STDERR_FILENO) == 1;
  const int64_t total = loader.num_batches();
  const auto t0 = std::chrono::steady_clock::now();
  int64_t done = 0;
  const auto show = [&] {
    ++done;
    if (!bar) return;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const int64_t filled = total > 0 ? std::min<int64_t>(30, 30 * done / total) : 30;
    fmt::print(stderr, "\r{} [{}{}] {}/{}, {:.1f} images/s, ETA {:.0f} s", source, std::string(size_t(filled), '#'),
               std::string(size_t(30 - filled), '.'), done, total, double(done) / s,
               double(std::max<int64_t>(0, total - done)) * s / double(done));
    if (done >= total) fmt::print(stderr, "\n");
  };
  while (loader.next(batch)) {
    const std::vector<Instances> dets = predict_batch(model, batch.images, batch.metas, device);
    for (size_t i = 0; i < dets.size(); ++i) {
      push_results(results, *split.dataset, batch.metas[i].image_id, dets[i]);
      if (keep_for_drawing && int64_t(keep_for_drawing->size()) < keep_count)
        keep_for_drawing->emplace(batch.indices[i], dets[i]);
    }
    show();
  }
  return results;
}

int64_t draw_instances(data::Image& image, const Instances& det, const std::vector<std::string>& classes, float thr) {
  const std::vector<float> b = det.boxes.tensor().to_vector<float>();
  std::vector<std::array<float, 4>> boxes;
  for (size_t k = 0; k + 3 < b.size(); k += 4) boxes.push_back({b[k], b[k + 1], b[k + 2], b[k + 3]});
  const std::vector<int64_t> labels = det.labels.to_vector<int64_t>();
  const std::vector<float> scores = det.scores.to_vector<float>();
  data::DrawOptions d;
  d.score_threshold = thr;
  data::draw_detections(image, boxes, labels, scores, classes, d);
  return std::count_if(scores.begin(), scores.end(), [thr](float s) { return s >= thr; });
}

void write_text(const fs::path& path, const std::string& text) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (!f) throw Error("cannot write " + path.string());
  const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  if (std::fclose(f) != 0 || !ok) throw Error("cannot write " + path.string());
}

namespace {

// One rank's detections with each one's dataset index: [n, then per detection index, image id,
// category id, x, y, w, h, score] as doubles (ids are exact in a double below 2^53).
std::vector<uint8_t> pack_results(const eval::CocoResults& r, const std::vector<int64_t>& index) {
  std::vector<double> v{double(r.size())};
  for (size_t k = 0; k < r.size(); ++k) {
    v.insert(v.end(), {double(index[k]), double(r.image_id[k]), double(r.category_id[k])});
    v.insert(v.end(), r.bbox[k].begin(), r.bbox[k].end());
    v.push_back(r.score[k]);
  }
  std::vector<uint8_t> bytes(v.size() * sizeof(double));
  std::memcpy(bytes.data(), v.data(), bytes.size());
  return bytes;
}

eval::CocoResults evaluate_predictions(const models::TwoStageDetector<float>& model, const Split& split,
                                       const io::RunConfig& c, Device device, const std::string& tool,
                                       std::map<int64_t, Instances>& drawn) {
  dist::Communicator& comm = dist::world();
  if (!c.eval.tta_short.empty()) {
    DRCNN_CHECK(comm.size() == 1, tool, ": test-time augmentation (eval.tta_short) is evaluated in one process, not sharded over ",
                comm.size(), " ranks; run drcnn_test on the checkpoint without mpirun");
    return predict_dataset_tta(model, split, c, device, &drawn, c.eval.draw,
                               tool + fmt::format(" detections (test-time augmentation: {} views)",
                                                  c.eval.tta_short.size() * (c.eval.tta_flip ? 2 : 1)));
  }
  const eval::CocoResults mine =
      predict_dataset(model, split, data::test_pipeline(io::test_resize(c.data), c.data.normalize), c.data.workers,
                      device, &drawn,
                      c.eval.draw, tool + " detections", comm.size(), comm.rank());
  if (comm.size() == 1) return mine;
  // Each detection's dataset index: the shard's images are r, r + W, ... in order, and
  // predict_dataset lists an image's detections together, images in loader order.
  std::map<int64_t, int64_t> index_of_id;
  for (int64_t i = comm.rank(); i < int64_t(split.dataset->size()); i += comm.size())
    index_of_id[split.dataset->record(size_t(i)).image_id] = i;
  std::vector<int64_t> index;
  for (int64_t id : mine.image_id) index.push_back(index_of_id.at(id));
  struct Row {
    int64_t index, image, category;
    std::array<double, 4> box;
    double score;
  };
  std::vector<Row> rows;
  for (const std::vector<uint8_t>& bytes : comm.all_gather(pack_results(mine, index), "all_gather of the detections")) {
    std::vector<double> v(bytes.size() / sizeof(double));
    std::memcpy(v.data(), bytes.data(), bytes.size());
    for (size_t k = 0, at = 1; k < size_t(v[0]); ++k, at += 8)
      rows.push_back({int64_t(v[at]), int64_t(v[at + 1]), int64_t(v[at + 2]), {v[at + 3], v[at + 4], v[at + 5], v[at + 6]},
                      v[at + 7]});
  }
  // Dataset order; within an image, the order its rank produced (stable).
  std::stable_sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.index < b.index; });
  eval::CocoResults all;
  all.source = mine.source;
  for (const Row& r : rows) all.push_back(r.image, r.category, r.box, r.score);
  return all;
}

}  // namespace

std::optional<eval::CocoEvalResult> evaluate_split_sharded(const models::TwoStageDetector<float>& model,
                                                           const Split& split, const std::vector<std::string>& classes,
                                                           const io::RunConfig& c, Device device, const fs::path& out,
                                                           const std::string& tool,
                                                           std::vector<ReportImage>* report_images) {
  if (dist::world().is_main()) return evaluate_split(model, split, classes, c, device, out, tool, report_images);
  std::map<int64_t, Instances> drawn;
  evaluate_predictions(model, split, c, device, tool, drawn);
  return std::nullopt;
}

eval::CocoEvalResult evaluate_split(const models::TwoStageDetector<float>& model, const Split& split,
                                    const std::vector<std::string>& classes, const io::RunConfig& c,
                                    Device device, const fs::path& out, const std::string& tool,
                                    std::vector<ReportImage>* report_images) {
  fs::create_directories(out);
  std::map<int64_t, Instances> drawn;
  const auto t_eval = std::chrono::steady_clock::now();
  const eval::CocoResults results = evaluate_predictions(model, split, c, device, tool, drawn);
  fmt::print("inference: {} images, {} detections in {:.1f} s\n", split.dataset->size(), results.size(),
             seconds_since(t_eval));
  eval::save_results(results, out / "detections.json");
  const eval::CocoEvalResult metrics = eval::evaluate_bbox(split.gt, results);
  fmt::print("{}{}", eval::summary_text(metrics), eval::extras_text(metrics));
  write_text(out / "metrics.json", eval::result_to_json(metrics));
  fs::create_directories(out / "vis");
  const float thr = float(c.eval.draw_score_thr);
  for (const auto& [index, det] : drawn) {
    const data::DetectionRecord rec = split.dataset->record(size_t(index));
    data::Image image = data::read_image(rec.image_path);
    // Ground truth and predictions told apart by colour (report.cpp's legend), the same image
    // as report.html shows.
    const data::Image shown = draw_gt_and_predictions(image, rec.boxes, det, classes, thr);
    if (report_images)
      report_images->push_back(
          {fmt::format("image {} ({})", rec.image_id, fs::path(rec.image_path).filename().string()), shown});
    const std::vector<float> scores = det.scores.to_vector<float>();
    const auto n = std::count_if(scores.begin(), scores.end(), [thr](float s) { return s >= thr; });
    const fs::path png = out / "vis" / fmt::format("val_{:06d}.png", rec.image_id);
    data::write_png(png, shown);
    fmt::print("drew {} ({} ground-truth boxes in green, {} detections with score >= {} in red)\n", png.string(),
               rec.boxes.size(), n, thr);
  }
  return metrics;
}

std::map<std::string, double> summary_metrics(const eval::CocoEvalResult& r) {
  std::map<std::string, double> m;
  for (std::size_t i = 0; i < 12; ++i) m[eval::summary_names()[i]] = r.stats[i];
  return m;
}

}  // namespace drcnn::tools
