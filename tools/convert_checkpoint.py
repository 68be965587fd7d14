#!/usr/bin/env python3
"""Converts a published checkpoint into a drcnn safetensors file and the config it implies.

    python3 tools/convert_checkpoint.py IN OUT.safetensors [--from mmdet|maskrcnn-benchmark|torchvision|detectron]

IN is one of (the format is detected from the file when --from is omitted):

  mmdet               an MMDetection v2 or v3 Faster / Dynamic R-CNN (ResNet-FPN, DCNv2 or not) .pth
                      ({"state_dict": ..., "meta": ...}); names are drcnn's already.
  maskrcnn-benchmark  the seed's (hkzhang95/DynamicRCNN: module.rpn_conv, module.fc6, ...) or
                      maskrcnn-benchmark's .pth (module.rpn.head.*, module.roi_heads.box.*), both
                      {"model": {"module.backbone.body.*", ...}}: renamed, the background class
                      moved from first to last, its unused box-regression rows dropped; the YAML
                      names the preset seed_dynamic_rcnn_r{50,101}_fpn_1x (the seed's box rules).
  torchvision         a torchvision ResNet state_dict (conv1.weight, layer1.0.*, fc.*): the trunk.
  detectron           Detectron's ImageNet R-50.pkl / R-101.pkl (caffe2 blob names, affine
                      channels instead of BatchNorm): the trunk, for ResNet's caffe style.

Writes OUT.safetensors (drcnn's names, float32) and OUT with the suffix .yaml beside it: the
config keys the weights imply (docs/config.md; give it to drcnn_detect --config). A detector's
file also records the class names (when IN has them) in the metadata entry "classes" (a JSON
list). Every key of IN that is not converted is listed with the reason, and so is every tensor
the model needs that IN does not hold; the conversion fails on the latter unless
--allow-missing. docs/checkpoints.md describes the mappings.
"""
import argparse
import json
import os
import pickle
import re
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_writer  # noqa: E402

FORMATS = ("mmdet", "maskrcnn-benchmark", "torchvision", "detectron")
RESNET_BLOCKS = {(3, 4, 6, 3): 50, (3, 4, 23, 3): 101, (2, 2, 2, 2): 18, (3, 4, 6, 3, "basic"): 34}


class ConversionError(Exception):
    pass


# ------------------------------------------------------------------------------------- reading
def load_input(path, allow_pickle):
    """Returns (top-level object, how it was read)."""
    if not os.path.exists(path):
        raise ConversionError(f"{path}: no such file")
    if path.endswith(".pkl"):
        # Detectron's .pkl files are Python 2 pickles of numpy arrays; pickle can run code, so only
        # files the user trusts should be read (the same is true of every .pth).
        with open(path, "rb") as f:
            return pickle.load(f, encoding="latin1"), "pickle"
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file
        return load_file(path), "safetensors"
    try:
        return torch.load(path, map_location="cpu", weights_only=True), "torch.load(weights_only=True)"
    except Exception as e:  # noqa: BLE001 (torch raises several kinds)
        if not allow_pickle:
            raise ConversionError(
                f"{path}: torch.load(weights_only=True) refused the file ({str(e).splitlines()[0]}): it holds "
                "Python objects besides tensors. If you trust the file, pass --unsafe-pickle to load it "
                "with the full pickle loader") from None
        return torch.load(path, map_location="cpu", weights_only=False), "torch.load(weights_only=False)"


def as_tensor(v):
    if isinstance(v, torch.Tensor):
        return v
    if isinstance(v, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(v))
    return None


def split_state(obj):
    """(state dict of tensors, meta dict, non-tensor top-level keys) of a loaded checkpoint."""
    meta = {}
    if isinstance(obj, dict) and "blobs" in obj and isinstance(obj["blobs"], dict):
        state = obj["blobs"]
        other = [k for k in obj if k != "blobs"]
    elif isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        state, meta = obj["state_dict"], obj.get("meta") or {}
        other = [k for k in obj if k not in ("state_dict", "meta")]
    elif isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        state = obj["model"]
        other = [k for k in obj if k != "model"]
    elif isinstance(obj, dict):
        state, other = obj, []
    else:
        raise ConversionError(f"the file holds a {type(obj).__name__}, not a dict of tensors")
    tensors, skipped = {}, {}
    for k, v in state.items():
        t = as_tensor(v)
        if t is None:
            skipped[k] = f"not a tensor ({type(v).__name__})"
        else:
            tensors[k] = t
    return tensors, meta, other, skipped


