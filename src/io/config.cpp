// The YAML run configuration (include/drcnn/io/config.h, docs/config.md).
//
// One schema, written once: visit(v, struct) lists each struct's keys with their rule and
// meaning, and four visitors walk it: Reader (YAML -> struct, with type and range checks that
// point at the file's line and column), Writer (struct -> YAML), Checker (validate()) and
// Lister (config_keys(), which docs/config.md must cover). yaml-cpp parses and emits; this
// file only maps nodes to fields.
#include "drcnn/io/config.h"

#include <yaml-cpp/depthguard.h>  // YAML::DeepRecursion (not in yaml.h)
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <set>
#include <sstream>
#include <cstring>
#include <type_traits>
#include <utility>

namespace drcnn::io {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// ------------------------------------------------------------------------------ rules
// What a leaf accepts beyond its type. Numbers (and list elements): a range, optionally a set
// of allowed values. Lists: a minimum / maximum length and ascending order. Strings: a
// predicate with its description. Every float must also be finite.
struct Rule {
  double lo = -kInf, hi = kInf;
  bool lo_open = false, hi_open = false;
  std::vector<double> one_of;
  size_t min_size = 0, max_size = std::numeric_limits<size_t>::max();
  bool ascending = false;
  std::function<bool(const std::string&)> string_ok;
  std::string string_expect;

