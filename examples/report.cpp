#include "report.h"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "drcnn/core/error.h"
#include "drcnn/data/draw.h"
#include "drcnn/engine/checkpoint.h"
#include "tool_support.h"

namespace fs = std::filesystem;
using nlohmann::json;
using nlohmann::ordered_json;

namespace drcnn::tools {

namespace {

std::string escape_html(const std::string& s) {
  std::string out;
  for (char ch : s) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += ch;
    }
  }
  return out;
}

struct Series {
  std::string name, colour;
  std::vector<double> x, y;
};

// A 2-decimal-ish label for an axis value.
std::string tick(double v) { return fmt::format("{:.4g}", v); }

// A line plot as inline SVG: axes with min/mid/max labels, one polyline per series, a legend.
std::string svg_plot(const std::string& title, const std::vector<Series>& series) {
  const double W = 540, H = 240, left = 64, right = 12, top = 28, bottom = 36;
  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
  for (const Series& s : series)
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.y[i])) continue;
      x0 = std::min(x0, s.x[i]), x1 = std::max(x1, s.x[i]);
      y0 = std::min(y0, s.y[i]), y1 = std::max(y1, s.y[i]);
    }
  std::string svg = fmt::format(R"(<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" class="plot">)", W, H);
  svg += fmt::format(R"(<text x="{}" y="18" font-size="14" font-weight="bold">{}</text>)", left, escape_html(title));
  if (!(x0 <= x1)) return svg + R"(<text x="64" y="120">no values</text></svg>)";
  if (x1 == x0) x0 -= 1, x1 += 1;
  if (y1 == y0) {
    const double pad = y0 == 0 ? 1 : std::abs(y0) * 0.05;
    y0 -= pad, y1 += pad;
  }
  const auto px = [&](double x) { return left + (x - x0) / (x1 - x0) * (W - left - right); };
  const auto py = [&](double y) { return H - bottom - (y - y0) / (y1 - y0) * (H - top - bottom); };
  svg += fmt::format(R"(<rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="#888"/>)", left, top,
                     W - left - right, H - top - bottom);
  for (double f : {0.0, 0.5, 1.0}) {
    const double yv = y0 + f * (y1 - y0), xv = x0 + f * (x1 - x0);
    svg += fmt::format(R"(<text x="{}" y="{}" font-size="11" text-anchor="end">{}</text>)", left - 4, py(yv) + 4, tick(yv));
    svg += fmt::format(R"(<text x="{}" y="{}" font-size="11" text-anchor="middle">{}</text>)", px(xv), H - bottom + 14,
                       tick(xv));
  }
  svg += fmt::format(R"(<text x="{}" y="{}" font-size="11" text-anchor="middle">iteration</text>)",
                     left + (W - left - right) / 2, H - 4);
  double legend_x = left + 7.0 * double(title.size()) + 16;
  for (const Series& s : series) {
    std::string points;
    for (size_t i = 0; i < s.x.size(); ++i)
      if (std::isfinite(s.y[i])) points += fmt::format("{:.1f},{:.1f} ", px(s.x[i]), py(s.y[i]));
    svg += fmt::format(R"(<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}"/>)", s.colour, points);
    if (s.x.size() == 1)
      svg += fmt::format(R"(<circle cx="{:.1f}" cy="{:.1f}" r="3" fill="{}"/>)", px(s.x[0]), py(s.y[0]), s.colour);
    if (series.size() > 1) {
      svg += fmt::format(R"(<rect x="{}" y="{}" width="10" height="10" fill="{}"/><text x="{}" y="{}" font-size="11">{}</text>)",
                         legend_x, 9, s.colour, legend_x + 13, 18, escape_html(s.name));
      legend_x += 18 + 6.0 * double(s.name.size());
    }
  }
  return svg + "</svg>";
}

std::string number(double v) { return v < 0 ? std::string("&ndash;") : fmt::format("{:.3f}", v); }

}  // namespace

