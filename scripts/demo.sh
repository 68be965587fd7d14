#!/usr/bin/env bash
# The main job, end to end on the CPU: generate the synthetic shapes dataset (COCO format,
# examples/make_shapes.cpp), train the small Dynamic R-CNN preset on it (examples/train_detector.cpp),
# evaluate on the validation split with the pycocotools-equal evaluator, and draw detections.
#
#   ./scripts/demo.sh                        # ~8 min on 2 cores: 300 train / 50 val images, 500 iterations
#   DRCNN_DEMO_ITERS=2000 ./scripts/demo.sh  # longer training, better AP
#   DRCNN_PRESET=cpu-only ./scripts/demo.sh  # build without CUDA
#   ./scripts/demo.sh --lr 0.0025            # extra arguments go to drcnn_train (--help lists them)
# Outputs: build/<preset>/demo/ (dataset, model.safetensors, detections.json, metrics.json, vis/*.png).
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
cmake --build --preset "$preset" -j "$jobs" --target drcnn_make_shapes drcnn_train

demo_dir="$build_dir/demo"
data_dir="$demo_dir/shapes"
train_images="${DRCNN_DEMO_TRAIN:-300}"
val_images="${DRCNN_DEMO_VAL:-50}"
iters="${DRCNN_DEMO_ITERS:-500}"
threads="${DRCNN_DEMO_THREADS:-$(nproc)}"
if [[ ! -f "$data_dir/annotations/instances_val.json" || ! -f "$data_dir/.done-$train_images-$val_images" ]]; then
  rm -rf "$data_dir"
  "./$build_dir/examples/drcnn_make_shapes" --out "$data_dir" --train "$train_images" --val "$val_images" --seed 1
  touch "$data_dir/.done-$train_images-$val_images"
fi
echo
start=$(drcnn_now)
"./$build_dir/examples/drcnn_train" \
  --train-ann "$data_dir/annotations/instances_train.json" --train-images "$data_dir/train" \
  --val-ann "$data_dir/annotations/instances_val.json" --val-images "$data_dir/val" \
  --preset small_cpu --scale 256,256 --batch 2 --iters "$iters" --warmup 100 \
  --threads "$threads" --workers 1 --out "$demo_dir/run" --overwrite "$@"
echo "drcnn: demo finished in $(( $(drcnn_now) - start )) s; outputs in $demo_dir/run (vis/*.png are the drawn detections)"
