#!/usr/bin/env python3
"""drcnn against MMDetection 3.x on real photographs, from the same (MMDetection-written) checkpoint.

    /work/venv-mmdet/bin/python tools/compare_mmdet.py --images ../shared/data/raccoon/images \
        --build build/ci --work /tmp/cmp [--count 8] [--seed 0]

Needs a Python with torch, torchvision, mmengine, mmdet 3.x and mmcv-lite (no compiled ops: the
two MMDetection needs for this model, NMS and RoIAlign, are given to mmcv by torchvision's here,
see install_torchvision_ops). Steps:

 1. build MMDetection's own Dynamic R-CNN r50 from its config (configs/dynamic_rcnn in the mmdet
    package) with seeded random weights: mmdet's init_weights, then every BatchNorm's affine
    parameters and every bias drawn at random (so a wrong name cannot hide behind a constant),
    the BatchNorm statistics measured on the photographs, and the two classifiers and the two
    regressors scaled so the detector has confident, spread-out outputs (random weights with
    mmdet's 0.01 init give every class a score near 1/81 and no detection above 0.05);
 2. save it with mmengine's save_checkpoint (what MMDetection's runner writes), convert it with
    tools/convert_checkpoint.py (format detected);
 3. MMDetection's test pipeline (LoadImageFromFile, Resize 1333x800, DetDataPreprocessor) makes
    each photograph's input tensor; MMDetection's model.predict(rescale=True) gives its
    detections, in float32 and in float64 (model.double());
 4. build/examples/drcnn_compare_detector runs drcnn on the same tensors with the converted
    weights and config, in float32 and float64; the detections are compared in order;
 5. build/examples/drcnn_detect runs drcnn's own pipeline (decode, resize, normalise) on the JPEG
    files, compared with MMDetection's float32 detections (end to end).

Prints the max differences (boxes in original-image pixels, scores, labels) and writes them as
JSON to WORK/result.json. docs/checkpoints.md holds a run's output.
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import types

import torch
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))


def install_torchvision_ops():
    """mmcv-lite ships mmcv.ops' Python code but not its compiled mmcv._ext. Provide the two
    functions a Faster/Dynamic R-CNN calls, with torchvision's kernels (same definitions: NMS
    suppresses IoU > thr; RoIAlign 'avg' with the aligned flag), and make every other op fail
    loudly if it is ever called."""
    ext = types.ModuleType("mmcv._ext")

    def nms(boxes, scores, iou_threshold, offset):
        if offset != 0:
            raise NotImplementedError("mmcv nms with offset 1 (legacy boxes) is not provided")
        return torchvision.ops.nms(boxes, scores, float(iou_threshold))

    def roi_align_forward(inp, rois, output, argmax_y, argmax_x, aligned_height, aligned_width, spatial_scale,
                          sampling_ratio, pool_mode, aligned):
        if pool_mode != 1:
            raise NotImplementedError("only RoIAlign pool_mode 'avg' is provided")
        output.copy_(torchvision.ops.roi_align(inp, rois, (aligned_height, aligned_width), spatial_scale,
                                               sampling_ratio, aligned))

    def missing(name):
        if name.startswith("__"):
            raise AttributeError(name)

        def fail(*_a, **_k):
            raise NotImplementedError(f"mmcv._ext.{name}: compiled op not available (mmcv-lite)")
        return fail

    ext.nms = nms
    ext.roi_align_forward = roi_align_forward
    ext.__getattr__ = missing
    sys.modules["mmcv._ext"] = ext


def build_mmdet_model(seed):
    import logging
    from mmengine.config import Config
    from mmengine.logging import MMLogger
    import mmdet
    MMLogger.get_instance("mmengine").setLevel(logging.ERROR)
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    cfg_path = os.path.join(os.path.dirname(mmdet.__file__), ".mim", "configs", "dynamic_rcnn",
                            "dynamic-rcnn_r50_fpn_1x_coco.py")
    cfg = Config.fromfile(cfg_path)
    cfg.model.backbone.init_cfg = None  # no ImageNet download: random weights
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.2)
            elif isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and m.bias is not None:
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.05)
    return cfg, cfg_path, model


def make_inputs(cfg, model, files):
    """MMDetection's test pipeline and data preprocessor for each file: (batch, data_samples)."""
    from mmengine.dataset import Compose
    pipeline = [t for t in cfg.test_dataloader.dataset.pipeline if t["type"] != "LoadAnnotations"]
    pipe = Compose(pipeline)
    out = []
    for i, f in enumerate(files):
        data = pipe(dict(img_path=f, img_id=i))
        data = model.data_preprocessor({"inputs": [data["inputs"]], "data_samples": [data["data_samples"]]}, False)
        out.append((data["inputs"], data["data_samples"]))
    return out