  Rule& nonempty() {
    min_size = 1;
    return *this;
  }
  Rule& at_most(size_t n) {
    max_size = n;
    return *this;
  }
  Rule& sorted() {
    ascending = true;
    return *this;
  }
  bool has_range() const { return lo != -kInf || hi != kInf; }
  bool accepts(double x) const {
    if (!one_of.empty()) return std::find(one_of.begin(), one_of.end(), x) != one_of.end();
    if (lo_open ? !(x > lo) : !(x >= lo)) return false;
    if (hi_open ? !(x < hi) : !(x <= hi)) return false;
    return true;
  }
};

std::string num(double x) { return fmt::format("{}", x); }

std::string range_text(const Rule& r) {
  if (!r.one_of.empty()) {
    std::string s = "in {";
    for (size_t i = 0; i < r.one_of.size(); ++i) s += (i ? ", " : "") + num(r.one_of[i]);
    return s + "}";
  }
  if (r.lo != -kInf && r.hi != kInf)
    return fmt::format("in {}{}, {}{}", r.lo_open ? "(" : "[", num(r.lo), num(r.hi), r.hi_open ? ")" : "]");
  if (r.lo != -kInf) return fmt::format("{} {}", r.lo_open ? ">" : ">=", num(r.lo));
  if (r.hi != kInf) return fmt::format("{} {}", r.hi_open ? "<" : "<=", num(r.hi));
  return "";
}

Rule ge(double lo) {
  Rule r;
  r.lo = lo;
  return r;
}
Rule gt(double lo) {
  Rule r;
  r.lo = lo;
  r.lo_open = true;
  return r;
}
Rule le(double hi) {
  Rule r;
  r.hi = hi;
  return r;
}
Rule in(double lo, double hi, bool lo_open = false) {
  Rule r;
  r.lo = lo;
  r.hi = hi;
  r.lo_open = lo_open;
  return r;
}
Rule unit() { return in(0, 1); }
Rule one_of(std::vector<double> v) {
  Rule r;
  r.one_of = std::move(v);
  return r;
}
Rule any() { return Rule{}; }

bool is_device(const std::string& s) {
  if (s == "cpu" || s == "cuda") return true;
  if (s.rfind("cuda:", 0) != 0 || s.size() == 5) return false;
  return std::all_of(s.begin() + 5, s.end(), [](char c) { return c >= '0' && c <= '9'; });
}
Rule device_rule() {
  Rule r;
  r.string_ok = is_device;
  r.string_expect = "cpu, cuda or cuda:N";
  return r;
}

Rule precision_rule() {
  Rule r;
  r.string_ok = [](const std::string& s) { return s == "fp32" || s == "bf16"; };
  r.string_expect = "fp32 or bf16";
  return r;
}

// ------------------------------------------------------------------------------ enums
template <typename E>
struct EnumNames;
#define DRCNN_ENUM_NAMES(E, ...)                                                 \
  template <>                                                                    \
  struct EnumNames<E> {                                                          \
    static const std::vector<std::pair<E, const char*>>& get() {                 \
      static const std::vector<std::pair<E, const char*>> names{__VA_ARGS__};    \
      return names;                                                              \
    }                                                                            \
  };
DRCNN_ENUM_NAMES(models::NormKind, {models::NormKind::FrozenBatchNorm, "frozen_bn"},
                 {models::NormKind::BatchNorm, "bn"}, {models::NormKind::GroupNorm, "gn"})
DRCNN_ENUM_NAMES(models::ResNetStyle, {models::ResNetStyle::Pytorch, "pytorch"}, {models::ResNetStyle::Caffe, "caffe"})
DRCNN_ENUM_NAMES(models::FpnExtra, {models::FpnExtra::MaxPool, "max_pool"},
                 {models::FpnExtra::ConvOnInput, "conv_on_input"}, {models::FpnExtra::ConvOnOutput, "conv_on_output"})
DRCNN_ENUM_NAMES(models::RpnSmallBoxRule, {models::RpnSmallBoxRule::GreaterThanZeroOnly, "greater_than_zero_only"},
                 {models::RpnSmallBoxRule::StrictAlways, "strict_always"})
DRCNN_ENUM_NAMES(models::BoxConvention, {models::BoxConvention::Mmdet, "mmdet"},
                 {models::BoxConvention::MaskrcnnBenchmark, "maskrcnn_benchmark"})
DRCNN_ENUM_NAMES(models::RpnRegressionLoss, {models::RpnRegressionLoss::L1, "l1"},
                 {models::RpnRegressionLoss::SmoothL1, "smooth_l1"})
DRCNN_ENUM_NAMES(train::IouPooling, {train::IouPooling::kMeanOverImages, "mean_over_images"},
                 {train::IouPooling::kConcatenated, "concatenated"})
DRCNN_ENUM_NAMES(train::MedianRule, {train::MedianRule::kNumpy, "numpy"}, {train::MedianRule::kUpper, "upper"})
DRCNN_ENUM_NAMES(train::StatPopulation, {train::StatPopulation::kMmdet, "mmdet"},
                 {train::StatPopulation::kOriginal, "original"})
DRCNN_ENUM_NAMES(DatasetFormat, {DatasetFormat::Coco, "coco"}, {DatasetFormat::Voc, "voc"})
#undef DRCNN_ENUM_NAMES

template <typename E>
std::string enum_choices() {
  std::string s;
  for (const auto& [v, name] : EnumNames<E>::get()) s += (s.empty() ? "" : " | ") + std::string(name);
  return s;
}
template <typename E>
const char* enum_name(E e) {
  for (const auto& [v, name] : EnumNames<E>::get())
    if (v == e) return name;
  return "?";
}

// ------------------------------------------------------------------------------ types
template <typename T>
struct is_vector : std::false_type {};
template <typename T>
struct is_vector<std::vector<T>> : std::true_type {};
template <typename T>
struct is_array : std::false_type {};
template <typename T, size_t N>
struct is_array<std::array<T, N>> : std::true_type {};

// What a leaf of type T is, in words ("an integer", "a list of numbers", ...).
template <typename T>
std::string type_text() {
  if constexpr (std::is_same_v<T, bool>) return "true or false";
  else if constexpr (std::is_enum_v<T>) return "one of " + enum_choices<T>();
  else if constexpr (std::is_integral_v<T>) return "an integer";
  else if constexpr (std::is_floating_point_v<T>) return "a number";
  else if constexpr (std::is_same_v<T, std::string>) return "a string";
  else if constexpr (is_vector<T>::value) {
    using E = typename T::value_type;
    return std::is_integral_v<E> ? "a list of integers" : "a list of numbers";
  } else if constexpr (is_array<T>::value) {
    if constexpr (std::is_same_v<typename T::value_type, bool>)
      return fmt::format("a list of {} true/false", std::tuple_size_v<T>);
    else
      return fmt::format("a list of {} numbers", std::tuple_size_v<T>);
  }
}

// The full expectation: type plus rule ("a number in [0, 1]", "a non-empty list of numbers,
// each > 0").
template <typename T>
std::string expect_text(const Rule& r) {
  if constexpr (std::is_same_v<T, std::string>) {
    return r.string_ok ? r.string_expect : type_text<T>();
  } else if constexpr (is_vector<T>::value || is_array<T>::value) {
    std::string s = type_text<T>();
    if (r.min_size >= 1 && r.max_size != std::numeric_limits<size_t>::max())
      s = fmt::format("{} with 1 to {} elements", s, r.max_size);
    else if (r.min_size >= 1)
      s = "a non-empty " + s.substr(2);
    if (r.ascending) s += ", ascending";
    if (r.has_range() || !r.one_of.empty()) s += ", each " + range_text(r);
    return s;
  } else {
    std::string s = type_text<T>();
    if (r.has_range() || !r.one_of.empty()) s += " " + range_text(r);
    return s;
  }
}

// How a node looks in an error message.
std::string node_text(const YAML::Node& n) {
  if (!n.IsDefined() || n.IsNull()) return "nothing (null)";
  if (n.IsMap()) return "a map";
  if (n.IsSequence()) {
    std::string s = "[";
    for (size_t i = 0; i < n.size(); ++i) s += (i ? ", " : "") + (n[i].IsScalar() ? n[i].Scalar() : std::string("..."));
    return s + "]";
  }
  return "'" + n.Scalar() + "'";
}

// Shortest text that reads back to exactly the same double (fmt), with ".0" on integral values
// so the YAML says it is a float.
// The shortest text that reads back to x in x's own type (a float field as 123.675, not the
// double 123.67500305175781).
template <typename F>
std::string float_text(F x) {
  if (std::isnan(x)) return ".nan";
  if (std::isinf(x)) return x > 0 ? ".inf" : "-.inf";
  std::string s = fmt::format("{}", x);
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}
std::string double_text(double x) { return float_text(x); }
std::string double_text(float x) { return float_text(x); }

// Scalar -> value. Integers: std::from_chars, decimal only (yaml-cpp's stream conversion would
// read "010" as octal). Floats and booleans: yaml-cpp's conversion (accepts .inf / .nan, yes/no).
template <typename T>
bool decode_scalar(const YAML::Node& n, T& out) {
  if (!n.IsScalar()) return false;
  if constexpr (std::is_same_v<T, bool>) {
    return YAML::convert<bool>::decode(n, out);
  } else if constexpr (std::is_enum_v<T>) {
    for (const auto& [v, name] : EnumNames<T>::get())
      if (n.Scalar() == name) {
        out = v;
        return true;
      }
    return false;
  } else if constexpr (std::is_integral_v<T>) {
    const std::string& s = n.Scalar();
    const char* b = s.data();
    const char* e = s.data() + s.size();
    if (b != e && *b == '+') ++b;
    const auto r = std::from_chars(b, e, out);
    return r.ec == std::errc() && r.ptr == e && b != e;
  } else if constexpr (std::is_floating_point_v<T>) {
    return YAML::convert<T>::decode(n, out);
  } else if constexpr (std::is_same_v<T, std::string>) {
    out = n.Scalar();
    return true;
  }
}

// ------------------------------------------------------------------------------ schema
// Every key of every struct, in the order to_yaml writes them. v.leaf(key, field, doc, rule)
// and v.group(key, struct, doc); the visitors give them meaning.
template <typename V>
void visit(V& v, models::NormOptions& o) {
  v.leaf("kind", o.kind, "the normalisation after every convolution", any());
  v.leaf("eps", o.eps, "norm epsilon (torchvision 1e-5; the original code's frozen BN 0)", ge(0));
  v.leaf("gn_groups", o.gn_groups, "GroupNorm groups (kind gn only)", gt(0));
}
template <typename V>
void visit(V& v, models::ResNetOptions& o) {
  v.leaf("depth", o.depth, "ResNet depth", one_of({18, 34, 50, 101}));
  v.leaf("style", o.style, "pytorch: stride on the 3x3 conv; caffe: on the first 1x1", any());
  v.group("norm", o.norm, "normalisation layers");
  v.leaf("frozen_stages", o.frozen_stages, "-1: nothing frozen; 0: the stem; k: stem and layer1..layerk", in(-1, 4));
  v.leaf("norm_eval", o.norm_eval, "BatchNorm layers stay in eval mode during training (mmdet norm_eval)", any());
  v.leaf("in_channels", o.in_channels, "input image channels", gt(0));
  v.leaf("base_width", o.base_width, "channels of the stem and of layer1's 3x3", gt(0));
  v.leaf("stage_with_dcn", o.stage_with_dcn,
         "per layer1..layer4: its bottleneck 3x3 convs are DCNv2 (mmdet dcn=dict(type='DCNv2'), stage_with_dcn)",
         any());
  v.leaf("dcn_deform_groups", o.dcn_deform_groups, "deform groups of those DCNv2 convs (mmdet deform_groups)", gt(0));
}
template <typename V>
void visit(V& v, models::FpnOptions& o) {
  v.leaf("in_channels", o.in_channels, "channels of C2..C5 (must match the backbone)", gt(0).nonempty());
  v.leaf("out_channels", o.out_channels, "channels of every output level", gt(0));
  v.leaf("num_outs", o.num_outs, "output levels (inputs + extra levels)", gt(0));
  v.leaf("extra", o.extra, "how the extra levels are made (max_pool: P6 = maxpool(P5), Faster R-CNN)", any());
  v.leaf("relu_before_extra_convs", o.relu_before_extra_convs, "ReLU before the extra convs after the first", any());
}
template <typename V>
void visit(V& v, ops::AnchorConfig& o) {
  v.leaf("strides", o.strides, "one square stride per level", gt(0).nonempty());
  v.leaf("ratios", o.ratios, "anchor aspect ratios h / w",
         gt(0).nonempty().at_most(ops::AnchorConfig::kMaxAnchorRatios));
  v.leaf("scales", o.scales, "anchor sizes in units of the level's base size",
         gt(0).nonempty().at_most(ops::AnchorConfig::kMaxAnchorScales));
  v.leaf("base_sizes", o.base_sizes, "per-level base sizes; empty: the strides", gt(0));
  v.leaf("center_offset", o.center_offset, "anchor centre = offset * base size", unit());
  v.leaf("scale_major", o.scale_major, "anchor order: a = r * num_scales + s (true) or s * num_ratios + r", any());
  v.leaf("detectron", o.detectron, "Detectron's generate_anchors (+1 widths, rounded; the seed's)", any());
}
template <typename V>
void visit(V& v, models::RpnHeadOptions& o) {
  v.leaf("in_channels", o.in_channels, "input channels (= model.neck.out_channels)", gt(0));
  v.leaf("feat_channels", o.feat_channels, "channels of the shared 3x3 conv", gt(0));
  v.leaf("num_anchors", o.num_anchors, "anchors per location (= ratios x scales)", gt(0));
}
template <typename V>
void visit(V& v, models::MaxIoUAssignerOptions& o) {
  v.leaf("pos_iou_thr", o.pos_iou_thr, "IoU >= this with the best ground truth: positive", unit());
  v.leaf("neg_iou_lo", o.neg_iou_lo, "negative when the best IoU is in [neg_iou_lo, neg_iou_hi)", unit());
  v.leaf("neg_iou_hi", o.neg_iou_hi, "upper end of the negative range", unit());
  v.leaf("min_pos_iou", o.min_pos_iou, "low-quality matches need at least this IoU", unit());
  v.leaf("gt_max_assign_all", o.gt_max_assign_all, "low-quality: every candidate tied at a GT's best IoU", any());
  v.leaf("ignore_iof_thr", o.ignore_iof_thr, "ignore candidates with IoF > this against ignore boxes; <= 0: off",
         le(1));
  v.leaf("match_low_quality", o.match_low_quality, "give each ground truth its best candidates", any());
  v.leaf("low_quality_own_best", o.low_quality_own_best, "those candidates get their own best ground truth "
         "(maskrcnn-benchmark Matcher), not the one they are best for (mmdet)", any());
}
template <typename V>
void visit(V& v, models::RandomSamplerOptions& o) {
  v.leaf("num", o.num, "samples per image", gt(0));
  v.leaf("pos_fraction", o.pos_fraction, "expected fraction of positives", unit());
  v.leaf("neg_pos_ub", o.neg_pos_ub, ">= 0: at most neg_pos_ub * #pos negatives; < 0: no bound", any());
  v.leaf("add_gt_as_proposals", o.add_gt_as_proposals, "prepend the ground truths as candidates", any());
}
template <typename V>
void visit(V& v, models::RpnLossConfig& o) {
  v.group("assigner", o.assigner, "the RPN anchor assigner (MaxIoUAssigner)");
  v.group("sampler", o.sampler, "the RPN anchor sampler (RandomSampler)");
  v.leaf("target_means", o.target_means, "box-delta target means", any());
  v.leaf("target_stds", o.target_stds, "box-delta target stds", gt(0));
  v.leaf("regression_loss", o.regression_loss, "l1 (mmdet v2) or smooth_l1 (torchvision, original code)", any());
  v.leaf("smooth_l1_beta", o.smooth_l1_beta, "SmoothL1 beta (regression_loss smooth_l1)", ge(0));
  v.leaf("cls_weight", o.cls_weight, "objectness loss weight", ge(0));
  v.leaf("reg_weight", o.reg_weight, "box loss weight", ge(0));
  v.leaf("allowed_border", o.allowed_border, ">= 0: anchors reaching further outside the image are not trained "
         "(mmdet allowed_border, maskrcnn-benchmark STRADDLE_THRESH); < 0: off", any());
}
template <typename V>
void visit(V& v, models::RpnProposalConfig& o) {
  v.leaf("nms_pre", o.nms_pre, "top-k per (image, level) before NMS; <= 0: all", any());
  v.leaf("nms_iou", o.nms_iou, "level-wise NMS IoU (Dynamic R-CNN 0.85, Faster R-CNN 0.7)", unit());
  v.leaf("max_per_img", o.max_per_img, "proposals kept per image after NMS", ge(0));
  v.leaf("min_bbox_size", o.min_bbox_size, "small-box filter size (see small_box_rule)", ge(0));
  v.leaf("small_box_rule", o.small_box_rule, "mmdet < 2.18 (greater_than_zero_only) or >= 2.18 (strict_always)",
         any());
  v.leaf("means", o.means, "box-delta means for decoding", any());
  v.leaf("stds", o.stds, "box-delta stds for decoding", gt(0));
  v.leaf("wh_ratio_clip", o.wh_ratio_clip, "clip of the decoded log width/height ratio", gt(0));
  v.leaf("nms_split_threshold", o.nms_split_threshold, "mmcv batched_nms split_thr per image", gt(0));
  v.leaf("max_per_level", o.max_per_level, "> 0: proposals kept per level after its NMS (maskrcnn-benchmark "
         "POST_NMS_TOP_N); <= 0: no cap", any());
  v.leaf("per_batch", o.per_batch, "max_per_img x images over the whole batch (maskrcnn-benchmark "
         "FPN_POST_NMS_PER_BATCH), not per image", any());
}
template <typename V>
void visit(V& v, models::BBoxHeadOptions& o) {
  v.leaf("in_channels", o.in_channels, "RoI feature channels (= model.neck.out_channels)", gt(0));
  v.leaf("roi_feat_size", o.roi_feat_size, "RoIAlign output size", gt(0));
  v.leaf("fc_out_channels", o.fc_out_channels, "width of the two shared FCs", gt(0));
  // num_classes is model.num_classes (the detector requires them equal): not a key.
}
template <typename V>
void visit(V& v, models::RoiHeadConfig& o) {
  v.group("bbox_head", o.bbox_head, "Shared2FCBBoxHead (its num_classes is model.num_classes)");
  v.leaf("featmap_strides", o.featmap_strides, "strides of the levels RoIs are pooled from", gt(0).nonempty());
  v.leaf("sampling_ratio", o.sampling_ratio, "RoIAlign sampling ratio (0: adaptive)", ge(0));
  v.leaf("aligned", o.aligned, "RoIAlign half-pixel offset", any());
  v.leaf("finest_scale", o.finest_scale, "mmdet level mapping scale", gt(0));
  v.group("sampler", o.sampler, "the R-CNN RoI sampler (RandomSampler)");
  v.leaf("target_means", o.target_means, "box-delta target means", any());
  v.leaf("target_stds", o.target_stds, "box-delta target stds", gt(0));
  v.leaf("cls_weight", o.cls_weight, "classification loss weight", ge(0));
  v.leaf("reg_weight", o.reg_weight, "box loss weight", ge(0));
  v.leaf("score_thr", o.score_thr, "inference: keep (box, class) pairs with score > this", unit());
  v.leaf("nms_iou", o.nms_iou, "inference: per-class NMS IoU", unit());
  v.leaf("max_per_img", o.max_per_img, "inference: detections per image; <= 0: all", any());
}
template <typename V>
void visit(V& v, train::DynamicRcnnConfig& o) {
  v.leaf("iou_topk", o.iou_topk, "K_I: rank of the IoU statistic per image", gt(0));
  v.leaf("beta_topk", o.beta_topk, "K_beta: rank of the regression-error statistic per image", gt(0));
  v.leaf("update_interval", o.update_interval, "C: iterations between updates", gt(0));
  v.leaf("initial_iou", o.initial_iou, "floor of the IoU threshold at each update", unit());
  v.leaf("initial_beta", o.initial_beta, "cap of beta at each update", gt(0));
  v.leaf("start_iou", o.start_iou, "IoU threshold before the first update (mmdet 0.5, original 0.4)", unit());
  v.leaf("start_beta", o.start_beta, "beta before the first update", gt(0));
  v.leaf("beta_eps", o.beta_eps, "an update with median < beta_eps keeps beta (0: off)", ge(0));
  v.leaf("iou_pooling", o.iou_pooling, "mean_over_images (mmdet) or concatenated (original)", any());
  v.leaf("beta_median", o.beta_median, "numpy median (mmdet) or upper middle value (original)", any());
  v.leaf("population", o.population, "statistic populations: mmdet (sampled positives) or original (the seed's)", any());
  v.leaf("static_mode", o.static_mode, "Faster R-CNN baseline: fixed start_iou and start_beta", any());
}
template <typename V>
void visit(V& v, models::DetectorConfig& o) {
  v.leaf("name", o.name, "the model's name (logs, checkpoints)", any());
  v.leaf("num_classes", o.num_classes, "foreground classes (also roi_head.bbox_head's)", gt(0));
  v.group("backbone", o.backbone, "ResNet");
  v.group("neck", o.neck, "FPN");
  v.group("anchors", o.anchors, "RPN anchors");
  v.group("rpn_head", o.rpn_head, "RPN head");
  v.group("rpn_loss", o.rpn_loss, "RPN targets and losses");
  v.group("rpn_train", o.rpn_train, "proposals during training");
  v.group("rpn_test", o.rpn_test, "proposals at inference");
  v.group("roi_head", o.roi_head, "RoI head: extractor, targets, losses, inference");
  v.leaf("size_divisor", o.size_divisor, "images are padded to a multiple of this", ge(1));
  v.leaf("box_convention", o.box_convention, "box rules of the RPN, RoI head and post-processing: mmdet or "
         "maskrcnn_benchmark (+1 widths, the seed's level mapper and selection rules)", any());
  v.group("dynamic", o.dynamic, "the Dynamic R-CNN schedule");
}
template <typename V>
void visit(V& v, SolverConfig& o) {
  v.leaf("lr", o.lr, "base learning rate (0.02 is for 16 images; scale linearly)", ge(0));
  v.leaf("momentum", o.momentum, "SGD momentum", ge(0));
  v.leaf("weight_decay", o.weight_decay, "SGD weight decay (all parameters)", ge(0));
  v.leaf("warmup_iters", o.warmup_iters, "linear warm-up iterations (0: none)", ge(0));
  v.leaf("warmup_ratio", o.warmup_ratio, "lr factor at iteration 0", in(0, 1, true));
  v.leaf("steps", o.steps, "iterations where the lr is multiplied by gamma", ge(0).sorted());
  v.leaf("gamma", o.gamma, "lr factor at each step", gt(0));
  v.leaf("max_iters", o.max_iters, "training iterations", gt(0));
  v.leaf("images_per_batch", o.images_per_batch, "images per iteration", gt(0));
  v.leaf("grad_clip", o.grad_clip, "max total L2 norm of the gradients (0: off)", ge(0));
}
template <typename V>
void visit(V& v, DatasetConfig& o) {
  v.leaf("format", o.format, "annotation format", any());
  v.leaf("ann", o.ann, "COCO: annotation JSON; VOC: the Annotations folder", any());
  v.leaf("images", o.images, "image folder", any());
  v.leaf("image_list", o.image_list, "VOC only: ImageSets/Main/<split>.txt (empty: every XML)", any());
}
template <typename V>
void visit(V& v, data::NormalizeOptions& o) {
  v.leaf("mean", o.mean, "subtracted per channel, in the output order (RGB when to_rgb, else BGR)", any());
  v.leaf("std", o.std, "divides per channel after the mean (the seed's Detectron models: 1)", gt(0));
  v.leaf("to_rgb", o.to_rgb, "true: RGB channels (MMDetection to_rgb=True); false: BGR (the seed's TO_BGR255)", any());
}
template <typename V>
void visit(V& v, DataConfig& o) {
  v.group("train", o.train, "training set");
  v.group("val", o.val, "validation set (ann empty: no evaluation)");
  v.leaf("scale_long", o.scale_long, "resize target, long edge (ratio kept)", gt(0));
  v.leaf("scale_short", o.scale_short, "resize target, short edge", gt(0));
  v.leaf("multi_scale_short", o.multi_scale_short, "multi-scale training: short sides to draw from (empty: off)",
         gt(0));
  v.leaf("multi_scale_long", o.multi_scale_long, "multi-scale training: long-edge cap", gt(0));
  v.leaf("flip", o.flip, "horizontal flip probability (training)", unit());
  v.leaf("workers", o.workers, "loader worker threads (0: in the training thread)", ge(0));
  v.group("normalize", o.normalize, "input normalisation: (pixel - mean) / std (train, test, TTA)");
}
template <typename V>
void visit(V& v, EvalConfig& o) {
  v.leaf("every", o.every, "evaluate every N iterations (0: only after training)", ge(0));
  v.leaf("draw_score_thr", o.draw_score_thr, "score threshold of the drawn detections", unit());
  v.leaf("draw", o.draw, "validation images to draw", ge(0));
  v.leaf("tta_short", o.tta_short, "test-time augmentation: short side of each view (empty: off)", gt(0));
  v.leaf("tta_long", o.tta_long, "test-time augmentation: long-edge cap of every view", gt(0));
  v.leaf("tta_flip", o.tta_flip, "test-time augmentation: each scale also flipped horizontally", any());
  v.leaf("tta_nms_iou", o.tta_nms_iou, "test-time augmentation: IoU of the per-class NMS of the merged views", unit());
  v.leaf("tta_max_per_img", o.tta_max_per_img, "test-time augmentation: detections kept per image", gt(0));
}
template <typename V>
void visit(V& v, LoggingConfig& o) {
  v.leaf("log_every", o.log_every, "iterations per log line", gt(0));
  v.leaf("checkpoint_every", o.checkpoint_every, "iterations between checkpoints (0: final weights only)", ge(0));
  v.leaf("keep", o.keep, "checkpoints kept (0: all)", ge(0));
  v.leaf("out", o.out, "output folder", any());
}
template <typename V>
void visit(V& v, InitConfig& o) {
  v.leaf("backbone", o.backbone, "backbone weights, safetensors (mmdet init_cfg Pretrained; empty: random)", any());
  v.leaf("detector", o.detector, "whole-detector weights, safetensors, after backbone (mmdet load_from)", any());
}
template <typename V>
void visit(V& v, RunConfig& o) {
  v.group("model", o.model, "the detector (DetectorConfig)");
  v.group("solver", o.solver, "SGD and the lr schedule");
  v.group("data", o.data, "datasets and augmentation");
  v.group("eval", o.eval, "evaluation");
  v.group("logging", o.logging, "logs, checkpoints, output");
  v.group("init", o.init, "initial weights of a fresh run (engine::load_pretrained)");
  v.leaf("device", o.device, "where the model runs", device_rule());
  v.leaf("seed", o.seed, "seed of the weights, the sampling and the data order", any());
  v.leaf("threads", o.threads, "CPU compute threads", gt(0));
  v.leaf("cpu_precision", o.cpu_precision,
         "fp32 | bf16: bfloat16 CPU convolutions (f32 accumulation; needs AVX-512 BF16)", precision_rule());
}

std::string join(const std::string& path, const std::string& key) { return path.empty() ? key : path + "." + key; }

// Whether `value` meets `r`; else what was expected (for the message).
template <typename T>
bool meets(const T& value, const Rule& r) {
  if constexpr (std::is_same_v<T, std::string>) {
    return !r.string_ok || r.string_ok(value);
  } else if constexpr (is_vector<T>::value || is_array<T>::value) {
    if (value.size() < r.min_size || value.size() > r.max_size) return false;
    for (size_t i = 0; i < value.size(); ++i) {
      if (!meets(value[i], r)) return false;
      if (r.ascending && i > 0 && value[i] < value[i - 1]) return false;
    }
    return true;
  } else if constexpr (std::is_floating_point_v<T>) {
    return std::isfinite(value) && r.accepts(value);
  } else if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    return r.accepts(double(value));
  } else {
    return true;
  }
}

