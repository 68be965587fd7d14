#!/usr/bin/env python3
"""Writes tests/data/checkpoints/: a small MMDetection-written Dynamic R-CNN converted by
tools/convert_checkpoint.py, and MMDetection's own detections on one input, for the ctest
tests/models/test_converted_checkpoint.cpp (which never needs Python).

    /work/venv-mmdet/bin/python tools/make_checkpoint_goldens.py [--out tests/data/checkpoints]

The model is MMDetection 3.x's dynamic-rcnn_r50_fpn_1x_coco config narrowed so the files stay
small: ResNet-18 with base_channels 4 (BatchNorm, norm_eval, frozen_stages 1), FPN 8 channels,
RPN 8, Shared2FC 8*49 -> 16 -> 16, 3 classes. Weights as tools/compare_mmdet.py makes them
(seeded random, BatchNorm statistics measured on the input, output layers scaled). Files:

  mmdet_tiny.safetensors, mmdet_tiny.yaml   the converter's output (weights and implied config)
  mmdet_tiny_io.safetensors                 "image" [1, 3, 64, 96] (normalised, padded; the image
                                            is 60 x 90), "size", "scale" (w, h), "orig", and
                                            MMDetection's detections "{boxes,scores,labels}_{f32,f64}"
                                            (float64: with float64 base anchors, as drcnn's)
"""
import argparse
import math
import os
import subprocess
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import compare_mmdet as cm  # noqa: E402
import safetensors_writer  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(HERE, "..", "tests", "data", "checkpoints"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.set_num_threads(1)
    cm.install_torchvision_ops()
    import logging
    from mmengine.config import Config
    from mmengine.logging import MMLogger
    from mmengine.runner.checkpoint import save_checkpoint
    import mmdet
    import mmengine
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    from mmdet.utils import register_all_modules
    MMLogger.get_instance("mmengine").setLevel(logging.ERROR)
    register_all_modules()
    cfg = Config.fromfile(os.path.join(os.path.dirname(mmdet.__file__), ".mim", "configs", "dynamic_rcnn",
                                       "dynamic-rcnn_r50_fpn_1x_coco.py"))
    m = cfg.model
    m.backbone.update(depth=18, base_channels=4, init_cfg=None)
    m.neck.update(in_channels=[4, 8, 16, 32], out_channels=8)
    m.rpn_head.update(in_channels=8, feat_channels=8)
    m.roi_head.bbox_roi_extractor.update(out_channels=8)
    m.roi_head.bbox_head.update(in_channels=8, fc_out_channels=16, num_classes=3)
    torch.manual_seed(0)
    model = MODELS.build(m)
    model.init_weights()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.weight.copy_(torch.rand(mod.weight.shape, generator=g) + 0.5)
                mod.bias.copy_(torch.randn(mod.bias.shape, generator=g) * 0.2)
            elif isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)) and mod.bias is not None:
                mod.bias.copy_(torch.randn(mod.bias.shape, generator=g) * 0.05)

    # A smooth synthetic image (no photograph in the repository), 60 x 90, already normalised.
    h, w = 60, 90
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64),
                            indexing="ij")
    img = torch.stack([torch.sin(0.11 * xx + 0.07 * yy), torch.cos(0.05 * xx - 0.13 * yy),
                       torch.sin(0.3 * torch.sqrt((xx - 40) ** 2 + (yy - 25) ** 2))]) * 1.5
    x = torch.zeros(1, 3, 64, 96, dtype=torch.float32)
    x[0, :, :h, :w] = img.float()
    sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(40, 60), scale_factor=(1.5, 1.5),
                                         pad_shape=(64, 96), batch_input_shape=(64, 96)))
    inputs = [(x, [sample])]
    cm.calibrate(model, inputs)
    ckpt = os.path.join(a.out, "mmdet_tiny.pth")
    save_checkpoint({"meta": {"cfg": cfg.pretty_text, "mmengine_version": mmengine.__version__,
                              "dataset_meta": {"classes": ("raccoon", "cat", "dog")}},
                     "state_dict": model.state_dict()}, ckpt)
    conv = os.path.join(a.out, "mmdet_tiny.safetensors")
    subprocess.run([sys.executable, os.path.join(HERE, "convert_checkpoint.py"), ckpt, conv], check=True)
    os.remove(ckpt)  # only the converted file is committed
    io = {"image": x, "size": torch.tensor([h, w]), "scale": torch.tensor([1.5, 1.5], dtype=torch.float64),
          "orig": torch.tensor([40, 60])}
    for tag, dt, f64_anchors in (("f32", torch.float32, False), ("f64", torch.float64, True)):
        cm.float64_base_anchors(model, f64_anchors)
        (b, s, lab), = cm.mmdet_predict(model, inputs, dt)
        io[f"boxes_{tag}"], io[f"scores_{tag}"], io[f"labels_{tag}"] = b.to(dt), s.to(dt), lab
        print(tag, len(s), "detections; scores", [round(float(v), 4) for v in s[:8]], "labels", lab[:8].tolist())
    safetensors_writer.save(os.path.join(a.out, "mmdet_tiny_io.safetensors"), io,
                            {"mmdet": mmdet.__version__, "torch": torch.__version__,
                             "written_by": "tools/make_checkpoint_goldens.py"})
    assert not math.isnan(float(io["scores_f64"].sum()))


if __name__ == "__main__":
    main()
