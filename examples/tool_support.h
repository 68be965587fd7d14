// What drcnn_train, drcnn_test and drcnn_detect share: a dataset split from the run config, the
// class names of a config, a detector built from a config and a checkpoint (with an error that
// says what to do when they do not fit), inference over a split, the evaluation outputs
// (detections.json, metrics.json, vis/) and drawing. Library: drcnn_tool_support (examples/).
// docs/tools.md describes the tools.
#pragma once
#include <filesystem>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <vector>

#include "drcnn/core/device.h"
#include "drcnn/data/coco.h"
#include "drcnn/data/dataset.h"
#include "drcnn/data/image.h"
#include "drcnn/data/transforms.h"
#include "drcnn/eval/coco_eval.h"
#include "drcnn/eval/tta.h"
#include "drcnn/io/config.h"
#include "drcnn/models/detector.h"
#include "drcnn/structures/instances.h"
#include "report.h"

namespace drcnn::tools {

/// One split as a dataset (COCO JSON + image folder, or a VOC annotation folder + image folder)
/// and its ground truth as an in-memory COCO file for the evaluator.
struct Split {
  std::unique_ptr<data::DetectionDataset> dataset;
  data::CocoFile gt;  ///< COCO: the file itself; VOC: built from the dataset (evaluation only)
  std::string describe;
};

/// The lines of an image-id list (blank lines skipped, surrounding spaces trimmed).
std::vector<std::string> read_id_list(const std::string& path);

/// Loads a split. `training`: the training options (no evaluation filters); `class_names`: a VOC
/// validation split's classes (the training set's, in its order); ignored for COCO.
Split load_split(const io::DatasetConfig& d, bool training, const std::vector<std::string>& class_names);

/// The category id a detection of `label` gets in results JSON: the COCO file's id, else label + 1.
int64_t category_id(const data::DetectionDataset& dataset, int64_t label);

/// The class names of a run config, in label order: the training split's when data.train.ann is
/// set, else the validation split's (only a COCO file can name its classes alone). nullopt-like
/// empty vector when neither is set; throws drcnn::Error when a set split cannot be read.
std::vector<std::string> config_class_names(const io::RunConfig& c);

/// Builds cfg.model and loads the weights of `checkpoint` (a model_N.safetensors or a
/// model.safetensors), on the CPU, in eval mode. Throws drcnn::Error naming the checkpoint and
/// `config_source` when the file is missing or its tensors do not fit the config (with the
/// first mismatches and what to do).
std::unique_ptr<models::TwoStageDetector<float>> load_detector(const io::RunConfig& c,
                                                                const std::filesystem::path& checkpoint,
                                                                const std::string& config_source);

/// Detections of one decoded image through the test pipeline, boxes in the image's pixels.
Instances predict_image(const models::TwoStageDetector<float>& model, const data::Image& image,
                        const data::Pipeline& pipeline, Device device);

/// The test-time augmentation of a run config (eval.tta_*): one (tta_long, s) scale per short
/// side s of eval.tta_short; no scale when TTA is off (eval.tta_short empty).
eval::TtaOptions tta_options(const io::RunConfig& c);

/// drcnn_test / drcnn_detect --tta FILE: copies the eval.tta_* keys of the run config FILE (e.g.
/// configs/dynamic_rcnn_r101_dcnv2_fpn_3x_tta.yaml, the seed's five scales + flip) into c.
void apply_tta_file(io::RunConfig& c, const std::string& path);

/// Detections of one decoded image with the config's test settings: eval::predict_tta when
/// eval.tta_short is set, else predict_image with the test pipeline (data.scale_*).
Instances predict_with_config(const models::TwoStageDetector<float>& model, const data::Image& image,
                              const io::RunConfig& c, Device device);

/// Detections of the whole split as COCO results (the split's category ids, xywh); the first
/// `keep_count` images' detections go to *keep_for_drawing when it is given.
eval::CocoResults predict_dataset(const models::TwoStageDetector<float>& model, const Split& split,
                                  const data::Pipeline& pipeline, int workers, Device device,
                                  std::map<int64_t, Instances>* keep_for_drawing, int64_t keep_count,
                                  const std::string& source, int world_size = 1, int rank = 0);

/// Draws `det` (boxes, labels, scores) with score >= thr; returns how many were drawn.
int64_t draw_instances(data::Image& image, const Instances& det, const std::vector<std::string>& classes, float thr);

/// Writes `text` to `path` (overwritten); throws drcnn::Error naming the path on failure.
void write_text(const std::filesystem::path& path, const std::string& text);

/// What drcnn_train runs after training and drcnn_test runs on a checkpoint: inference on the
/// split (with test-time augmentation when eval.tta_short is set: one image at a time), out/detections.json, the COCO summary and extras printed, out/metrics.json, and the
/// first cfg.eval.draw images with detections of score >= cfg.eval.draw_score_thr in out/vis/.
/// `tool` names the detections' source. With `report_images`, each drawn image is also appended
/// there with its ground truth and predictions in the report's two colours. Returns the evaluation.
eval::CocoEvalResult evaluate_split(const models::TwoStageDetector<float>& model, const Split& split,
                                    const std::vector<std::string>& classes, const io::RunConfig& c,
                                    Device device, const std::filesystem::path& out, const std::string& tool,
                                    std::vector<ReportImage>* report_images = nullptr);
/// evaluate_split sharded over the ranks of dist::world() (drcnn_train under mpirun): rank r
/// predicts images r, r + W, ...; the detections are gathered on rank 0 in dataset order, so its
/// detections.json and metrics equal a single-process evaluation's exactly. Only rank 0 writes
/// and draws (the first images of its own shard); the others return nullopt.
std::optional<eval::CocoEvalResult> evaluate_split_sharded(const models::TwoStageDetector<float>& model,
                                                           const Split& split, const std::vector<std::string>& classes,
                                                           const io::RunConfig& c, Device device,
                                                           const std::filesystem::path& out, const std::string& tool,
                                                           std::vector<ReportImage>* report_images = nullptr);

/// The pycocotools summary by name ("AP", "AP50", "AP75", "APs", ..., "AR100", ...: the names of
/// metrics.json's "stats").
std::map<std::string, double> summary_metrics(const eval::CocoEvalResult& r);

}  // namespace drcnn::tools
