#!/usr/bin/env bash
# The paper's central claim on this machine: the Faster R-CNN baseline (fixed R-CNN IoU threshold
# 0.5 and SmoothL1 beta 1.0: drcnn_train --static) against Dynamic R-CNN, the same preset, recipe,
# data and seeds (configs/shapes_demo.yaml on the demo's shapes dataset), then the table and the
# IoU-threshold / beta plots of docs/results.md (tools/ablation_table.py).
#
#   ./scripts/ablation.sh                          # seeds 0 1 2, both arms, one run at a time
#   DRCNN_ABL_SEEDS="0 1 2 3 4" ./scripts/ablation.sh
#   DRCNN_ABL_PARALLEL=2 ./scripts/ablation.sh     # two runs side by side (threads split between them)
#   DRCNN_ABL_ITERS=3000 ./scripts/ablation.sh     # longer schedule (lr step kept at 13/16 of it)
#   DRCNN_ABL_CURVE=0 ./scripts/ablation.sh        # skip evaluating the intermediate checkpoints
#   DRCNN_ABL_ITERS=7200 DRCNN_ABL_FROM=build/ci/ablation DRCNN_ABL_OUT=build/ci/ablation7200 \
#     ./scripts/ablation.sh                        # a longer schedule, branched from shorter runs
# DRCNN_ABL_FROM: an earlier ablation folder of the same seeds. A run not yet started continues
# from that folder's run at its newest checkpoint before either schedule's first lr step: up to
# there both schedules are the same (warm-up, then the base lr), so the branch is the run the
# longer schedule would have made from the start (drcnn_train accepts a resume whose changed lr
# steps have not acted yet); its metrics.jsonl and checkpoint evaluations up to there are copied.
# A run whose folder already holds metrics.json is kept (the script can be stopped and re-run);
# an unfinished one is continued from its last checkpoint (drcnn_train --resume).
# Outputs: build/<preset>/ablation/{baseline,dynamic}_seed<S>/ (drcnn_train's run folders, with
# test_NNNNNNN/ evaluations of the checkpoints), summary.md and the SVG plots beside them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/common.sh
source scripts/shapes_common.sh

drcnn_shapes_build drcnn_make_shapes drcnn_train drcnn_test
seeds="${DRCNN_ABL_SEEDS:-0 1 2}"
parallel="${DRCNN_ABL_PARALLEL:-1}"
curve="${DRCNN_ABL_CURVE:-1}"
config=configs/shapes_demo.yaml
threads=$(( $(nproc) / parallel )); (( threads >= 1 )) || threads=1
data_dir="$build_dir/demo/shapes"
out="${DRCNN_ABL_OUT:-$build_dir/ablation}"
from="${DRCNN_ABL_FROM:-}"
mkdir -p "$out"
drcnn_shapes_dataset "$data_dir" "${DRCNN_DEMO_TRAIN:-3000}" "${DRCNN_DEMO_VAL:-200}"
schedule=()
if [[ -n "${DRCNN_ABL_ITERS:-}" ]]; then
  schedule=(--iters "$DRCNN_ABL_ITERS" --steps $(( DRCNN_ABL_ITERS * 13 / 16 )))
