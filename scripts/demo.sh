#!/usr/bin/env bash
# The main job, end to end on the CPU: generate the synthetic shapes dataset (COCO format,
# examples/make_shapes.cpp), train the shapes Dynamic R-CNN (configs/shapes_demo.yaml: small_cpu
# narrowed, anchors matched to the shapes' sizes) on it (examples/train_detector.cpp), evaluate on
# the validation split with the pycocotools-equal evaluator, and draw detections.
#
#   ./scripts/demo.sh                        # ~13 min on 2 idle cores: 3000 train / 200 val images, 4200 iterations
#   DRCNN_DEMO_ITERS=3000 ./scripts/demo.sh  # another schedule length (the lr step stays at 13/16 of it)
#   DRCNN_PRESET=cpu-only ./scripts/demo.sh  # build without CUDA
#   ./scripts/demo.sh --static               # extra arguments go to drcnn_train (--help lists them)
# Outputs: build/<preset>/demo/ (dataset; run/: model.safetensors, metrics.jsonl, report.html,
# detections.json, metrics.json, vis/*.png). The log's iou_thr and beta columns, and report.html,
# show the Dynamic R-CNN schedule.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/common.sh
source scripts/shapes_common.sh

drcnn_shapes_build drcnn_make_shapes drcnn_train

demo_dir="$build_dir/demo"
data_dir="$demo_dir/shapes"
threads="${DRCNN_DEMO_THREADS:-$(nproc)}"
drcnn_shapes_dataset "$data_dir" "${DRCNN_DEMO_TRAIN:-3000}" "${DRCNN_DEMO_VAL:-200}"
schedule=()
if [[ -n "${DRCNN_DEMO_ITERS:-}" ]]; then
  schedule=(--iters "$DRCNN_DEMO_ITERS" --steps $(( DRCNN_DEMO_ITERS * 13 / 16 )))
fi
echo
start=$(drcnn_now)
"./$build_dir/examples/drcnn_train" --config configs/shapes_demo.yaml "${schedule[@]}" \
  --train-ann "$data_dir/annotations/instances_train.json" --train-images "$data_dir/train" \
  --val-ann "$data_dir/annotations/instances_val.json" --val-images "$data_dir/val" \
  --threads "$threads" --workers 1 --out "$demo_dir/run" --overwrite "$@"
echo "drcnn: demo finished in $(( $(drcnn_now) - start )) s; outputs in $demo_dir/run (vis/*.png are the drawn detections)"
