#!/usr/bin/env bash
# The main job, end to end on the CPU: generate the synthetic shapes dataset (COCO format,
# examples/make_shapes.cpp), train the shapes Dynamic R-CNN (configs/shapes_demo.yaml: small_cpu
# narrowed, anchors matched to the shapes' sizes) on it (examples/train_detector.cpp), evaluate on
# the validation split with the pycocotools-equal evaluator, and draw detections.
# On a CPU with AVX-512 BF16 it trains configs/shapes_demo_bf16.yaml: the same run with bf16
# convolutions and matmuls, 5400 iterations in about the minutes float32 takes for 4200.
#
#   ./scripts/demo.sh                        # ~12 min on 2 idle cores: 3000 train / 200 val images,
#                                            # 5400 iterations in bf16 (4200 in float32 without AVX-512 BF16)
#   DRCNN_DEMO_PRECISION=fp32 ./scripts/demo.sh  # float32 whatever the CPU (configs/shapes_demo.yaml)
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
# DRCNN_DEMO_PRECISION: auto (default: bf16 where the CPU has AVX-512 BF16), bf16 or fp32.
precision="${DRCNN_DEMO_PRECISION:-auto}"
if [[ $precision == auto ]]; then
  precision=fp32
  grep -qw avx512_bf16 /proc/cpuinfo 2>/dev/null && precision=bf16
fi
case "$precision" in
  fp32) config=configs/shapes_demo.yaml ;;
  bf16) config=configs/shapes_demo_bf16.yaml ;;
  *) echo "drcnn: DRCNN_DEMO_PRECISION is '$precision'; expected auto, fp32 or bf16" >&2; exit 2 ;;
esac
echo "drcnn: training $config ($precision)"
schedule=()
if [[ -n "${DRCNN_DEMO_ITERS:-}" ]]; then
  schedule=(--iters "$DRCNN_DEMO_ITERS" --steps $(( DRCNN_DEMO_ITERS * 13 / 16 )))
fi
echo
start=$(drcnn_now)
"./$build_dir/examples/drcnn_train" --config "$config" "${schedule[@]}" \
  --train-ann "$data_dir/annotations/instances_train.json" --train-images "$data_dir/train" \
  --val-ann "$data_dir/annotations/instances_val.json" --val-images "$data_dir/val" \
  --threads "$threads" --workers 1 --out "$demo_dir/run" --overwrite "$@"
echo "drcnn: demo finished in $(( $(drcnn_now) - start )) s; outputs in $demo_dir/run (vis/*.png are the drawn detections)"
