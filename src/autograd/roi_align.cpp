// Variable versions of RoIAlign: the forward is ops::roi_align*; the GradFn runs the matching
// ops::roi_align*_backward on the upstream gradient and adds the result to each feature
// level that requires a gradient.
#include "drcnn/autograd/roi_align.h"

#include <string>

namespace drcnn {

Variable roi_align(const Variable& features, const Tensor& rois, ops::RoiOutputSize output_size,
                   double spatial_scale, int64_t sampling_ratio, bool aligned, ops::RoiAlignBackwardMode mode) {
  DRCNN_CHECK(features.defined(), "roi_align: features is an undefined Variable");
  Tensor out = ops::roi_align(features.data(), rois, output_size, spatial_scale, sampling_ratio, aligned);
  return Variable::make(
      std::move(out), {features},
      [rois, shape = features.shape(), spatial_scale, sampling_ratio, aligned, mode](std::vector<Variable>& in,
                                                                                     const Tensor& g) {
        in[0].add_grad(ops::roi_align_backward(g, rois, shape, spatial_scale, sampling_ratio, aligned, mode));
      },
      "roi_align");
}

Variable roi_align_multilevel(const std::vector<Variable>& features, const Tensor& rois, const Tensor& levels,
                              ops::RoiOutputSize output_size, const std::vector<double>& spatial_scales,
                              int64_t sampling_ratio, bool aligned, ops::RoiAlignBackwardMode mode) {
  std::vector<Tensor> maps;
  std::vector<Shape> shapes;
  for (size_t i = 0; i < features.size(); ++i) {
    DRCNN_CHECK(features[i].defined(), "roi_align_multilevel: features[", i, "] is an undefined Variable");
    maps.push_back(features[i].data());
    shapes.push_back(features[i].shape());
  }
  Tensor out =
      ops::roi_align_multilevel(maps, rois, levels, output_size, spatial_scales, sampling_ratio, aligned);
  return Variable::make(
      std::move(out), features,
      [rois, levels, shapes, spatial_scales, sampling_ratio, aligned, mode](std::vector<Variable>& in,
                                                                            const Tensor& g) {
        const std::vector<Tensor> grads = ops::roi_align_multilevel_backward(g, rois, levels, shapes, spatial_scales,
                                                                             sampling_ratio, aligned, mode);
        for (size_t i = 0; i < in.size(); ++i)
          if (in[i].requires_grad()) in[i].add_grad(grads[i]);
      },
      "roi_align_multilevel");
}
}  // namespace drcnn