def detect_format(keys):
    ks = list(keys)
    if any(k.startswith(("module.backbone.body.", "backbone.body.")) for k in ks):
        return "maskrcnn-benchmark"
    if any(re.fullmatch(r"res\d_\d+_branch2a_w|conv1_w|res_conv1_bn_s", k) for k in ks):
        return "detectron"
    if any(k.startswith("backbone.layer1.") for k in ks):
        return "mmdet"
    if "conv1.weight" in ks and any(k.startswith("layer1.0.") for k in ks):
        return "torchvision"
    raise ConversionError("cannot tell the checkpoint's format from its names (first keys: "
                          f"{ks[:5]}); pass --from {'|'.join(FORMATS)}")


# ------------------------------------------------------------------------------------ ResNet
def resnet_layout(names, prefix):
    """(depth, blocks per stage, bottleneck) from the names of a torchvision-named trunk."""
    blocks = []
    for stage in range(1, 5):
        ids = {int(m.group(1)) for n in names for m in [re.match(rf"{re.escape(prefix)}layer{stage}\.(\d+)\.", n)] if m}
        blocks.append(len(ids))
    bottleneck = any(n.startswith(f"{prefix}layer1.0.conv3.") for n in names)
    key = tuple(blocks) if bottleneck or tuple(blocks) != (3, 4, 6, 3) else (3, 4, 6, 3, "basic")
    depth = RESNET_BLOCKS.get(key)
    if depth is None or (depth in (50, 101)) != bottleneck:
        raise ConversionError(f"the ResNet has {blocks} blocks per stage ({'bottleneck' if bottleneck else 'basic'}"
                              "), which is not ResNet-18/34/50/101")
    return depth


def dcn_layout(names, prefix):
    """(stage_with_dcn [4 bools], deform groups or None) from the DCNv2 offset convs among `names`
    (drcnn's spelling `{prefix}layerS.B.conv2.conv_offset.weight`, shape [27 g, C, 3, 3])."""
    stages, groups = [False] * 4, set()
    for n, shape in names.items():
        m = re.fullmatch(rf"{re.escape(prefix)}layer(\d)\.\d+\.conv2\.conv_offset\.weight", n)
        if not m:
            continue
        stages[int(m.group(1)) - 1] = True
        if shape[0] % 27 or len(shape) != 4 or tuple(shape[2:]) != (3, 3):
            raise ConversionError(f"{n}: shape {list(shape)}, expected [27 x deform groups, C, 3, 3] (a 3x3 DCNv2's "
                                  "18 offsets and 9 mask logits per deform group)")
        groups.add(shape[0] // 27)
    if len(groups) > 1:
        raise ConversionError(f"the DCNv2 convs have different deform groups {sorted(groups)}; drcnn's ResNet has one "
                              "dcn_deform_groups")
    return stages, (groups.pop() if groups else None)


def set_detectron_input(r):
    """The input the seed's / Detectron's MSRA weights were trained on: BGR 0..255 minus the
    mean, std 1 (INPUT.PIXEL_MEAN / PIXEL_STD / TO_BGR255)."""
    set_key(r.config, "data.normalize.mean", [102.9801, 115.9465, 122.7717])
    set_key(r.config, "data.normalize.std", [1.0, 1.0, 1.0])
    set_key(r.config, "data.normalize.to_rgb", False)


def set_dcn_config(r, stages, groups):
    if any(stages):
        set_key(r.config, "model.backbone.stage_with_dcn", stages)
        set_key(r.config, "model.backbone.dcn_deform_groups", int(groups))


def trunk_names(depth, dcn_stages=(False, False, False, False)):
    """The names drcnn's ResNet (norm frozen_bn) has, in torchvision's spelling; a block of a stage
    with DCN has conv2.conv_offset.{weight,bias} besides conv2.weight."""
    blocks = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}[depth]
    convs = 3 if depth >= 50 else 2
    bn = ("weight", "bias", "running_mean", "running_var")
    names = ["conv1.weight"] + [f"bn1.{p}" for p in bn]
    for s, nb in enumerate(blocks, start=1):
        for b in range(nb):
            p = f"layer{s}.{b}."
            for c in range(1, convs + 1):
                names += [f"{p}conv{c}.weight"] + [f"{p}bn{c}.{q}" for q in bn]
                if c == 2 and dcn_stages[s - 1]:
                    names += [f"{p}conv2.conv_offset.weight", f"{p}conv2.conv_offset.bias"]
            if b == 0 and (s > 1 or depth >= 50):
                names += [f"{p}downsample.0.weight"] + [f"{p}downsample.1.{q}" for q in bn]
    return names