def calibrate(model, inputs):
    """BatchNorm statistics measured on the photographs (cumulative average), then the RPN's and
    the box head's output layers scaled so their outputs have a set spread (measured on the
    first two photographs)."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    model.eval()
    with torch.no_grad():
        # In training mode a BatchNorm normalises with the statistics of its own input, so one
        # pass records, in every layer, the statistics that layer sees (momentum None: the
        # average over the photographs).
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None
            bn.train()
        for x, _ in inputs:
            model.backbone(x)
        for bn in bns:
            bn.eval()
        grabbed = {}

        def grab(key):
            def hook(_m, _i, o):
                grabbed.setdefault(key, []).append(o.detach().flatten())
            return hook

        def rescale(layer, key, target):
            o = torch.cat(grabbed.pop(key))
            s = float(o.std())
            layer.weight.mul_(target / s)
            layer.bias.mul_(target / s)

        head = model.rpn_head
        hs = [head.rpn_cls.register_forward_hook(grab("rpn_cls")), head.rpn_reg.register_forward_hook(grab("rpn_reg"))]
        for x, _ in inputs:
            head(model.extract_feat(x))
        for h in hs:
            h.remove()
        rescale(head.rpn_cls, "rpn_cls", 2.0)
        rescale(head.rpn_reg, "rpn_reg", 0.3)
        bh = model.roi_head.bbox_head
        hs = [bh.fc_cls.register_forward_hook(grab("fc_cls")), bh.fc_reg.register_forward_hook(grab("fc_reg"))]
        for x, s in inputs:
            model.predict(x, s, rescale=True)
        for h in hs:
            h.remove()
        rescale(bh.fc_cls, "fc_cls", 2.5)
        rescale(bh.fc_reg, "fc_reg", 0.5)


def float64_base_anchors(model, on):
    """MMDetection computes its base anchors in float32 (AnchorGenerator.gen_base_anchors at
    construction) and widens them for a float64 model; on=True recomputes them in float64, the
    way drcnn's float64 anchors are computed (docs/conventions.md)."""
    pg = model.rpn_head.prior_generator
    if not hasattr(pg, "_f32_base_anchors"):
        pg._f32_base_anchors = pg.base_anchors
    if not on:
        pg.base_anchors = pg._f32_base_anchors
        return
    pg.base_anchors = [pg.gen_single_level_base_anchors(bs, pg.scales.double(), pg.ratios.double(),
                                                        center=pg.centers[i] if pg.centers is not None else None)
                       for i, bs in enumerate(pg.base_sizes)]


def mmdet_predict(model, inputs, dtype):
    model = model.to(dtype)
    res = []
    with torch.no_grad():
        for x, s in inputs:
            p = model.predict(x.to(dtype), s, rescale=True)[0].pred_instances
            res.append((p.bboxes.double(), p.scores.double(), p.labels.long()))
    return res


def save_inputs(path, inputs):
    sys.path.insert(0, HERE)
    import safetensors_writer
    t = {}
    for i, (x, s) in enumerate(inputs):
        m = s[0].metainfo
        h, w = m["img_shape"]
        t[f"image_{i}"] = x.float()
        t[f"size_{i}"] = torch.tensor([h, w], dtype=torch.int64)
        t[f"scale_{i}"] = torch.tensor(m["scale_factor"], dtype=torch.float64)
        t[f"orig_{i}"] = torch.tensor(m["ori_shape"], dtype=torch.int64)
    safetensors_writer.save(path, t, {"count": str(len(inputs))})


