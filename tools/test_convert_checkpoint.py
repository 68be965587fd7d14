#!/usr/bin/env python3
"""Tests of tools/convert_checkpoint.py; they need torch and torchvision only (not mmdet).

    python3 -m unittest tools/test_convert_checkpoint.py      (or: python3 tools/test_convert_checkpoint.py)

The detector cases start from tests/data/checkpoints/mmdet_tiny.safetensors (an MMDetection-written
model already in drcnn's names, which are MMDetection's): it is wrapped as an MMDetection .pth,
and re-spelled with maskrcnn-benchmark's names and class order (background first, a regression
row block for it), and both must convert back to the same tensors. The backbone cases build a
torchvision ResNet and spell it as Detectron's caffe2 blobs.
"""
import json
import os
import pickle
import re
import sys
import tempfile
import unittest

import torch
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import check_detectron_resnet  # noqa: E402
import convert_checkpoint as cc  # noqa: E402

GOLDEN = os.path.join(HERE, "..", "tests", "data", "checkpoints", "mmdet_tiny.safetensors")


def read_safetensors(path):
    """A reader written apart from the converter's writer (header + raw data)."""
    import struct
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    dt = {"F32": torch.float32, "I64": torch.int64, "F64": torch.float64}
    out = {}
    for k, e in header.items():
        b, end = e["data_offsets"]
        out[k] = torch.frombuffer(bytearray(data[b:end]), dtype=dt[e["dtype"]]).reshape(e["shape"]) \
            if end > b else torch.zeros(e["shape"], dtype=dt[e["dtype"]])
    return out, meta


def to_maskrcnn_benchmark(t):
    """drcnn/MMDetection names -> the seed's (module.*, background class first)."""
    out = {}
    for k, v in t.items():
        if k.endswith("num_batches_tracked"):
            continue
        n = k
        n = re.sub(r"^backbone\.(conv1|bn1)\.", r"backbone.body.stem.\1.", n)
        if ".conv2." in n and k.replace(".weight", ".conv_offset.weight") in t:  # DFConv2d's kernel
            n = n.replace(".conv2.weight", ".conv2.conv.weight")
        n = n.replace(".conv2.conv_offset.", ".conv2.offset.")
        n = re.sub(r"^backbone\.(layer\d)", r"backbone.body.\1", n)
        n = re.sub(r"^neck\.lateral_convs\.(\d)\.conv\.", lambda m: f"backbone.fpn.fpn_inner{int(m.group(1)) + 1}.", n)
        n = re.sub(r"^neck\.fpn_convs\.(\d)\.conv\.", lambda m: f"backbone.fpn.fpn_layer{int(m.group(1)) + 1}.", n)
        n = n.replace("rpn_head.rpn_conv.", "rpn.head.conv.").replace("rpn_head.rpn_cls.", "rpn.head.cls_logits.")
        n = n.replace("rpn_head.rpn_reg.", "rpn.head.bbox_pred.")
        n = n.replace("roi_head.bbox_head.shared_fcs.0.", "roi_heads.box.feature_extractor.fc6.")
        n = n.replace("roi_head.bbox_head.shared_fcs.1.", "roi_heads.box.feature_extractor.fc7.")
        if "fc_cls" in n:
            n = n.replace("roi_head.bbox_head.fc_cls.", "roi_heads.box.predictor.cls_score.")
            v = torch.cat([v[-1:], v[:-1]], 0)
        if "fc_reg" in n:
            n = n.replace("roi_head.bbox_head.fc_reg.", "roi_heads.box.predictor.bbox_pred.")
            v = torch.cat([torch.full_like(v[:4], 7.0), v], 0)  # the background's rows, unused
        out["module." + n] = v
    out["module.rpn.anchor_generator.cell_anchors.0"] = torch.zeros(3, 4)
    return out


