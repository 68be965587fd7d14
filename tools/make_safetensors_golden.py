#!/usr/bin/python3
"""Writes tests/data/safetensors/official_small.safetensors with the OFFICIAL safetensors writer.

tests/io/test_safetensors.cpp reads this file with drcnn's reader and checks every value (the
expected values are spelled out in the test, not read from here), then writes the same tensors
with drcnn's writer and checks the bytes are identical to this file. That proves drcnn's format
against the reference implementation rather than against itself.

Needs torch (Debian python3-torch) and the `safetensors` package (PyPI only), in a virtual
environment outside the repository:
    /usr/bin/python3 -m venv --system-site-packages /work/venv
    /work/venv/bin/pip install safetensors
    /work/venv/bin/python tools/make_safetensors_golden.py
Generated with torch 1.13 and safetensors 0.8.0 (recorded in the file's metadata).
"""
import os
import sys

import torch

try:
    import safetensors
    from safetensors.torch import save_file
except ImportError:
    sys.exit("make_safetensors_golden.py: the `safetensors` package is missing; see this script's docstring")

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "safetensors",
                   "official_small.safetensors")


def tensors():
    inf, nan = float("inf"), float("nan")
    return {
        # Different dtypes, a 0-d and an empty tensor, and the special values of each float type.
        "f64": torch.tensor([[1.5, -2.25, 1e300], [-inf, 0.0, -0.0]], dtype=torch.float64),
        "f32": (torch.arange(12, dtype=torch.float32) * 0.25 - 1.0).reshape(3, 4),
        # f16 bits: 0000 8000 3c00 c100 7bff(65504) 0400(min normal) 0001(min subnormal) 7c00 fc00 7e00
        "f16": torch.tensor([0.0, -0.0, 1.0, -2.5, 65504.0, 2.0 ** -14, 2.0 ** -24, inf, -inf, nan],
                            dtype=torch.float16),
        # bf16 bits: 3f80 bf80 4049 3f00 7f80 ff80 7fc0
        "bf16": torch.tensor([1.0, -1.0, 3.140625, 0.5, inf, -inf, nan], dtype=torch.bfloat16).reshape(7, 1),
        "i64": torch.tensor([-2 ** 63, -1, 0, 2 ** 63 - 1], dtype=torch.int64),
        "i32": torch.arange(-3, 3, dtype=torch.int32).reshape(2, 3),
        "u8": torch.tensor([0, 1, 127, 128, 255], dtype=torch.uint8),
        "bool": torch.tensor([[True, False, True], [False, False, True]]),
        "scalar_f32": torch.tensor(3.5, dtype=torch.float32),
        "empty_f32": torch.zeros(0, 3, dtype=torch.float32),
    }


def main():
    # One metadata key only: the official writer emits metadata in hash-map order, so with one
    # key the file is reproducible byte for byte.
    meta = {"generator": f"tools/make_safetensors_golden.py; torch {torch.__version__}; "
                         f"safetensors {safetensors.__version__}"}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    save_file(tensors(), OUT, metadata=meta)
    with open(OUT, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[:8], "little")
    print(f"wrote {os.path.normpath(OUT)}: {len(raw)} bytes, header {n} bytes")
    print(raw[8:8 + n].decode())


if __name__ == "__main__":
    main()
