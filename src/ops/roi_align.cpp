// Dispatchers of RoIAlign (include/drcnn/ops/roi_align.h): check, allocate, fill a
// RoiAlignLaunch and run the shared bodies of ops/detail/roi_align_body.h on the input's
// device. Bad batch indices and levels are found by the kernels (an error flag, read when the
// call returns on the CPU and lazily on CUDA: ops/device_checks.h), then located on the host
// for the message.
#include "drcnn/ops/roi_align.h"

#include <cmath>
#include <string>

#include "dispatch.h"
#include "drcnn/ops/box_ops.h"
#include "drcnn/ops/detail/roi_align_body.h"
#include "drcnn/ops/device_checks.h"

namespace drcnn::ops {

namespace {

void check_float(const char* op, const Tensor& t, const char* name) {
  runtime::check_defined(op, t, name);
  DRCNN_CHECK(t.dtype() == DType::Float32 || t.dtype() == DType::Float64, op, ": ", name,
              " must be float32 or float64, got ", t.dtype());
}

void check_params(const char* op, RoiOutputSize size, int64_t sampling_ratio) {
  DRCNN_CHECK(size[0] > 0 && size[1] > 0, op, ": output_size must be positive, got (", size[0], ", ", size[1], ")");
  DRCNN_CHECK(sampling_ratio >= 0, op, ": sampling_ratio must be >= 0 (0 = adaptive), got ", sampling_ratio);
}

void check_scale(const char* op, double scale) {
  DRCNN_CHECK(std::isfinite(scale) && scale > 0, op, ": spatial_scale must be finite and > 0, got ", scale);
}

/// rois [R, 5] with `like`'s dtype and device.
void check_rois(const char* op, const Tensor& rois, const Tensor& like, const char* like_name) {
  check_float(op, rois, "rois");
  DRCNN_CHECK(rois.ndim() == 2 && rois.shape()[1] == 5, op,
              ": rois must have shape [R, 5] (batch_index, x1, y1, x2, y2), got shape ", rois.shape());
  runtime::check_same_device(op, {&like, &rois});
  DRCNN_CHECK(rois.dtype() == like.dtype(), op, ": rois and ", like_name, " must have the same dtype, got ",
              rois.dtype(), " and ", like.dtype());
}

/// A [N, C, H, W] shape with H, W >= 1 (a sample always reads a cell).
void check_map_shape(const char* op, const Shape& s, const char* name) {
  DRCNN_CHECK(s.ndim() == 4, op, ": ", name, " must have shape [N, C, H, W], got shape ", s);
  DRCNN_CHECK(s[2] >= 1 && s[3] >= 1, op, ": ", name, " must have H >= 1 and W >= 1, got shape ", s);
}

/// The level list of the multi-level ops: 1..kRoiAlignMaxLevels entries, one scale each.
void check_levels(const char* op, size_t count, const std::vector<double>& scales) {
  DRCNN_CHECK(count >= 1 && count <= size_t(kRoiAlignMaxLevels), op, ": expected 1 to ", kRoiAlignMaxLevels,
              " feature levels, got ", count);
  DRCNN_CHECK(scales.size() == count, op, ": expected one spatial scale per level (", count, "), got ",
              scales.size());
  for (double s : scales) check_scale(op, s);
}

RoiAlignLaunch make_launch(const Tensor& rois, int64_t N, int64_t C, RoiOutputSize size, int64_t sampling_ratio,
                           bool aligned) {
  RoiAlignLaunch l;
  l.R = rois.size(0);
  l.C = C;
  l.N = N;
  l.PH = size[0];
  l.PW = size[1];
  l.sampling_ratio = sampling_ratio;
  l.aligned = aligned;
  l.rois = rois.data_ptr();
  return l;
}

void set_level(RoiAlignLaunch& l, int i, const Tensor& map, double scale, bool grad) {
  RoiAlignLevel& lv = l.level[i];
  if (grad) lv.grad = map.data_ptr();
  else lv.features = map.data_ptr();
  lv.H = map.size(2);
  lv.W = map.size(3);
  for (int d = 0; d < 4; ++d) lv.stride[d] = map.stride(d);
  lv.scale = scale;
}

/// After a launch: turns the kernel's flag into an error naming the first bad RoI, at once on
/// the CPU, lazily on CUDA (ops/device_checks.h).
void raise_if_flagged(const char* op, const Tensor& flag, const Tensor& rois, const Tensor& levels, int64_t N,
                      int num_levels) {
  detail::check_flag(flag, [op, rois, levels, N, num_levels] {
    const std::vector<double> r = rois.to_vector<double>();
    const std::vector<int64_t> lv = levels.defined() ? levels.to_vector<int64_t>() : std::vector<int64_t>();
    for (size_t i = 0; i < r.size() / 5; ++i) {
      const double b = r[5 * i];
      DRCNN_CHECK(b >= 0 && b < double(N) && std::floor(b) == b, op, ": rois[", i,
                  ", 0] (the batch index) must be an integer in [0, ", N, "), got ", b);
      if (!lv.empty())
        DRCNN_CHECK(lv[i] >= 0 && lv[i] < num_levels, op, ": levels[", i, "] must be in [0, ", num_levels,
                    "), got ", lv[i]);
    }
    DRCNN_FAIL(op, ": the kernel flagged a bad RoI but none was found on the host (internal error, or the rois ",
               "changed before the deferred check)");
  });
}

/// Runs the forward; out is [R, C, PH, PW] contiguous and already allocated.
void run_forward(const char* op, RoiAlignLaunch& l, const Tensor& like, const Tensor& rois, const Tensor& levels,
                 Tensor& out) {
  if (out.numel() == 0) return;
  Tensor flag = Tensor::zeros({}, DType::Int32, like.device());
  l.out = out.data_ptr();
  l.error = static_cast<int*>(flag.data_ptr());
  runtime::on_device(
      like.device(), op, [&] { cpu::roi_align_forward(like.dtype(), l); },
      [&](auto s) { cuda::roi_align_forward(s, like.dtype(), l); });
  raise_if_flagged(op, flag, rois, levels, l.N, l.num_levels);
}

void run_backward(const char* op, RoiAlignLaunch& l, const Tensor& grad_out, const Tensor& rois,
                  const Tensor& levels, RoiAlignBackwardMode mode) {
  if (grad_out.numel() == 0) return;
  Tensor flag = Tensor::zeros({}, DType::Int32, grad_out.device());
  l.grad_out = grad_out.data_ptr();
  for (int d = 0; d < 4; ++d) l.go_stride[d] = grad_out.stride(d);
  l.error = static_cast<int*>(flag.data_ptr());
  runtime::on_device(
      grad_out.device(), op, [&] { cpu::roi_align_backward(grad_out.dtype(), l); },
      [&](auto s) {
        cuda::roi_align_backward(s, grad_out.dtype(), l, mode == RoiAlignBackwardMode::Deterministic);
      });
  raise_if_flagged(op, flag, rois, levels, l.N, l.num_levels);
}

void check_grad_out(const char* op, const Tensor& grad_out, const Tensor& rois, int64_t C) {
  check_float(op, grad_out, "grad_out");
  DRCNN_CHECK(grad_out.ndim() == 4 && grad_out.size(0) == rois.size(0) && grad_out.size(1) == C &&
                  grad_out.size(2) > 0 && grad_out.size(3) > 0,
              op, ": grad_out must have shape [R, C, PH, PW] = [", rois.size(0), ", ", C,
              ", PH, PW] with PH, PW > 0, got shape ", grad_out.shape());
}

/// levels: int64 [R] on the rois' device.
Tensor checked_levels(const char* op, const Tensor& levels, const Tensor& rois) {
  runtime::check_defined(op, levels, "levels");
  DRCNN_CHECK(levels.dtype() == DType::Int64, op, ": levels must be int64, got ", levels.dtype());
  DRCNN_CHECK(levels.ndim() == 1 && levels.size(0) == rois.size(0), op, ": levels must have shape [R] = [",
              rois.size(0), "], got shape ", levels.shape());
  runtime::check_same_device(op, {&rois, &levels});
  return levels.contiguous();
}
}  // namespace

Tensor roi_align(const Tensor& features, const Tensor& rois, RoiOutputSize output_size, double spatial_scale,
                 int64_t sampling_ratio, bool aligned) {
  const char* op = "roi_align";
  check_float(op, features, "features");
  check_map_shape(op, features.shape(), "features");
  check_rois(op, rois, features, "features");
  check_params(op, output_size, sampling_ratio);
  check_scale(op, spatial_scale);
  const Tensor cr = rois.contiguous();
  Tensor out = Tensor::empty({rois.size(0), features.size(1), output_size[0], output_size[1]}, features.dtype(),
                             features.device());
  RoiAlignLaunch l = make_launch(cr, features.size(0), features.size(1), output_size, sampling_ratio, aligned);
  set_level(l, 0, features, spatial_scale, false);
  run_forward(op, l, features, cr, Tensor(), out);
  return out;
}

Tensor roi_align_backward(const Tensor& grad_out, const Tensor& rois, const Shape& input_shape, double spatial_scale,
                          int64_t sampling_ratio, bool aligned, RoiAlignBackwardMode mode) {
  const char* op = "roi_align_backward";
  check_map_shape(op, input_shape, "input_shape");
  check_grad_out(op, grad_out, rois, input_shape[1]);
  check_rois(op, rois, grad_out, "grad_out");
  check_params(op, {grad_out.size(2), grad_out.size(3)}, sampling_ratio);
  check_scale(op, spatial_scale);
  const Tensor cr = rois.contiguous();
  Tensor grad = Tensor::zeros(input_shape, grad_out.dtype(), grad_out.device());
  RoiAlignLaunch l = make_launch(cr, input_shape[0], input_shape[1], {grad_out.size(2), grad_out.size(3)},
                                 sampling_ratio, aligned);
  set_level(l, 0, grad, spatial_scale, true);
  run_backward(op, l, grad_out, cr, Tensor(), mode);
  return grad;
}

RoiAlignMultilevel roi_align_multilevel(const std::vector<Tensor>& features, const Tensor& rois,
                                        RoiOutputSize output_size, const std::vector<double>& spatial_scales,
                                        int64_t sampling_ratio, bool aligned, double finest_scale) {
  const char* op = "roi_align_multilevel";
  check_levels(op, features.size(), spatial_scales);
  check_float(op, features[0], "features[0]");
  check_rois(op, rois, features[0], "features");
  RoiAlignMultilevel r;
  r.levels = map_roi_levels(rois, int(features.size()), finest_scale);
  r.output = roi_align_multilevel(features, rois, r.levels, output_size, spatial_scales, sampling_ratio, aligned);
  return r;
}

Tensor roi_align_multilevel(const std::vector<Tensor>& features, const Tensor& rois, const Tensor& levels,
                            RoiOutputSize output_size, const std::vector<double>& spatial_scales,
                            int64_t sampling_ratio, bool aligned) {
  const char* op = "roi_align_multilevel";
  check_levels(op, features.size(), spatial_scales);
  for (size_t i = 0; i < features.size(); ++i) {
    const std::string name = "features[" + std::to_string(i) + "]";
    check_float(op, features[i], name.c_str());
    check_map_shape(op, features[i].shape(), name.c_str());
    runtime::check_same_device(op, {&features[0], &features[i]});
    DRCNN_CHECK(features[i].dtype() == features[0].dtype() && features[i].size(0) == features[0].size(0) &&
                    features[i].size(1) == features[0].size(1),
                op, ": every level must have features[0]'s dtype, N and C (", features[0].dtype(), ", shape ",
                features[0].shape(), "), but ", name, " is ", features[i].dtype(), " with shape ",
                features[i].shape());
  }
  check_rois(op, rois, features[0], "features");
  check_params(op, output_size, sampling_ratio);
  const Tensor cl = checked_levels(op, levels, rois);
  const Tensor cr = rois.contiguous();
  const Tensor& f0 = features[0];
  Tensor out = Tensor::empty({rois.size(0), f0.size(1), output_size[0], output_size[1]}, f0.dtype(), f0.device());
  RoiAlignLaunch l = make_launch(cr, f0.size(0), f0.size(1), output_size, sampling_ratio, aligned);
  l.num_levels = int(features.size());
  for (int i = 0; i < l.num_levels; ++i) set_level(l, i, features[size_t(i)], spatial_scales[size_t(i)], false);
  l.levels = static_cast<const int64_t*>(cl.data_ptr());
  run_forward(op, l, f0, cr, cl, out);
  return out;
}

std::vector<Tensor> roi_align_multilevel_backward(const Tensor& grad_out, const Tensor& rois, const Tensor& levels,
                                                  const std::vector<Shape>& input_shapes,
                                                  const std::vector<double>& spatial_scales, int64_t sampling_ratio,
                                                  bool aligned, RoiAlignBackwardMode mode) {
  const char* op = "roi_align_multilevel_backward";
  check_levels(op, input_shapes.size(), spatial_scales);
  for (size_t i = 0; i < input_shapes.size(); ++i) {
    const std::string name = "input_shapes[" + std::to_string(i) + "]";
    check_map_shape(op, input_shapes[i], name.c_str());
    DRCNN_CHECK(input_shapes[i][0] == input_shapes[0][0] && input_shapes[i][1] == input_shapes[0][1], op,
                ": every level must have input_shapes[0]'s N and C (shape ", input_shapes[0], "), but ", name, " is ",
                input_shapes[i]);
  }
  check_grad_out(op, grad_out, rois, input_shapes[0][1]);
  check_rois(op, rois, grad_out, "grad_out");
  check_params(op, {grad_out.size(2), grad_out.size(3)}, sampling_ratio);
  const Tensor cl = checked_levels(op, levels, rois);
  const Tensor cr = rois.contiguous();
  std::vector<Tensor> grads;
  RoiAlignLaunch l = make_launch(cr, input_shapes[0][0], input_shapes[0][1], {grad_out.size(2), grad_out.size(3)},
                                 sampling_ratio, aligned);
  l.num_levels = int(input_shapes.size());
  for (int i = 0; i < l.num_levels; ++i) {
    grads.push_back(Tensor::zeros(input_shapes[size_t(i)], grad_out.dtype(), grad_out.device()));
    set_level(l, i, grads.back(), spatial_scales[size_t(i)], true);
  }
  l.levels = static_cast<const int64_t*>(cl.data_ptr());
  run_backward(op, l, grad_out, cr, cl, mode);
  return grads;
}
}  // namespace drcnn::ops