# ------------------------------------------------------------------------------- conversions
class Result:
    def __init__(self):
        self.tensors = {}      # drcnn name -> tensor
        self.unused = {}       # input name -> why it is not converted
        self.notes = []        # lines for the user
        self.config = {}       # nested dict of config keys
        self.expected = []     # drcnn names the model needs
        self.classes = None
        self.source = ""


def set_key(cfg, dotted, value):
    parts = dotted.split(".")
    for p in parts[:-1]:
        cfg = cfg.setdefault(p, {})
    cfg[parts[-1]] = value


def detector_expected(depth, num_levels_in=4, num_outs=5, norm="bn", dcn_stages=(False, False, False, False)):
    bn_extra = ["num_batches_tracked"] if norm == "bn" else []
    names = []
    for n in trunk_names(depth, dcn_stages):
        names.append("backbone." + n)
        if n.endswith(".running_var") and bn_extra:
            names.append("backbone." + n.replace("running_var", "num_batches_tracked"))
    for i in range(num_levels_in):
        names += [f"neck.lateral_convs.{i}.conv.weight", f"neck.lateral_convs.{i}.conv.bias",
                  f"neck.fpn_convs.{i}.conv.weight", f"neck.fpn_convs.{i}.conv.bias"]
    for m in ("rpn_conv", "rpn_cls", "rpn_reg"):
        names += [f"rpn_head.{m}.weight", f"rpn_head.{m}.bias"]
    for m in ("shared_fcs.0", "shared_fcs.1", "fc_cls", "fc_reg"):
        names += [f"roi_head.bbox_head.{m}.weight", f"roi_head.bbox_head.{m}.bias"]
    return names


def take_expected(r, tensors, why_unused):
    """Keeps the tensors r.expected names, lists the others with `why_unused`; returns the
    expected names that are missing."""
    for k, v in tensors.items():
        if k in r.expected:
            r.tensors[k] = v
        else:
            r.unused[k] = why_unused
    return [k for k in r.expected if k not in r.tensors]


def detector_config(r, t, depth, preset, classes_meta):
    """The implied config of a ResNet-FPN Faster/Dynamic R-CNN with drcnn names in t."""
    num_classes = t["roi_head.bbox_head.fc_cls.weight"].shape[0] - 1
    fc_out = t["roi_head.bbox_head.shared_fcs.1.weight"].shape[0]
    fpn = t["neck.lateral_convs.0.conv.weight"].shape[0]
    roi_in = t["roi_head.bbox_head.shared_fcs.0.weight"].shape[1]
    feat = int(round((roi_in / fpn) ** 0.5))
    anchors = t["rpn_head.rpn_cls.weight"].shape[0]
    if t["roi_head.bbox_head.fc_reg.weight"].shape[0] != 4 * num_classes:
        raise ConversionError(f"fc_reg has {t['roi_head.bbox_head.fc_reg.weight'].shape[0]} outputs; drcnn's box head "
                              f"is class-specific without background: 4 x {num_classes} expected")
    if anchors != 3:
        raise ConversionError(f"the RPN has {anchors} anchors per location; the presets have 3 (ratios 0.5, 1, 2)")
    r.config["preset"] = preset
    set_key(r.config, "model.num_classes", int(num_classes))
    set_key(r.config, "model.backbone.depth", int(depth))
    set_key(r.config, "model.backbone.base_width", int(t["backbone.conv1.weight"].shape[0]))
    set_key(r.config, "model.neck.in_channels", [int(t[f"neck.lateral_convs.{i}.conv.weight"].shape[1]) for i in range(4)])
    set_key(r.config, "model.neck.out_channels", int(fpn))
    set_key(r.config, "model.rpn_head.in_channels", int(fpn))
    set_key(r.config, "model.rpn_head.feat_channels", int(t["rpn_head.rpn_conv.weight"].shape[0]))
    set_key(r.config, "model.roi_head.bbox_head.in_channels", int(fpn))
    set_key(r.config, "model.roi_head.bbox_head.roi_feat_size", int(feat))
    set_key(r.config, "model.roi_head.bbox_head.fc_out_channels", int(fc_out))
    if classes_meta is not None:
        if len(classes_meta) != num_classes:
            r.notes.append(f"the checkpoint names {len(classes_meta)} classes but its classifier has {num_classes}: "
                           "class names not recorded")
        else:
            r.classes = [str(c) for c in classes_meta]


