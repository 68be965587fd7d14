#!/usr/bin/env bash
# Builds and runs the most complete thing drcnn can do today: a small MLP learning a 2-D toy
# problem on the CPU with drcnn's tensors and autograd (examples/demo_toy.cpp), the loss
# printed as it falls. Later issues replace it with the detector demo.
#
#   ./scripts/demo.sh                 # reuses the build of ./scripts/test.sh (preset "ci") when nvcc exists
#   DRCNN_PRESET=cpu-only ./scripts/demo.sh
#   ./scripts/demo.sh --steps 2000    # arguments go to the demo (--help lists them)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/common.sh

drcnn_install_missing_packages
drcnn_setup_cuda_path
if [[ -n "${DRCNN_PRESET:-}" ]]; then
  preset="$DRCNN_PRESET"
elif command -v nvcc >/dev/null 2>&1; then
  preset=ci
else
  # The demo runs on the CPU, so it does not need CUDA; say so rather than fail.
  echo "drcnn: nvcc not found: building the demo with the cpu-only preset"
  preset=cpu-only
fi
jobs="${DRCNN_JOBS:-2}"

case "$preset" in
  default) build_dir=build/default ;;
  ci) build_dir=build/ci ;;
  cpu-only) build_dir=build/cpu ;;
  *) echo "drcnn: unknown preset '$preset' (default, ci, cpu-only)" >&2; exit 1 ;;
esac

cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" -j "$jobs" --target drcnn_demo
echo
exec "./${build_dir}/examples/drcnn_demo" "$@"