fi
every="${DRCNN_ABL_EVAL_EVERY:-400}"
first_step() {  # the first lr step of this schedule, or of a run folder's config.yaml
  if [[ $# == 1 ]]; then sed -n 's/^  steps: \[\([0-9]*\).*/\1/p' "$1/config.yaml" | head -1
  elif [[ -n "${DRCNN_ABL_ITERS:-}" ]]; then echo $(( DRCNN_ABL_ITERS * 13 / 16 ))
  else sed -n 's/^  steps: \[\([0-9]*\).*/\1/p' "$config" | head -1; fi
}

# Copies run $1 of the earlier ablation into $2 up to its newest checkpoint at or before both
# schedules' first lr step, and prints that checkpoint (nothing when there is none).
branch_run() {
  local src=$1 run=$2 limit old ck it best=-1
  limit=$(first_step); old=$(first_step "$src")
  [[ -n $old ]] && (( old < limit )) && limit=$old
  for ck in "$src"/checkpoints/model_*.safetensors; do
    [[ -e $ck ]] || continue
    it=$(basename "$ck" .safetensors); it=$((10#${it#model_}))
    (( it <= limit && it > best )) && best=$it
  done
  (( best > 0 )) || return 0
  # Built under another name and renamed when complete, with last_checkpoint naming the branch
  # point: a stop at any moment leaves either no $run (branched again) or one that a plain
  # --resume continues from the branch point (never from the earlier run's later checkpoints).
  rm -rf "$run.partial"
  cp -r "$src" "$run.partial"
  rm -f "$run.partial/metrics.json" "$run.partial/detections.json"
  for ck in "$run.partial"/test_*; do
    [[ -d $ck ]] || continue
    it=$(basename "$ck"); it=$((10#${it#test_}))
    (( it > best )) && rm -rf "$ck"
  done
  printf 'checkpoints/model_%07d.safetensors\n' "$best" > "$run.partial/last_checkpoint"
  cp "$src.log" "$run.log" 2>/dev/null || true
  mv "$run.partial" "$run"
  printf '%s/checkpoints/model_%07d.safetensors' "$run" "$best"
}

# One arm and seed: train (or continue), then evaluate each kept checkpoint for the AP curve.
one_run() {
  local arm=$1 seed=$2 run="$out/$1_seed$2" extra=() resume=(--overwrite)
  [[ $arm == baseline ]] && extra=(--static)
  if [[ ! -f "$run/metrics.json" ]]; then
    local branch=""
    [[ -n $from && ! -e $run ]] && branch=$(branch_run "$from/$1_seed$2" "$run")
    if [[ -n $branch ]]; then
      resume=(--resume "$branch" --overwrite)
    else
      if [[ -f "$run/last_checkpoint" ]]; then resume=(--resume); else : > "$run.log"; fi
    fi
    "./$build_dir/examples/drcnn_train" --config "$config" "${extra[@]}" "${schedule[@]}" \
      --train-ann "$data_dir/annotations/instances_train.json" --train-images "$data_dir/train" \
      --val-ann "$data_dir/annotations/instances_val.json" --val-images "$data_dir/val" \
      --seed "$seed" --threads "$threads" --workers 1 --checkpoint-every "$every" --keep 100 \
      --draw 2 --out "$run" "${resume[@]}" >> "$run.log" 2>&1 ||
      { echo "drcnn: $arm seed $seed failed; the end of $run.log:" >&2; tail -5 "$run.log" >&2; return 1; }
  fi
  if [[ $curve == 1 ]]; then
    local ck it
    for ck in "$run"/checkpoints/model_*.safetensors; do
      [[ -e $ck ]] || continue
      it=$(basename "$ck" .safetensors); it=$((10#${it#model_}))
      [[ -f "$run/$(printf 'test_%07d' "$it")/metrics.json" ]] && continue
      "./$build_dir/examples/drcnn_test" --run "$run" --iter "$it" --draw 0 --threads "$threads" >> "$run.test.log" 2>&1
    done
  fi
  echo "drcnn: $arm seed $seed done: $(grep -m1 -o '"AP": *[0-9.e-]*' "$run/metrics.json" 2>/dev/null || echo 'no metrics.json')"
}

start=$(drcnn_now)
jobs_running=0
failed=0
for seed in $seeds; do
  for arm in dynamic baseline; do
    mkdir -p "$out"
    one_run "$arm" "$seed" &
    jobs_running=$((jobs_running + 1))
    if (( jobs_running >= parallel )); then wait -n || failed=$((failed + 1)); jobs_running=$((jobs_running - 1)); fi
  done
done
while (( jobs_running > 0 )); do wait -n || failed=$((failed + 1)); jobs_running=$((jobs_running - 1)); done
echo "drcnn: ablation finished in $(( $(drcnn_now) - start )) s; $failed run(s) failed (see $out/*.log)"
if command -v python3 >/dev/null 2>&1; then
  prev=()
  [[ -n $from ]] && prev=(--prev "$from")  # the gain over the shorter schedule branched off
  python3 tools/ablation_table.py "$out" --svg-dir "$out" "${prev[@]}" | tee "$out/summary.md"
else
  echo "drcnn: python3 not found: run tools/ablation_table.py $out yourself for the table and plots"
fi