// The value as the YAML text to_yaml writes (for "got" in validate()'s messages).
template <typename T>
std::string value_text(const T& value) {
  if constexpr (std::is_same_v<T, bool>) return value ? "true" : "false";
  else if constexpr (std::is_enum_v<T>) return enum_name(value);
  else if constexpr (std::is_floating_point_v<T>) return double_text(value);
  else if constexpr (std::is_integral_v<T>) return std::to_string(value);
  else if constexpr (std::is_same_v<T, std::string>) return "'" + value + "'";
  else {
    std::string s = "[";
    for (size_t i = 0; i < value.size(); ++i) s += (i ? ", " : "") + value_text(value[i]);
    return s + "]";
  }
}

// ------------------------------------------------------------------------------ Reader
// Where the YAML came from: "file.yaml" (messages carry line:column) or "--set k=v".
struct Source {
  std::string name;
  bool marks = true;
  std::string at(const YAML::Mark& m) const {
    if (!marks || m.is_null()) return name;
    return fmt::format("{}:{}:{}", name, m.line + 1, m.column + 1);
  }
};

[[noreturn]] void fail_at(const std::string& where, const std::string& key, const std::string& what) {
  throw ConfigError(fmt::format("{}: {}: {}", where, key, what));
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

class Reader {
 public:
  Reader(const YAML::Node& node, std::string path, const Source& src, std::vector<std::string> extra = {})
      : m_node(node), m_path(std::move(path)), m_src(src), m_known(std::move(extra)) {}

  template <typename T>
  void leaf(const char* key, T& field, const char*, const Rule& rule) {
    m_known.push_back(key);
    const YAML::Node n = m_node[key];
    if (!n.IsDefined()) return;
    const std::string name = join(m_path, key);
    T value{};
    read(n, name, value, rule);
    field = std::move(value);
  }

  template <typename S>
  void group(const char* key, S& sub, const char*) {
    m_known.push_back(key);
    const YAML::Node n = m_node[key];
    if (!n.IsDefined() || n.IsNull()) return;  // "model:" with nothing under it changes nothing
    const std::string name = join(m_path, key);
    if (!n.IsMap()) fail_at(m_src.at(n.Mark()), name, "expected a map of keys, got " + node_text(n));
    Reader r(n, name, m_src);
    visit(r, sub);
    r.finish();
  }

  /// Unknown or repeated keys at this level.
  void finish() const {
    std::set<std::string> seen;
    for (auto it = m_node.begin(); it != m_node.end(); ++it) {
      const YAML::Node& k = it->first;
      const std::string where = m_src.at(k.Mark());
      if (!k.IsScalar()) fail_at(where, m_path.empty() ? "(top level)" : m_path, "a key must be a plain name, got " + node_text(k));
      const std::string key = k.Scalar();
      if (!seen.insert(key).second) fail_at(where, join(m_path, key), "key given twice");
      if (std::find(m_known.begin(), m_known.end(), key) != m_known.end()) continue;
      std::string best;
      size_t best_d = std::numeric_limits<size_t>::max();
      std::string list;
      for (const std::string& cand : m_known) {
        const size_t d = edit_distance(key, cand);
        if (d < best_d) best_d = d, best = cand;
        list += (list.empty() ? "" : ", ") + cand;
      }
      fail_at(where, join(m_path, key),
              fmt::format("unknown key; did you mean {}? ({} takes: {})", join(m_path, best),
                          m_path.empty() ? "the top level" : m_path, list));
    }
  }

 private:
  template <typename T>
  void read(const YAML::Node& n, const std::string& name, T& out, const Rule& rule) const {
    // A null value ("lr:") has the mark of the next token: point at its key instead.
    const std::string where = m_src.at(n.IsNull() ? key_mark(name.substr(name.rfind('.') + 1)) : n.Mark());
    const auto bad = [&]() { fail_at(where, name, fmt::format("expected {}, got {}", expect_text<T>(rule), node_text(n))); };
    if constexpr (is_vector<T>::value || is_array<T>::value) {
      if (!n.IsSequence()) bad();
      if constexpr (is_array<T>::value) {
        if (n.size() != out.size()) bad();
      } else {
        out.resize(n.size());
      }
      for (size_t i = 0; i < n.size(); ++i) {
        const YAML::Node e = n[i];
        if (!decode_scalar(e, out[i]) || !meets(out[i], rule))
          fail_at(m_src.at(e.Mark()), fmt::format("{}[{}]", name, i),
                  fmt::format("expected {}, got {}", expect_text<typename T::value_type>(rule), node_text(e)));
      }
      if (!meets(out, rule)) bad();
    } else if constexpr (std::is_same_v<T, std::string>) {
      if (n.IsNull()) out.clear();  // "ann:" with no value: the empty string
      else if (!decode_scalar(n, out)) bad();
      if (!meets(out, rule)) bad();
    } else {
      if (!decode_scalar(n, out) || !meets(out, rule)) bad();
    }
  }

  YAML::Mark key_mark(const std::string& key) const {
    for (auto it = m_node.begin(); it != m_node.end(); ++it)
      if (it->first.IsScalar() && it->first.Scalar() == key) return it->first.Mark();
    return YAML::Mark::null_mark();
  }

  const YAML::Node m_node;
  std::string m_path;
  const Source& m_src;
  std::vector<std::string> m_known;
};

// ------------------------------------------------------------------------------ Writer
class Writer {
 public:
  explicit Writer(YAML::Emitter& e) : m_e(e) {}
  template <typename T>
  void leaf(const char* key, T& field, const char*, const Rule&) {
    m_e << YAML::Key << key << YAML::Value;
    write(field);
  }
  template <typename S>
  void group(const char* key, S& sub, const char*) {
    m_e << YAML::Key << key << YAML::Value << YAML::BeginMap;
    visit(*this, sub);
    m_e << YAML::EndMap;
  }

 private:
  template <typename T>
  void write(const T& v) {
    if constexpr (std::is_same_v<T, bool>) m_e << v;
    else if constexpr (std::is_enum_v<T>) m_e << enum_name(v);
    else if constexpr (std::is_floating_point_v<T>) m_e << double_text(v);
    else if constexpr (std::is_integral_v<T>) m_e << v;
    else if constexpr (std::is_same_v<T, std::string>) m_e << YAML::DoubleQuoted << v;
    else {
      m_e << YAML::Flow << YAML::BeginSeq;
      for (const auto& x : v) write(x);
      m_e << YAML::EndSeq;
    }
  }
  YAML::Emitter& m_e;
};

// ------------------------------------------------------------------------------ Checker / Lister
// A visitor that keeps the dotted path of the group it is in (Checker and Lister).
template <typename Derived>
class PathVisitor {
 public:
  template <typename S>
  void group(const char* key, S& sub, const char*) {
    const std::string saved = m_path;
    m_path = join(m_path, key);
    visit(static_cast<Derived&>(*this), sub);
    m_path = saved;
  }

 protected:
  std::string m_path;
};

class Checker : public PathVisitor<Checker> {
 public:
  explicit Checker(std::string source) : m_source(std::move(source)) {}
  template <typename T>
  void leaf(const char* key, T& field, const char*, const Rule& rule) {
    if (!meets(field, rule))
      fail_at(m_source, join(m_path, key), fmt::format("expected {}, got {}", expect_text<T>(rule), value_text(field)));
  }

 private:
  std::string m_source;
};

class Lister : public PathVisitor<Lister> {
 public:
  std::vector<ConfigKey> keys;
  template <typename T>
  void leaf(const char* key, T& field, const char* doc, const Rule& rule) {
    keys.push_back({join(m_path, key), expect_text<T>(rule), doc, value_text(field)});
  }
};

// ------------------------------------------------------------------------------ checks across fields
std::vector<int64_t> resnet_channels(const models::ResNetOptions& b) {
  const int64_t expansion = b.depth >= 50 ? 4 : 1;
  std::vector<int64_t> c;
  for (int64_t k = 1; k <= 8; k *= 2) c.push_back(b.base_width * k * expansion);
  return c;
}

void validate_with_source(const RunConfig& cfg, const std::string& source) {
  RunConfig copy = cfg;  // the visitors take non-const references
  Checker checker(source);
  visit(checker, copy);
  const models::DetectorConfig& m = cfg.model;
  const auto fail = [&](const std::string& key, const std::string& what) { fail_at(source, key, what); };
  if (m.roi_head.bbox_head.num_classes != m.num_classes)
    fail("model.roi_head.bbox_head.num_classes",
         fmt::format("must equal model.num_classes ({}), got {}", m.num_classes, m.roi_head.bbox_head.num_classes));
  if (m.neck.in_channels != resnet_channels(m.backbone))
    fail("model.neck.in_channels", fmt::format("must be the backbone's outputs {} (depth {}, base_width {}), got {}",
                                               value_text(resnet_channels(m.backbone)), m.backbone.depth,
                                               m.backbone.base_width, value_text(m.neck.in_channels)));
  if (m.neck.num_outs < int64_t(m.neck.in_channels.size()))
    fail("model.neck.num_outs", fmt::format("must be >= the {} inputs (model.neck.in_channels), got {}",
                                            m.neck.in_channels.size(), m.neck.num_outs));
  if (int64_t(m.anchors.strides.size()) != m.neck.num_outs)
    fail("model.anchors.strides", fmt::format("needs one stride per FPN level (model.neck.num_outs = {}), got {}",
                                              m.neck.num_outs, value_text(m.anchors.strides)));
  if (!m.anchors.base_sizes.empty() && m.anchors.base_sizes.size() != m.anchors.strides.size())
    fail("model.anchors.base_sizes", fmt::format("must be empty or have one entry per stride ({}), got {}",
                                                 m.anchors.strides.size(), value_text(m.anchors.base_sizes)));
  if (m.rpn_head.num_anchors != m.anchors.anchors_per_location())
    fail("model.rpn_head.num_anchors",
         fmt::format("must equal model.anchors' ratios x scales ({} x {} = {}), got {}", m.anchors.ratios.size(),
                     m.anchors.scales.size(), m.anchors.anchors_per_location(), m.rpn_head.num_anchors));
  if (m.rpn_head.in_channels != m.neck.out_channels)
    fail("model.rpn_head.in_channels", fmt::format("must equal model.neck.out_channels ({}), got {}",
                                                   m.neck.out_channels, m.rpn_head.in_channels));
  if (m.roi_head.bbox_head.in_channels != m.neck.out_channels)
    fail("model.roi_head.bbox_head.in_channels", fmt::format("must equal model.neck.out_channels ({}), got {}",
                                                             m.neck.out_channels, m.roi_head.bbox_head.in_channels));
  if (int64_t(m.roi_head.featmap_strides.size()) > m.neck.num_outs)
    fail("model.roi_head.featmap_strides", fmt::format("has more levels than the FPN ({}), got {}", m.neck.num_outs,
                                                       value_text(m.roi_head.featmap_strides)));
  if (m.rpn_loss.assigner.neg_iou_lo > m.rpn_loss.assigner.neg_iou_hi)
    fail("model.rpn_loss.assigner.neg_iou_lo", fmt::format("must be <= neg_iou_hi ({}), got {}",
                                                           double_text(m.rpn_loss.assigner.neg_iou_hi),
                                                           double_text(m.rpn_loss.assigner.neg_iou_lo)));
  // The owners' own checks, so a rule added there is never missed here.
  try {
    m.dynamic.validate();
    lr_schedule(cfg.solver).validate();
    sgd_options(cfg.solver).validate();
  } catch (const ConfigError&) {
    throw;
  } catch (const Error& e) {
    throw ConfigError(fmt::format("{}: {}", source, e.what()));
  }
}

// ------------------------------------------------------------------------------ loading
std::string read_text(const std::filesystem::path& path) {
  // A folder opens as a stream on Linux and reads as nothing, which would be an empty config.
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw ConfigError(fmt::format("{}: cannot open the config file: it is a directory", path.string()));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(fmt::format("{}: cannot open the config file: {}", path.string(), std::strerror(errno)));
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad()) throw ConfigError(fmt::format("{}: cannot read the config file", path.string()));
  return s.str();
}

