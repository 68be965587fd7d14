#!/usr/bin/python3
"""Goldens for drcnn's bilinear resize (src/data/transforms.cpp).

Two modes, both deterministic:

  /usr/bin/python3 tools/golden_transforms.py
      Random 8-bit RGB images (torch.Generator, seed 20261129) of several sizes, each resized with
      torch.nn.functional.interpolate(mode='bilinear', align_corners=False, antialias=False) on
      float32 (the geometry of cv2 INTER_LINEAR and of MMDetection's resize, in float, unrounded).
      Writes tests/data/datasets/transforms_resize.safetensors: case<k>.input U8 [H, W, 3] (HWC,
      RGB) and case<k>.output F32 [3, H', W'].

  /work/venv/bin/python tools/golden_transforms.py --cv2
      Reads the inputs of the file above and resizes them with cv2.resize(INTER_LINEAR) on uint8
      (opencv-python-headless, its fixed-point 8-bit path, what MMDetection runs). Writes
      tests/data/datasets/transforms_resize_cv2.safetensors: case<k>.output U8 [H', W', 3].
      The C++ test reports how many levels drcnn's rounded float resize differs from it.
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "tests", "data", "datasets")

# (in_h, in_w, out_h, out_w): upscale by non-integer factors, the hand case 2x2 -> 4x4, downscale
# by non-integer and integer factors, identity, and a 4:3 image to the rescale_size shape of a
# (1333, 800)-like scale in miniature.
CASES = [
    (2, 2, 4, 4),
    (7, 5, 15, 11),
    (23, 37, 13, 19),
    (30, 40, 45, 60),
    (64, 48, 32, 24),
    (9, 13, 9, 13),
    (48, 64, 80, 107),
    (61, 47, 29, 22),
]


def make_torch_goldens(out_path):
    import torch
    import torch.nn.functional as F

    sys.path.insert(0, HERE)
    import safetensors_writer

    g = torch.Generator().manual_seed(20261129)
    tensors = {}
    for k, (h, w, oh, ow) in enumerate(CASES):
        img = torch.randint(0, 256, (h, w, 3), generator=g, dtype=torch.uint8)
        x = img.permute(2, 0, 1).unsqueeze(0).to(torch.float32)
        y = F.interpolate(x, size=(oh, ow), mode="bilinear", align_corners=False, antialias=False)[0]
        tensors[f"case{k}.input"] = img
        tensors[f"case{k}.output"] = y.contiguous()
    safetensors_writer.save(out_path, tensors, {"generator": "tools/golden_transforms.py", "torch": torch.__version__,
                                                "cases": str(CASES)})
    print(f"wrote {out_path} ({len(CASES)} cases, torch {torch.__version__})")


def make_cv2_goldens(in_path, out_path):
    import cv2
    import numpy as np
    from safetensors.numpy import load_file, save_file

    src = load_file(in_path)
    tensors = {}
    for k, (h, w, oh, ow) in enumerate(CASES):
        img = src[f"case{k}.input"]
        assert img.shape == (h, w, 3) and img.dtype == np.uint8
        tensors[f"case{k}.output"] = np.ascontiguousarray(cv2.resize(img, (ow, oh), interpolation=cv2.INTER_LINEAR))
    save_file(tensors, out_path, {"generator": "tools/golden_transforms.py --cv2", "opencv": cv2.__version__})
    print(f"wrote {out_path} ({len(CASES)} cases, opencv {cv2.__version__})")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cv2", action="store_true", help="write the cv2 uint8 goldens (needs opencv + safetensors)")
    args = ap.parse_args()
    os.makedirs(DATA, exist_ok=True)
    torch_path = os.path.join(DATA, "transforms_resize.safetensors")
    if args.cv2:
        make_cv2_goldens(torch_path, os.path.join(DATA, "transforms_resize_cv2.safetensors"))
    else:
        make_torch_goldens(torch_path)


if __name__ == "__main__":
    main()
