// RUN/report.html: one self-contained page (inline SVG plots, images as base64 PNG, no external
// asset) with the training curves from RUN/metrics.jsonl (losses, lr, IoU threshold, beta), the
// COCO table from RUN/metrics.json (AP, AP50..AP95, per-class AP) and a few validation images
// with ground truth and predictions drawn in two colours. docs/tools.md ("Run report").
#pragma once
#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "drcnn/data/image.h"
#include "drcnn/structures/instances.h"

namespace drcnn::tools {

/// One image of the report and its caption.
struct ReportImage {
  std::string caption;
  data::Image image;
};

/// Colours of the report's images: ground truth and predictions.
inline constexpr std::array<uint8_t, 3> kGroundTruthRgb{0, 200, 0};
inline constexpr std::array<uint8_t, 3> kPredictionRgb{230, 30, 30};

/// `image` with the ground-truth boxes (thin, kGroundTruthRgb) and the predictions of score >=
/// thr (kPredictionRgb, "<class> <score>" above each) drawn.
data::Image draw_gt_and_predictions(data::Image image, const std::vector<std::array<float, 4>>& gt_boxes,
                                    const Instances& predictions, const std::vector<std::string>& classes, float thr);

/// Standard base64 (RFC 4648, with padding) of `bytes`.
std::string base64(const std::vector<uint8_t>& bytes);

/// The page, from `metrics_jsonl` (the training log) and `metrics_json` (the evaluation), each
/// optional (a missing file leaves its section saying so), and `images`. Throws drcnn::Error
/// naming a malformed file.
std::string report_html(const std::filesystem::path& metrics_jsonl, const std::filesystem::path& metrics_json,
                        const std::string& title, const std::vector<ReportImage>& images);

/// report_html(run/metrics.jsonl, metrics_json) written to out/report.html (atomically: a
/// browser refreshing it during training sees a whole page); metrics_json defaults to
/// out/metrics.json. Returns the path.
std::filesystem::path write_report(const std::filesystem::path& run, const std::filesystem::path& out,
                                   const std::string& title, const std::vector<ReportImage>& images,
                                   const std::filesystem::path& metrics_json = {});

}  // namespace drcnn::tools