YAML::Node parse_yaml(const std::string& text, const Source& src) {
  try {
    return YAML::Load(text);
  } catch (const YAML::DeepRecursion& e) {  // its own message reads "bad file"
    throw ConfigError(fmt::format("{}: invalid YAML: nested deeper than yaml-cpp's limit ({} levels)", src.at(e.mark),
                                  e.depth()));
  } catch (const YAML::ParserException& e) {
    throw ConfigError(fmt::format("{}: invalid YAML: {}", src.at(e.mark), e.msg));
  }
}

RunConfig load_layers(const std::string& text, const std::string& name, std::vector<std::filesystem::path>& chain);

// One file (or string): its starting values, then its keys on top. Not validated (a base may
// be incomplete until the file that uses it fills it in).
RunConfig load_layers(const std::string& text, const std::string& name, std::vector<std::filesystem::path>& chain) {
  const Source src{name, true};
  const YAML::Node root = parse_yaml(text, src);
  if (!root.IsDefined() || root.IsNull()) return preset_config("small_cpu");  // an empty file
  if (!root.IsMap())
    throw ConfigError(fmt::format("{}: expected a map of keys at the top level, got {}", src.at(root.Mark()), node_text(root)));
  // Starting values: the _base_ file (resolved recursively), else small_cpu; then `preset`
  // replaces the model section (so a schedule file and a model preset compose).
  const YAML::Node preset = root["preset"], base = root["_base_"];
  RunConfig cfg = preset_config("small_cpu");
  if (base.IsDefined()) {
    if (!base.IsScalar() || base.Scalar().empty())
      fail_at(src.at(base.Mark()), "_base_", "expected the path of another config file, got " + node_text(base));
    const std::filesystem::path here = std::filesystem::path(name).parent_path();
    const std::filesystem::path base_path = (here / base.Scalar()).lexically_normal();
    const std::filesystem::path key = std::filesystem::weakly_canonical(base_path);
    if (std::find(chain.begin(), chain.end(), key) != chain.end())
      fail_at(src.at(base.Mark()), "_base_",
              fmt::format("{} is already being loaded (a cycle of _base_ files)", base_path.string()));
    std::string base_text;
    try {
      base_text = read_text(base_path);
    } catch (const ConfigError& e) {
      fail_at(src.at(base.Mark()), "_base_", e.what());
    }
    chain.push_back(key);
    cfg = load_layers(base_text, base_path.string(), chain);
    chain.pop_back();
  }
  if (preset.IsDefined()) {
    const std::vector<std::string> names = preset_names();
    if (!preset.IsScalar() || std::find(names.begin(), names.end(), preset.Scalar()) == names.end()) {
      std::string list;
      for (const std::string& n : names) list += (list.empty() ? "" : " | ") + n;
      fail_at(src.at(preset.Mark()), "preset", fmt::format("expected one of {}, got {}", list, node_text(preset)));
    }
    cfg.model = preset_config(preset.Scalar()).model;
  }
  Reader r(root, "", src, {"preset", "_base_"});
  visit(r, cfg);
  r.finish();
  cfg.model.roi_head.bbox_head.num_classes = cfg.model.num_classes;
  return cfg;
}

}  // namespace