std::string base64(const std::vector<uint8_t>& bytes) {
  static const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    const uint32_t n = uint32_t(bytes[i]) << 16 | (i + 1 < bytes.size() ? uint32_t(bytes[i + 1]) << 8 : 0) |
                       (i + 2 < bytes.size() ? uint32_t(bytes[i + 2]) : 0);
    out += alphabet[n >> 18 & 63];
    out += alphabet[n >> 12 & 63];
    out += i + 1 < bytes.size() ? alphabet[n >> 6 & 63] : '=';
    out += i + 2 < bytes.size() ? alphabet[n & 63] : '=';
  }
  return out;
}

data::Image draw_gt_and_predictions(data::Image image, const std::vector<std::array<float, 4>>& gt_boxes,
                                    const Instances& predictions, const std::vector<std::string>& classes, float thr) {
  const data::Color gt{kGroundTruthRgb[0], kGroundTruthRgb[1], kGroundTruthRgb[2]};
  const data::Color pred{kPredictionRgb[0], kPredictionRgb[1], kPredictionRgb[2]};
  const std::vector<float> b = predictions.boxes.tensor().to_vector<float>();
  const std::vector<int64_t> l = predictions.labels.to_vector<int64_t>();
  const std::vector<float> s = predictions.scores.to_vector<float>();
  for (const auto& box : gt_boxes) data::draw_box(image, box, gt, 1);
  for (size_t k = 0; k < s.size(); ++k) {
    if (s[k] < thr) continue;
    const std::array<float, 4> box{b[4 * k], b[4 * k + 1], b[4 * k + 2], b[4 * k + 3]};
    data::draw_box(image, box, pred, 1);
    const std::string label = data::detection_label(l[k], s[k], true, classes);
    const int32_t y = std::max(0, int32_t(std::floor(box[1])) - data::text_height() - 1);
    data::draw_text(image, int32_t(std::floor(box[0])), y, label, pred);
  }
  return image;
}