def mmdet_info(meta):
    """(mmdet version string or '', class names or None, config text)."""
    version = str(meta.get("mmdet_version", "") or meta.get("mmdet", "") or "")
    if not version and ("mmengine_version" in meta or "dataset_meta" in meta):
        version = "3.x (mmengine " + str(meta.get("mmengine_version", "?")) + ")"
    classes = None
    dm = meta.get("dataset_meta") or {}
    if isinstance(dm, dict) and dm.get("classes"):
        classes = list(dm["classes"])
    elif meta.get("CLASSES"):
        classes = list(meta["CLASSES"])
    cfg = meta.get("config") or meta.get("cfg") or ""
    return version, classes, cfg if isinstance(cfg, str) else str(cfg)


def convert_mmdet(state, meta, r):
    version, classes, cfg_text = mmdet_info(meta)
    depth = resnet_layout(state.keys(), "backbone.")
    norm = "bn" if "backbone.bn1.num_batches_tracked" in state else "frozen_bn"
    dcn_stages, dcn_groups = dcn_layout({k: v.shape for k, v in state.items()}, "backbone.")
    r.expected = detector_expected(depth, norm=norm, dcn_stages=dcn_stages)
    missing = take_expected(r, state, "not part of drcnn's ResNet-FPN Faster/Dynamic R-CNN")
    if missing:
        return missing
    dynamic = "DynamicRoIHead" in cfg_text or not cfg_text
    preset = f"dynamic_rcnn_r{depth if depth == 101 else 50}_fpn_1x" if dynamic else "faster_rcnn_r50_fpn_1x"
    detector_config(r, r.tensors, depth, preset, classes)
    if not dynamic:
        set_key(r.config, "model.backbone.depth", int(depth))
    if not cfg_text:
        r.notes.append("the checkpoint carries no config text: assumed Dynamic R-CNN (RPN NMS 0.85); for a Faster "
                       "R-CNN set model.rpn_test.nms_iou: 0.7")
    if norm == "frozen_bn":
        set_key(r.config, "model.backbone.norm.kind", "frozen_bn")
    set_dcn_config(r, dcn_stages, dcn_groups)
    m = re.match(r"(\d+)\.(\d+|x)", version)
    major = int(m.group(1)) if m else None
    minor = int(m.group(2)) if m and m.group(2).isdigit() else None
    if major is not None and (major >= 3 or (major == 2 and minor is not None and minor >= 18)):
        # mmdet >= 2.18 filters proposals with w > min_bbox_size and h > min_bbox_size even at 0.
        for stage in ("rpn_train", "rpn_test"):
            set_key(r.config, f"model.{stage}.small_box_rule", "strict_always")
    r.source = f"MMDetection {version or '(version not recorded)'}"
    return []


def convert_torchvision(state, r):
    depth = resnet_layout(state.keys(), "")
    r.expected = trunk_names(depth)
    for k, v in state.items():
        if k in r.expected:
            r.tensors[k] = v
        elif k.startswith("fc."):
            r.unused[k] = "ImageNet classifier (not part of the trunk)"
        elif k.endswith("num_batches_tracked"):
            r.unused[k] = "BatchNorm counter (drcnn's frozen BN has none)"
        else:
            r.unused[k] = "not part of a torchvision ResNet trunk"
    set_key(r.config, "model.backbone.depth", depth)
    set_key(r.config, "model.backbone.style", "pytorch")
    set_key(r.config, "model.backbone.norm.kind", "frozen_bn")
    set_key(r.config, "model.backbone.norm.eps", 1e-5)
    r.source = "torchvision ResNet"
    return [k for k in r.expected if k not in r.tensors]


