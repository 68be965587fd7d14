#!/usr/bin/env bash
# Configure, build (CUDA kernels included) and run every test. Works on a fresh Debian 12
# machine: installs what is missing with apt-get first. The last lines are ctest's summary.
#
#   ./scripts/test.sh                        # preset "ci": CUDA required (compiled, linked, never run here)
#   DRCNN_PRESET=cpu-only ./scripts/test.sh  # no CUDA
#   DRCNN_JOBS=4 ./scripts/test.sh           # build/test parallelism (default 2)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/common.sh

preset="${DRCNN_PRESET:-ci}"
jobs="${DRCNN_JOBS:-2}"

drcnn_install_missing_packages
drcnn_setup_cuda_path
if [[ "$preset" == "ci" ]] && ! command -v nvcc >/dev/null 2>&1; then
  echo "drcnn: preset 'ci' builds the CUDA kernels but nvcc was not found (looked on PATH and in" >&2
  echo "       /usr/local/cuda/bin). Install CUDA >= 12 and cuDNN 9, or run without CUDA:" >&2
  echo "       DRCNN_PRESET=cpu-only ./scripts/test.sh" >&2
  exit 1
fi

t0=$(drcnn_now)
cmake --preset "$preset"
t1=$(drcnn_now)
cmake --build --preset "$preset" -j "$jobs"
t2=$(drcnn_now)
echo "drcnn: preset ${preset}: configure $((t1 - t0)) s, build $((t2 - t1)) s (-j ${jobs}); running ctest"

# The checkpoint converter's tests (tools/, Python) when a python3 with torch and torchvision is
# here; ctest itself never needs Python. Before ctest, so ctest's summary stays the last lines.
if python3 -c "import torch, torchvision" >/dev/null 2>&1; then
  python3 -m unittest tools/test_convert_checkpoint.py
else
  echo "drcnn: tools/test_convert_checkpoint.py skipped (python3 has no torch/torchvision)"
fi

ctest --preset "$preset" -j "$jobs"