def save_dets(path, dets):
    sys.path.insert(0, HERE)
    import safetensors_writer
    t = {}
    for i, (b, s, lab) in enumerate(dets):
        t[f"boxes_{i}"], t[f"scores_{i}"], t[f"labels_{i}"] = b, s, lab
    safetensors_writer.save(path, t, {"count": str(len(dets))})


def load_safetensors(path):
    from safetensors.torch import load_file
    return load_file(path)


def box_iou(a, b):
    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(2)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])
    return inter / (area(a)[:, None] + area(b)[None, :] - inter).clamp(min=1e-12)


def compare(ref, ours):
    """Per image: whether the two lists are equal in order (same length and labels), and a
    matching of MMDetection's detections to drcnn's (same label, highest IoU, greedily in
    MMDetection's score order); max differences over the matched pairs, and the unmatched ones."""
    out = {"images": len(ref), "detections_mmdet": 0, "detections_drcnn": 0, "same_order": 0, "matched": 0,
           "max_box": 0.0, "max_score": 0.0, "max_iou_gap": 0.0, "unmatched_mmdet": [], "unmatched_drcnn": []}
    for i, ((rb, rs, rl), (ob, os_, ol)) in enumerate(zip(ref, ours)):
        out["detections_mmdet"] += len(rs)
        out["detections_drcnn"] += len(os_)
        out["same_order"] += int(len(rs) == len(os_) and bool((rl == ol).all()) and
                                 (len(rs) == 0 or float((rb - ob).abs().max()) < 1.0))
        iou = box_iou(rb, ob) if len(rs) and len(os_) else torch.zeros(len(rs), len(os_), dtype=torch.float64)
        iou[rl[:, None] != ol[None, :]] = -1
        taken = torch.zeros(len(os_), dtype=torch.bool)
        for k in range(len(rs)):
            cand = iou[k].clone()
            cand[taken] = -1
            if len(os_) == 0 or float(cand.max()) < 0.5:
                out["unmatched_mmdet"].append((i, k, round(float(rs[k]), 6)))
                continue
            j = int(cand.argmax())
            taken[j] = True
            out["matched"] += 1
            out["max_box"] = max(out["max_box"], float((rb[k] - ob[j]).abs().max()))
            out["max_score"] = max(out["max_score"], float((rs[k] - os_[j]).abs()))
            out["max_iou_gap"] = max(out["max_iou_gap"], 1.0 - float(cand[j]))
        out["unmatched_drcnn"] += [(i, j, round(float(os_[j]), 6)) for j in range(len(os_)) if not taken[j]]
    return out


def drcnn_dets(path, count):
    t = load_safetensors(path)
    return [(t[f"boxes_{i}"].double(), t[f"scores_{i}"].double(), t[f"labels_{i}"].long()) for i in range(count)]