def detectron_name(k):
    """caffe2 blob name -> (torchvision name, affine part) or None."""
    m = re.fullmatch(r"res(\d)_(\d+)_branch(1|2a|2b|2c)_(w|bn_s|bn_b)", k)
    if m:
        stage, block, branch, kind = int(m.group(1)) - 1, m.group(2), m.group(3), m.group(4)
        if branch == "1":
            conv, bn = "downsample.0", "downsample.1"
        else:
            i = {"2a": 1, "2b": 2, "2c": 3}[branch]
            conv, bn = f"conv{i}", f"bn{i}"
        base = f"layer{stage}.{block}."
        return (base + conv + ".weight") if kind == "w" else (base + bn + (".weight" if kind == "bn_s" else ".bias"))
    return {"conv1_w": "conv1.weight", "res_conv1_bn_s": "bn1.weight", "res_conv1_bn_b": "bn1.bias"}.get(k)


def convert_detectron(state, r):
    renamed = {}
    for k, v in state.items():
        n = detectron_name(k)
        if n is None:
            r.unused[k] = ("ImageNet classifier" if k.startswith("pred_") else
                           "training state" if k.endswith("_momentum") or k in ("lr", "model_iter") else
                           "not a ResNet trunk blob")
        else:
            renamed[n] = v.float()
    depth = resnet_layout(renamed.keys(), "")
    r.expected = trunk_names(depth)
    for n, v in renamed.items():
        r.tensors[n] = v
    # AffineChannel y = x * s + b is a frozen BN with mean 0, var 1 and eps 0.
    for n in list(r.tensors):
        if n.endswith(".weight") and re.search(r"(^bn\d|bn\d|downsample\.1)\.weight$", n):
            base = n[: -len("weight")]
            c = r.tensors[n].shape[0]
            r.tensors[base + "running_mean"] = torch.zeros(c)
            r.tensors[base + "running_var"] = torch.ones(c)
    set_key(r.config, "model.backbone.depth", depth)
    set_key(r.config, "model.backbone.style", "caffe")
    set_key(r.config, "model.backbone.norm.kind", "frozen_bn")
    set_key(r.config, "model.backbone.norm.eps", 0.0)
    set_detectron_input(r)
    r.notes.append("Detectron's ImageNet models take BGR images minus the mean (102.98, 115.95, 122.77) with std 1 "
                   "(the seed's INPUT.PIXEL_MEAN/PIXEL_STD, TO_BGR255): data.normalize says so; give the file to "
                   "drcnn_train as init.backbone (--init-backbone)")
    r.source = "Detectron (caffe2) ResNet"
    return [k for k in r.expected if k not in r.tensors]


MRCNN_RULES = [
    (r"backbone\.body\.stem\.(conv1|bn1)\.(.*)", r"backbone.\1.\2"),
    # DFConv2d (DCNv2): offset conv and the deformable kernel (docs/checkpoints.md).
    (r"backbone\.body\.(layer\d\.\d+\.conv2)\.offset\.(weight|bias)", r"backbone.\1.conv_offset.\2"),
    (r"backbone\.body\.(layer\d\.\d+\.conv2)\.conv\.weight", r"backbone.\1.weight"),
    (r"backbone\.body\.(layer\d\..*)", r"backbone.\1"),
    (r"backbone\.fpn\.fpn_inner(\d)\.(weight|bias)", lambda m: f"neck.lateral_convs.{int(m.group(1)) - 1}.conv.{m.group(2)}"),
    (r"backbone\.fpn\.fpn_layer(\d)\.(weight|bias)", lambda m: f"neck.fpn_convs.{int(m.group(1)) - 1}.conv.{m.group(2)}"),
    (r"rpn\.head\.conv\.(weight|bias)", r"rpn_head.rpn_conv.\1"),
    (r"rpn\.head\.cls_logits\.(weight|bias)", r"rpn_head.rpn_cls.\1"),
    (r"rpn\.head\.bbox_pred\.(weight|bias)", r"rpn_head.rpn_reg.\1"),
    (r"roi_heads\.box\.feature_extractor\.fc6\.(weight|bias)", r"roi_head.bbox_head.shared_fcs.0.\1"),
    (r"roi_heads\.box\.feature_extractor\.fc7\.(weight|bias)", r"roi_head.bbox_head.shared_fcs.1.\1"),
    (r"roi_heads\.box\.predictor\.cls_score\.(weight|bias)", r"roi_head.bbox_head.fc_cls.\1"),
    (r"roi_heads\.box\.predictor\.bbox_pred\.(weight|bias)", r"roi_head.bbox_head.fc_reg.\1"),
    # The seed's own Network (models/.../network.py) holds its RPN and box head at the top level.
    (r"rpn_conv\.(weight|bias)", r"rpn_head.rpn_conv.\1"),
    (r"rpn_cls_logits\.(weight|bias)", r"rpn_head.rpn_cls.\1"),
    (r"rpn_bbox_pred\.(weight|bias)", r"rpn_head.rpn_reg.\1"),
    (r"fc6\.(weight|bias)", r"roi_head.bbox_head.shared_fcs.0.\1"),
    (r"fc7\.(weight|bias)", r"roi_head.bbox_head.shared_fcs.1.\1"),
    (r"cls_score\.(weight|bias)", r"roi_head.bbox_head.fc_cls.\1"),
    (r"bbox_pred\.(weight|bias)", r"roi_head.bbox_head.fc_reg.\1"),
]