// ---------------------------------------------------------------------------------- public API
std::vector<std::string> preset_names() {
  return {"small_cpu",
          "tiny_cpu",
          "dynamic_rcnn_r50_fpn_1x",
          "faster_rcnn_r50_fpn_1x",
          "dynamic_rcnn_r101_fpn_1x",
          "seed_dynamic_rcnn_r50_fpn_1x",
          "seed_dynamic_rcnn_r101_fpn_1x"};
}

RunConfig preset_config(const std::string& name) {
  RunConfig c;
  if (name == "small_cpu") c.model = models::DetectorConfig::small_cpu(80);
  else if (name == "tiny_cpu") c.model = models::DetectorConfig::tiny_cpu(80);
  else if (name == "dynamic_rcnn_r50_fpn_1x") c.model = models::DetectorConfig::dynamic_rcnn_r50_fpn_1x(80);
  else if (name == "faster_rcnn_r50_fpn_1x") c.model = models::DetectorConfig::faster_rcnn_r50_fpn_1x(80);
  else if (name == "dynamic_rcnn_r101_fpn_1x") c.model = models::DetectorConfig::dynamic_rcnn_r101_fpn_1x(80);
  else if (name == "seed_dynamic_rcnn_r50_fpn_1x") c.model = models::DetectorConfig::seed_dynamic_rcnn_r50_fpn_1x(80);
  else if (name == "seed_dynamic_rcnn_r101_fpn_1x") c.model = models::DetectorConfig::seed_dynamic_rcnn_r101_fpn_1x(80);
  else {
    std::string list;
    for (const std::string& n : preset_names()) list += (list.empty() ? "" : " | ") + n;
    throw ConfigError(fmt::format("preset: expected one of {}, got '{}'", list, name));
  }
  return c;
}