def to_seed_network(t):
    """drcnn names -> the seed's own Network (hkzhang95/DynamicRCNN models/.../network.py):
    backbone.body / backbone.fpn as maskrcnn-benchmark, the RPN and box head at the top level."""
    top = {"rpn.head.conv.": "rpn_conv.", "rpn.head.cls_logits.": "rpn_cls_logits.",
           "rpn.head.bbox_pred.": "rpn_bbox_pred.", "roi_heads.box.feature_extractor.fc6.": "fc6.",
           "roi_heads.box.feature_extractor.fc7.": "fc7.", "roi_heads.box.predictor.cls_score.": "cls_score.",
           "roi_heads.box.predictor.bbox_pred.": "bbox_pred."}
    out = {}
    for k, v in to_maskrcnn_benchmark(t).items():
        n = k[len("module."):]
        for a, b in top.items():
            if n.startswith(a):
                n = b + n[len(a):]
        n = n.replace("rpn.anchor_generator.", "anchor_generator.")
        out["module." + n] = v
    return out


class Opaque:
    """A Python object torch.load(weights_only=True) refuses."""


class ConvertTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.golden, self.golden_meta = read_safetensors(GOLDEN)

    def tearDown(self):
        self.dir.cleanup()

    def path(self, name):
        return os.path.join(self.dir.name, name)

    def run_convert(self, inp, fmt=None, **kw):
        lines = []
        out = self.path("out.safetensors")
        r = cc.convert(inp, out, fmt, log=lines.append, **kw)
        t, meta = read_safetensors(out)
        with open(self.path("out.yaml")) as f:
            cfg = f.read()
        return r, t, meta, cfg, "\n".join(lines)

    def test_mmdet_round_trip(self):
        pth = self.path("m.pth")
        state = dict(self.golden)
        state["roi_head.bbox_head.extra.weight"] = torch.zeros(2)
        torch.save({"meta": {"mmdet_version": "2.10.0", "CLASSES": ("a", "b", "c"),
                             "config": "roi_head=dict(type='DynamicRoIHead')"}, "state_dict": state}, pth)
        r, t, meta, cfg, log = self.run_convert(pth)
        self.assertIn("mmdet (detected)", log)
        self.assertEqual(set(t), set(self.golden))
        for k in t:
            self.assertTrue(torch.equal(t[k], self.golden[k]), k)
        self.assertIn("roi_head.bbox_head.extra.weight: not part of", log)  # listed, not silently dropped
        self.assertEqual(json.loads(meta["classes"]), ["a", "b", "c"])
        self.assertIn('preset: "dynamic_rcnn_r50_fpn_1x"', cfg)
        self.assertIn("num_classes: 3", cfg)
        self.assertNotIn("strict_always", cfg)  # mmdet 2.10 < 2.18: the old small-box rule

    def test_mmdet_missing_key_fails_and_lists_it(self):
        pth = self.path("m.pth")
        state = {k: v for k, v in self.golden.items() if k != "neck.fpn_convs.2.conv.bias"}
        torch.save({"meta": {}, "state_dict": state}, pth)
        with self.assertRaises(cc.ConversionError) as e:
            self.run_convert(pth)
        self.assertIn("1 tensors missing", str(e.exception))
        r, t, _, _, log = self.run_convert(pth, allow_missing=True)
        self.assertIn("  neck.fpn_convs.2.conv.bias", log)
        self.assertNotIn("neck.fpn_convs.2.conv.bias", t)

    def test_faster_rcnn_config_text(self):
        pth = self.path("f.pth")
        torch.save({"meta": {"mmdet_version": "2.25.0", "config": "roi_head=dict(type='StandardRoIHead')"},
                    "state_dict": dict(self.golden)}, pth)
        _, _, _, cfg, _ = self.run_convert(pth)
        self.assertIn('preset: "faster_rcnn_r50_fpn_1x"', cfg)
        self.assertIn('small_box_rule: "strict_always"', cfg)

    def convert_seed_state(self, state):
        """Saves `state` as a seed .pth, converts it, checks it gives the golden's tensors and the
        seed's preset; returns the log and the YAML."""
        pth = self.path("seed.pth")
        torch.save({"model": state, "iteration": 90000}, pth)
        r, t, meta, cfg, log = self.run_convert(pth)
        self.assertIn("maskrcnn-benchmark (detected)", log)
        want = {k: v for k, v in self.golden.items() if not k.endswith("num_batches_tracked")}
        self.assertEqual(set(t), set(want))
        for k in want:
            self.assertTrue(torch.equal(t[k], want[k]), k)
        self.assertIn('preset: "seed_dynamic_rcnn_r50_fpn_1x"', cfg)  # the seed's box rules
        return log, cfg

    def test_maskrcnn_benchmark_names_and_class_order(self):
        log, cfg = self.convert_seed_state(to_maskrcnn_benchmark(self.golden))
        self.assertIn("anchor_generator.cell_anchors.0: anchors the generator makes", log)
        self.assertIn("bbox_pred.weight[0:4]: the background class's box regression", log)
        self.assertIn("iteration: top-level entry", log)
        self.assertIn("norm:\n      kind: \"frozen_bn\"\n      eps: 0.0", cfg)
        self.assertIn("normalize:\n    mean: [102.9801, 115.9465, 122.7717]\n    std: [1.0, 1.0, 1.0]\n"
                      "    to_rgb: false", cfg)

    def test_seed_network_names(self):
        # The seed's own checkpoints (its Network, saved through DistributedDataParallel).
        state = to_seed_network(self.golden)
        self.assertIn("module.rpn_cls_logits.weight", state)
        self.assertIn("module.fc6.weight", state)
        log, _ = self.convert_seed_state(state)
        self.assertIn("module.bbox_pred.weight[0:4]: the background class's box regression", log)
        self.assertIn("module.anchor_generator.cell_anchors.0: anchors the generator makes", log)

    def test_torchvision_resnet(self):
        m = torchvision.models.resnet18()
        pth = self.path("r18.pth")
        torch.save(m.state_dict(), pth)
        r, t, _, cfg, log = self.run_convert(pth)
        self.assertIn("torchvision (detected)", log)
        self.assertIn("fc.weight: ImageNet classifier", log)
        self.assertIn("bn1.num_batches_tracked: BatchNorm counter", log)
        self.assertEqual(set(t), set(cc.trunk_names(18)))
        for k in t:
            self.assertTrue(torch.equal(t[k], m.state_dict()[k]), k)
        self.assertIn("depth: 18", cfg)

    def test_detectron_pkl(self):
        m = torchvision.models.resnet50()
        sd = m.state_dict()
        blobs = check_detectron_resnet.to_detectron_blobs(sd, 50)
        pkl = self.path("R-50.pkl")
        with open(pkl, "wb") as f:
            pickle.dump({"blobs": blobs}, f, protocol=2)
        r, t, _, cfg, log = self.run_convert(pkl)
        self.assertIn("detectron (detected)", log)
        self.assertIn("pred_w: ImageNet classifier", log)
        self.assertIn("conv1_w_momentum: training state", log)
        self.assertEqual(set(t), set(cc.trunk_names(50)))
        for k in t:
            if k.endswith("running_mean"):
                self.assertTrue(torch.equal(t[k], torch.zeros_like(t[k])), k)
            elif k.endswith("running_var"):
                self.assertTrue(torch.equal(t[k], torch.ones_like(t[k])), k)
            else:
                self.assertTrue(torch.equal(t[k], sd[k]), k)
        self.assertIn('style: "caffe"', cfg)
        self.assertIn("eps: 0.0", cfg)
        self.assertIn("to_rgb: false", cfg)

    def dcn_detector(self, groups=1):
        """An MMDetection-named ResNet-50 detector with DCNv2 in layer2..layer4 (trunk tensors small
        placeholders: the converter renames and checks names, the offset conv's shape): the
        golden's neck and heads, distinct values per tensor."""
        stages = (False, True, True, True)
        state = {k: v for k, v in self.golden.items() if not k.startswith("backbone.")}
        for i, n in enumerate(cc.trunk_names(50, stages)):
            shape = {"conv1.weight": (64, 3, 7, 7)}.get(n, (2,))
            if n.endswith("conv_offset.weight"):
                shape = (27 * groups, 4, 3, 3)
            state["backbone." + n] = torch.full(shape, float(i))
        return state

    def test_mmdet_dcn(self):
        pth = self.path("dcn.pth")
        state = self.dcn_detector()
        torch.save({"meta": {"mmdet_version": "3.3.0", "config": "roi_head=dict(type='DynamicRoIHead')"},
                    "state_dict": state}, pth)
        r, t, _, cfg, log = self.run_convert(pth)
        self.assertEqual(set(t), set(state))
        for k in t:
            self.assertTrue(torch.equal(t[k], state[k].to(t[k].dtype)), k)
        self.assertIn("backbone.layer4.2.conv2.conv_offset.bias", t)
        self.assertNotIn("backbone.layer1.0.conv2.conv_offset.weight", t)
        self.assertIn('stage_with_dcn: [false, true, true, true]\n    dcn_deform_groups: 1', cfg)
        # A DCN stage whose block lacks its offset conv is a missing tensor, not a plain conv.
        del state["backbone.layer3.5.conv2.conv_offset.bias"]
        torch.save({"meta": {}, "state_dict": state}, pth)
        with self.assertRaises(cc.ConversionError) as e:
            self.run_convert(pth)
        self.assertIn("1 tensors missing", str(e.exception))

    def test_mmdet_dcn_deform_groups_and_bad_shape(self):
        pth = self.path("dcn.pth")
        torch.save({"meta": {}, "state_dict": self.dcn_detector(groups=4)}, pth)
        _, _, _, cfg, _ = self.run_convert(pth)
        self.assertIn("dcn_deform_groups: 4", cfg)
        state = self.dcn_detector()
        state["backbone.layer2.1.conv2.conv_offset.weight"] = torch.zeros(18, 4, 3, 3)  # DCNv1
        torch.save({"meta": {}, "state_dict": state}, pth)
        with self.assertRaises(cc.ConversionError) as e:
            self.run_convert(pth)
        self.assertIn("conv_offset.weight: shape [18, 4, 3, 3], expected [27 x deform groups", str(e.exception))

    def test_maskrcnn_benchmark_dcn(self):
        state = self.dcn_detector()
        seed = to_maskrcnn_benchmark(state)
        self.assertIn("module.backbone.body.layer2.0.conv2.offset.weight", seed)  # the seed's DFConv2d names
        self.assertIn("module.backbone.body.layer2.0.conv2.conv.weight", seed)
        self.assertNotIn("module.backbone.body.layer1.0.conv2.conv.weight", seed)
        pth = self.path("seed_dcn.pth")
        torch.save({"model": seed}, pth)
        r, t, _, cfg, log = self.run_convert(pth)
        want = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
        self.assertEqual(set(t), set(want))
        for k in want:
            self.assertTrue(torch.equal(t[k], want[k]), k)
        self.assertIn("stage_with_dcn: [false, true, true, true]", cfg)
        torch.save({"model": to_maskrcnn_benchmark(self.dcn_detector(groups=2))}, pth)
        with self.assertRaises(cc.ConversionError) as e:
            self.run_convert(pth)
        self.assertIn("only 1 deform group runs there", str(e.exception))

    def test_unknown_format_and_refused_pickle(self):
        pth = self.path("x.pth")
        torch.save({"foo.weight": torch.zeros(1)}, pth)
        with self.assertRaises(cc.ConversionError) as e:
            self.run_convert(pth)
        self.assertIn("cannot tell the checkpoint's format", str(e.exception))
        torch.save({"state_dict": dict(self.golden), "meta": {"obj": Opaque()}}, pth)
        with self.assertRaises(cc.ConversionError) as e:
            self.run_convert(pth)
        self.assertIn("--unsafe-pickle", str(e.exception))


if __name__ == "__main__":
    unittest.main()