def mrcnn_name(k):
    for pat, rep in MRCNN_RULES:
        m = re.fullmatch(pat, k)
        if m:
            return rep(m) if callable(rep) else m.expand(rep)
    return None


def convert_maskrcnn_benchmark(state, r):
    renamed = {}
    for k, v in state.items():
        kk = k[len("module."):] if k.startswith("module.") else k
        n = mrcnn_name(kk)
        if n is None:
            r.unused[k] = ("anchors the generator makes (not weights)" if "anchor_generator" in kk else
                           "not part of drcnn's ResNet-FPN Faster R-CNN")
            continue
        if n == "roi_head.bbox_head.fc_cls.weight" or n == "roi_head.bbox_head.fc_cls.bias":
            v = torch.cat([v[1:], v[:1]], 0)  # background first -> background last
        if n.startswith("roi_head.bbox_head.fc_reg."):
            if v.shape[0] % 4 or v.shape[0] < 8:
                raise ConversionError(f"{k}: {v.shape[0]} outputs, expected 4 x (classes + 1)")
            r.unused[k + "[0:4]"] = "the background class's box regression (never used)"
            v = v[4:]
        renamed[n] = v
    depth = resnet_layout([n[len("backbone."):] for n in renamed if n.startswith("backbone.")], "")
    dcn_stages, dcn_groups = dcn_layout({k: v.shape for k, v in renamed.items()}, "backbone.")
    if dcn_groups not in (None, 1):
        # DFConv2d.forward: offset = out[:, :18], mask = sigmoid(out[:, -9:]) whatever the groups.
        raise ConversionError(f"the DCNv2 offset convs have {27 * dcn_groups} channels ({dcn_groups} deform groups); "
                              "maskrcnn-benchmark's DFConv2d reads the first 18 as offsets and the last 9 as masks, "
                              "so only 1 deform group runs there and drcnn cannot reproduce another")
    r.expected = detector_expected(depth, norm="frozen_bn", dcn_stages=dcn_stages)
    missing = take_expected(r, renamed, "renamed, but drcnn has no such tensor")
    # Old maskrcnn-benchmark FrozenBatchNorm2d had no running statistics (scale and shift only).
    for k in list(missing):
        if k.endswith(".running_mean") or k.endswith(".running_var"):
            c = r.tensors[k.rsplit(".", 1)[0] + ".weight"].shape[0]
            r.tensors[k] = torch.zeros(c) if k.endswith("mean") else torch.ones(c)
            missing.remove(k)
            r.notes.append(f"{k}: not in the file (an old FrozenBatchNorm2d): set to {'0' if 'mean' in k else '1'}")
    if missing:
        return missing
    # The seed's preset: its box rules (model.box_convention: maskrcnn_benchmark), Detectron
    # anchors, RPN and post-processing numbers, RoIAlign aligned false / sampling ratio 2.
    detector_config(r, r.tensors, depth, f"seed_dynamic_rcnn_r{depth if depth == 101 else 50}_fpn_1x", None)
    set_key(r.config, "model.backbone.style", "caffe")  # STRIDE_IN_1X1 (MSRA weights)
    set_key(r.config, "model.backbone.norm.kind", "frozen_bn")
    set_key(r.config, "model.backbone.norm.eps", 0.0)
    set_dcn_config(r, dcn_stages, dcn_groups)
    set_detectron_input(r)
    r.notes.append("the preset seed_dynamic_rcnn_r*_fpn_1x runs maskrcnn-benchmark's box rules (+1 widths, "
                   "Detectron anchors, its level mapper, proposal and post-processing rules; docs/checkpoints.md); "
                   "give drcnn the input the seed's test does (resize 800 / 1333, BGR minus the mean: data.normalize)")
    r.source = "maskrcnn-benchmark"
    return []