RunConfig parse_config(const std::string& yaml, const std::string& source) {
  std::vector<std::filesystem::path> chain;
  if (source != "<string>") chain.push_back(std::filesystem::weakly_canonical(source));
  RunConfig cfg = load_layers(yaml, source, chain);
  validate_with_source(cfg, source);
  return cfg;
}

RunConfig load_config(const std::filesystem::path& path) { return parse_config(read_text(path), path.string()); }

void apply_override(RunConfig& cfg, const std::string& assignment) {
  const Source src{"--set " + assignment, false};
  const size_t eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw ConfigError(fmt::format("{}: expected key.sub=value (e.g. solver.lr=0.01)", src.name));
  const std::string key = assignment.substr(0, eq);
  std::vector<std::string> parts;
  for (size_t b = 0;;) {
    const size_t e = key.find('.', b);
    parts.push_back(key.substr(b, e == std::string::npos ? std::string::npos : e - b));
    if (e == std::string::npos) break;
    b = e + 1;
  }
  for (const std::string& p : parts)
    if (p.empty() || p.find_first_of(" \t") != std::string::npos)
      throw ConfigError(fmt::format("{}: '{}' is not a dotted key (e.g. model.backbone.depth)", src.name, key));
  if (parts.size() == 1 && (parts[0] == "preset" || parts[0] == "_base_"))
    fail_at(src.name, parts[0], "can only be given in a config file (load it, then --set on top)");
  YAML::Node value = parse_yaml(assignment.substr(eq + 1), src);
  // {a: {b: {c: value}}}, then the same Reader a file goes through.
  for (size_t i = parts.size(); i-- > 0;) {
    YAML::Node map(YAML::NodeType::Map);
    map[parts[i]] = value;
    value = map;
  }
  RunConfig next = cfg;
  Reader r(value, "", src);
  visit(r, next);
  r.finish();
  next.model.roi_head.bbox_head.num_classes = next.model.num_classes;
  validate_with_source(next, src.name);
  cfg = std::move(next);
}