def detect_json_dets(out_dir, files):
    dets = json.load(open(os.path.join(out_dir, "detections.json")))
    res = []
    for i in range(len(files)):
        d = [e for e in dets if e["image_id"] == i + 1]
        b = torch.tensor([[e["bbox"][0], e["bbox"][1], e["bbox"][0] + e["bbox"][2], e["bbox"][1] + e["bbox"][3]]
                          for e in d], dtype=torch.float64).reshape(-1, 4)
        s = torch.tensor([e["score"] for e in d], dtype=torch.float64)
        lab = torch.tensor([e["category_id"] - 1 for e in d], dtype=torch.int64)
        res.append((b, s, lab))
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", required=True)
    ap.add_argument("--build", default="build/ci")
    ap.add_argument("--work", required=True)
    ap.add_argument("--count", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    torch.set_num_threads(a.threads)
    install_torchvision_ops()
    import mmdet
    import mmengine
    from mmengine.runner.checkpoint import save_checkpoint
    files = sorted(glob.glob(os.path.join(a.images, "*.jpg")), key=lambda p: int(''.join(filter(str.isdigit, os.path.basename(p))) or 0))[: a.count]
    cfg, cfg_path, model = build_mmdet_model(a.seed)
    inputs = make_inputs(cfg, model, files)
    calibrate(model, inputs[:2])
    ckpt = os.path.join(a.work, "dynamic_rcnn_r50_random.pth")
    classes = [f"class_{i}" for i in range(80)]
    save_checkpoint({"meta": {"cfg": cfg.pretty_text, "mmengine_version": mmengine.__version__,
                              "dataset_meta": {"classes": tuple(classes)}},
                     "state_dict": model.state_dict()}, ckpt)
    converted = os.path.join(a.work, "dynamic_rcnn_r50_random.safetensors")
    subprocess.run([sys.executable, os.path.join(HERE, "convert_checkpoint.py"), ckpt, converted], check=True)
    config = converted[: -len(".safetensors")] + ".yaml"
    in_path = os.path.join(a.work, "inputs.safetensors")
    save_inputs(in_path, inputs)

    result = {"mmdet": mmdet.__version__, "mmengine": mmengine.__version__, "torch": torch.__version__,
              "torchvision": torchvision.__version__, "images": [os.path.basename(f) for f in files]}
    ref = {}
    for name, dt in (("float32", torch.float32), ("float64", torch.float64), ("float64_f64_anchors", torch.float64)):
        float64_base_anchors(model, name == "float64_f64_anchors")
        ref[name] = mmdet_predict(model, inputs, dt)
        save_dets(os.path.join(a.work, f"mmdet_{name}.safetensors"), ref[name])
        out = os.path.join(a.work, f"drcnn_{name}.safetensors")
        if name == "float64_f64_anchors":  # drcnn's float64 run is the same; only MMDetection's changes
            out = os.path.join(a.work, "drcnn_float64.safetensors")
            result[name] = compare(ref[name], drcnn_dets(out, len(files)))
            print(name, json.dumps(result[name]))
            continue
        exe = os.path.join(a.build, "examples", "drcnn_compare_detector")
        subprocess.run([exe, "--config", config, "--checkpoint", converted, "--inputs", in_path, "--out", out,
                        "--dtype", "f32" if dt == torch.float32 else "f64", "--threads", str(a.threads)], check=True)
        result[name] = compare(ref[name], drcnn_dets(out, len(files)))
        print(name, json.dumps(result[name]))
    # Float32 rounding, measured on MMDetection itself: its float32 detections against its own
    # float64 ones (float64 base anchors), and drcnn's float32 against the same.
    result["mmdet_float32_vs_mmdet_float64"] = compare(ref["float64_f64_anchors"], ref["float32"])
    result["drcnn_float32_vs_mmdet_float64"] = compare(
        ref["float64_f64_anchors"], drcnn_dets(os.path.join(a.work, "drcnn_float32.safetensors"), len(files)))
    for k in ("mmdet_float32_vs_mmdet_float64", "drcnn_float32_vs_mmdet_float64"):
        print(k, json.dumps(result[k]))
    float64_base_anchors(model, False)
    model.float()
    # End to end: drcnn's own decode/resize/normalise on the JPEG files (float32).
    det_dir = os.path.join(a.work, "detect")
    subprocess.run([os.path.join(a.build, "examples", "drcnn_detect"), "--checkpoint", converted, "--config", config,
                    "--out", det_dir, "--score", "0", "--threads", str(a.threads)] + files, check=True,
                   stdout=subprocess.DEVNULL)
    ours = detect_json_dets(det_dir, files)
    result["end_to_end_float32"] = compare(ref["float32"], ours)
    print("end_to_end_float32", json.dumps(result["end_to_end_float32"]))
    json.dump(result, open(os.path.join(a.work, "result.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