# ------------------------------------------------------------------------------------ output
def yaml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(v)


def to_yaml(d, indent=0):
    lines = []
    for k, v in d.items():
        if isinstance(v, dict):
            lines.append(" " * indent + f"{k}:")
            lines += to_yaml(v, indent + 2)
        else:
            lines.append(" " * indent + f"{k}: {yaml_value(v)}")
    return lines


def convert(inp, out, fmt=None, allow_missing=False, unsafe_pickle=False, log=print):
    obj, how = load_input(inp, unsafe_pickle)
    state, meta, other, skipped = split_state(obj)
    if not state:
        raise ConversionError(f"{inp}: no tensors found")
    detected = detect_format(state.keys()) if fmt is None else fmt
    r = Result()
    r.unused.update(skipped)
    for k in other:
        r.unused[k] = "top-level entry (training state or metadata)"
    if detected == "mmdet":
        missing = convert_mmdet(state, meta, r)
    elif detected == "torchvision":
        missing = convert_torchvision(state, r)
    elif detected == "detectron":
        missing = convert_detectron(state, r)
    elif detected == "maskrcnn-benchmark":
        missing = convert_maskrcnn_benchmark(state, r)
    else:
        raise ConversionError(f"--from {detected}: expected one of {', '.join(FORMATS)}")
    log(f"{inp}: {detected} ({'given' if fmt else 'detected'}), read with {how}; {len(state)} tensors")
    if r.unused:
        log(f"not converted ({len(r.unused)}):")
        for k, why in r.unused.items():
            log(f"  {k}: {why}")
    if missing:
        log(f"missing ({len(missing)}): tensors drcnn's model needs that {inp} does not hold:")
        for k in missing:
            log(f"  {k}")
        if not allow_missing:
            raise ConversionError(f"{len(missing)} tensors missing (listed above); --allow-missing writes the rest")
    for k in list(r.tensors):
        t = r.tensors[k]
        r.tensors[k] = t.to(torch.int64) if k.endswith("num_batches_tracked") else t.to(torch.float32)
    meta_out = {"format": "pt", "converted_from": f"{r.source}: {os.path.basename(inp)}"}
    if r.classes is not None:
        meta_out["classes"] = json.dumps(r.classes)
    names = sorted(r.tensors)
    safetensors_writer.save(out, {k: r.tensors[k] for k in names}, meta_out)
    cfg_path = os.path.splitext(out)[0] + ".yaml"
    head = [f"# Written by tools/convert_checkpoint.py from {os.path.basename(inp)} ({r.source}).",
            "# The model keys these weights imply (docs/config.md); data, solver etc. keep their defaults."]
    head += [f"# note: {n}" for n in r.notes]
    with open(cfg_path, "w") as f:
        f.write("\n".join(head + to_yaml(r.config)) + "\n")
    for n in r.notes:
        log(f"note: {n}")
    log(f"wrote {out} ({len(names)} tensors) and {cfg_path}")
    return r


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input")
    ap.add_argument("output", help="OUT.safetensors (the config goes to OUT.yaml)")
    ap.add_argument("--from", dest="fmt", choices=FORMATS, help="the input's format (default: detected)")
    ap.add_argument("--allow-missing", action="store_true", help="write the file even when tensors are missing")
    ap.add_argument("--unsafe-pickle", action="store_true",
                    help="load a .pth that torch.load(weights_only=True) refuses (only for files you trust)")
    a = ap.parse_args(argv)
    if not a.output.endswith(".safetensors"):
        ap.error(f"OUT must end in .safetensors, got {a.output}")
    try:
        convert(a.input, a.output, a.fmt, a.allow_missing, a.unsafe_pickle)
    except ConversionError as e:
        print(f"convert_checkpoint: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