RunConfig resolve_config(const std::filesystem::path& path, const std::vector<std::string>& overrides) {
  RunConfig cfg = path.empty() ? preset_config("small_cpu") : load_config(path);
  for (const std::string& s : overrides) apply_override(cfg, s);
  return cfg;
}

void validate(const RunConfig& cfg) { validate_with_source(cfg, "config"); }

std::string to_yaml(const RunConfig& cfg) {
  RunConfig copy = cfg;
  YAML::Emitter e;
  e << YAML::BeginMap;
  Writer w(e);
  visit(w, copy);
  e << YAML::EndMap;
  if (!e.good()) throw ConfigError(fmt::format("to_yaml: the YAML emitter failed: {}", e.GetLastError()));
  return fmt::format("# drcnn run configuration: every key (docs/config.md)\n{}\n", e.c_str());
}

void save_config(const RunConfig& cfg, const std::filesystem::path& path) {
  const std::string text = to_yaml(cfg);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) throw ConfigError(fmt::format("{}: cannot write the config file: {}", path.string(), std::strerror(errno)));
}

std::vector<ConfigKey> config_keys(const RunConfig& cfg) {
  RunConfig c = cfg;
  Lister l;
  visit(l, c);
  return l.keys;
}

data::ResizeOptions train_resize(const DataConfig& d) {
  if (d.multi_scale_short.empty()) return test_resize(d);
  return data::ResizeOptions::multi_scale(d.multi_scale_long, d.multi_scale_short);
}

data::ResizeOptions test_resize(const DataConfig& d) {
  data::ResizeOptions r;
  r.scales = {{d.scale_long, d.scale_short}};
  return r;
}

train::SgdOptions sgd_options(const SolverConfig& s) {
  train::SgdOptions o;
  o.lr = s.lr;
  o.momentum = s.momentum;
  o.weight_decay = s.weight_decay;
  return o;
}

train::LrSchedule lr_schedule(const SolverConfig& s) {
  return train::LrSchedule{s.lr, s.warmup_iters, s.warmup_ratio, s.steps, s.gamma};
}

}  // namespace drcnn::io