std::string report_html(const fs::path& metrics_jsonl, const fs::path& metrics_json, const std::string& title,
                        const std::vector<ReportImage>& images) {
  std::ostringstream h;
  h << "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" << escape_html(title) << "</title>\n<style>"
    << "body{font-family:sans-serif;margin:24px;color:#222}h1{font-size:20px}h2{font-size:16px;margin-top:28px}"
    << "table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
    << "th{background:#f0f0f0}.plot{margin:4px 12px 4px 0;background:#fff}figure{display:inline-block;margin:6px}"
    << "figure img{image-rendering:pixelated;border:1px solid #ccc}figcaption{font-size:12px}"
    << ".gt{color:rgb(0,200,0);font-weight:bold}.pred{color:rgb(230,30,30);font-weight:bold}"
    << "</style></head><body>\n<h1>" << escape_html(title) << "</h1>\n";

  // Curves from metrics.jsonl.
  h << "<h2>Training</h2>\n";
  std::ifstream jl(metrics_jsonl);
  if (!jl) {
    h << "<p>no metrics.jsonl</p>\n";
  } else {
    std::map<std::string, Series> by_key;
    int64_t line_no = 0;
    for (std::string line; std::getline(jl, line);) {
      ++line_no;
      if (line.empty()) continue;
      json j;
      try {
        j = json::parse(line);
      } catch (const std::exception& e) {
        throw Error(fmt::format("{}:{}: not a JSON object: {}", metrics_jsonl.string(), line_no, e.what()));
      }
      const double it = j.value("iteration", 0.0);
      for (const auto& [key, value] : j.items()) {
        Series& s = by_key[key];
        s.name = key;
        s.x.push_back(it);
        s.y.push_back(value.is_number() ? value.get<double>() : std::numeric_limits<double>::quiet_NaN());
      }
    }
    const auto pick = [&](const std::vector<std::pair<std::string, std::string>>& keys) {
      std::vector<Series> out;
      for (const auto& [key, colour] : keys)
        if (by_key.count(key)) {
          out.push_back(by_key[key]);
          out.back().colour = colour;
        }
      return out;
    };
    h << svg_plot("losses", pick({{"total_loss", "#000"}, {"loss_cls", "#d62728"}, {"loss_bbox", "#1f77b4"},
                                  {"loss_rpn_cls", "#ff7f0e"}, {"loss_rpn_bbox", "#2ca02c"}}))
      << "\n" << svg_plot("learning rate", pick({{"lr", "#9467bd"}})) << "\n"
      << svg_plot("IoU threshold (Dynamic R-CNN)", pick({{"iou_threshold", "#8c564b"}})) << "\n"
      << svg_plot("SmoothL1 beta (Dynamic R-CNN)", pick({{"beta", "#e377c2"}})) << "\n";
    // The evaluations during (--eval-every) and after training: {"iteration", "bbox/AP", ...}.
    // A curve needs two points; a single (final) evaluation is the COCO table below.
    const std::vector<Series> ap =
        pick({{"bbox/AP", "#000"}, {"bbox/AP50", "#1f77b4"}, {"bbox/AP75", "#d62728"}});
    const size_t evaluations = by_key.count("bbox/AP") ? by_key["bbox/AP"].x.size() : 0;
    if (evaluations >= 2) h << svg_plot("COCO AP over evaluations", ap) << "\n";
    h << "<p>" << (by_key.count("total_loss") ? by_key["total_loss"].x.size() : 0) << " log records, "
      << evaluations << (evaluations == 1 ? " evaluation" : " evaluations") << ".</p>\n";
  }

  // COCO table from metrics.json.
  h << "<h2>COCO evaluation</h2>\n";
  std::ifstream mj(metrics_json);
  if (!mj) {
    h << "<p>no metrics.json (no validation set)</p>\n";
  } else {
    ordered_json m;  // the file's key order (AP, AP50, AP75, APs, ...)
    try {
      m = ordered_json::parse(mj);
    } catch (const std::exception& e) {
      throw Error(fmt::format("{}: not JSON: {}", metrics_json.string(), e.what()));
    }
    h << "<p>" << m.value("num_images", 0) << " images, " << m.value("num_categories", 0)
      << " categories (&ndash;: no ground truth)</p>\n<table><tr>";
    const ordered_json& stats = m.at("stats");
    for (const auto& [k, v] : stats.items()) h << "<th>" << escape_html(k) << "</th>";
    h << "</tr><tr>";
    for (const auto& [k, v] : stats.items()) h << "<td>" << number(v.get<double>()) << "</td>";
    h << "</tr></table>\n<table><tr>";
    for (const auto& [k, v] : m.at("ap_per_iou").items()) h << "<th>" << escape_html(k) << "</th>";
    h << "</tr><tr>";
    for (const auto& [k, v] : m.at("ap_per_iou").items()) h << "<td>" << number(v.get<double>()) << "</td>";
    h << "</tr></table>\n<table><tr><th>id</th><th>class</th><th>AP</th></tr>";
    for (const ordered_json& c : m.at("per_category"))
      h << "<tr><td>" << c.value("category_id", int64_t(0)) << "</td><td style=\"text-align:left\">"
        << escape_html(c.value("name", std::string())) << "</td><td>" << number(c.value("AP", -1.0)) << "</td></tr>";
    h << "</table>\n";
  }

  h << "<h2>Validation images</h2>\n";
  if (images.empty()) h << "<p>none drawn</p>\n";
  else h << "<p><span class=\"gt\">ground truth</span>, <span class=\"pred\">predictions</span></p>\n";
  for (const ReportImage& im : images) {
    const int scale = std::max(1, 320 / std::max(1, std::max(im.image.width, im.image.height)));
    h << "<figure><img width=\"" << im.image.width * scale << "\" height=\"" << im.image.height * scale
      << "\" src=\"data:image/png;base64," << base64(data::encode_png(im.image)) << "\"><figcaption>"
      << escape_html(im.caption) << "</figcaption></figure>\n";
  }
  h << "</body></html>\n";
  return h.str();
}

fs::path write_report(const fs::path& run, const fs::path& out, const std::string& title,
                      const std::vector<ReportImage>& images, const fs::path& metrics_json) {
  const fs::path path = out / "report.html";
  engine::write_file_atomic(
      path, report_html(run / "metrics.jsonl", metrics_json.empty() ? out / "metrics.json" : metrics_json, title, images));
  return path;
}

}  // namespace drcnn::tools
