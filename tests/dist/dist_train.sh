#!/usr/bin/env bash
# Data-parallel drcnn_train (ctest dist_train; docs/distributed.md):
#  1. two ranks with one image each against one process with both images in one batch (the
#     same per-image sampling streams, pooled Dynamic R-CNN statistics, lr x 2 by the linear
#     scaling rule): the final weights agree within the bound below;
#  2. the evaluation sharded over two ranks and gathered on rank 0 writes the same
#     detections.json and metrics.json, byte for byte, as the single process's on the same weights
#     (a resume with another number of ranks at the last iteration: nothing trained);
#  3. a two-rank run resumed on one process continues from its checkpoint.
#
#   dist_train.sh MPIEXEC DRCNN_TRAIN DRCNN_MAKE_SHAPES COMPARE_WEIGHTS WORKDIR
set -euo pipefail
mpiexec=$1 train=$2 make_shapes=$3 compare=$4 work=$5
rm -rf "$work"
mkdir -p "$work"
mpi=("$mpiexec" -n 2 --allow-run-as-root --oversubscribe)
# Same-sized images (a batch of one is not padded differently from a batch of two).
"$make_shapes" --out "$work/data" --train 4 --val 5 --size 64 --max-objects 3 --seed 3 --threads 1 >/dev/null
common=(--train-ann "$work/data/annotations/instances_train.json" --train-images "$work/data/train"
        --val-ann "$work/data/annotations/instances_val.json" --val-images "$work/data/val"
        --preset tiny_cpu --scale 64,64 --iters 6 --warmup 2 --seed 5 --log-every 1 --checkpoint-every 3
        --device cpu --threads 1 --workers 0 --flip 0 --draw 0 --pool-dynamic-stats)
fail() { echo "dist_train: $*" >&2; exit 1; }

# 1. One process, batch 2, lr 0.01 / two ranks, batch 1 each, lr 0.005 x 2.
"$train" "${common[@]}" --batch 2 --lr 0.01 --per-image-sampling --out "$work/one" >"$work/one.log" 2>&1 ||
  { cat "$work/one.log"; fail "the single-process run failed"; }
# Small buckets (0.1 MB): the tiny model's 0.9 MB of gradients go in several, started as the
# backward completes them.
"${mpi[@]}" "$train" "${common[@]}" --batch 1 --lr 0.005 --bucket-mb 0.1 --out "$work/two" >"$work/two.log" 2>&1 ||
  { cat "$work/two.log"; fail "the two-rank run failed"; }
grep -q "data parallel: 2 ranks (mpi), 1 images per rank and iteration (2 in all), lr 0.005 x 2 = 0.01" "$work/two.log" ||
  { cat "$work/two.log"; fail "the two-rank run did not report its setup"; }
# Rank 0 alone writes: one log line per iteration, one metrics record per iteration.
[[ $(grep -c "drcnn.train\]: eta" "$work/two.log") -eq 6 ]] || { cat "$work/two.log"; fail "expected 6 log lines (rank 0 only)"; }
[[ $(grep -c '"total_loss"' "$work/two/metrics.jsonl") -eq 6 ]] || fail "expected 6 log records in metrics.jsonl"
grep "drcnn.train\]: eta" "$work/one.log" | sed 's/^.*iter:/one: iter:/; s/  time:.*//'
grep "drcnn.train\]: eta" "$work/two.log" | sed 's/^.*iter:/two: iter:/; s/  time:.*//'
# The bound: the ranks average per-image losses while one process normalises the batch's RPN
# loss by the batch's total sample count (MMDetection's num_total_samples), which differ when the
# images have different numbers of valid anchors, and the batch's GEMMs sum the two images in
# another order. Both are rounding-level per step (losses equal to 4 digits); 6 steps of SGD at
# lr <= 0.01 keep the weights within 1e-5 absolute, 2e-3 relative (measured: 1.1e-6 and 2.8e-4).
"$compare" "$work/one/model.safetensors" "$work/two/model.safetensors" 1e-5 2e-3 ||
  fail "two ranks x 1 image and one process x 2 images ended with different weights"

# 2. The same weights evaluated by one process (above) and by two ranks: identical files.
cp -r "$work/one" "$work/one_on_two"
rm -f "$work/one_on_two/detections.json" "$work/one_on_two/metrics.json"
"${mpi[@]}" "$train" "${common[@]}" --batch 2 --lr 0.01 --resume --out "$work/one_on_two" >"$work/one_on_two.log" 2>&1 ||
  { cat "$work/one_on_two.log"; fail "evaluating on two ranks failed"; }
grep -q "the checkpoint was written by 1 ranks, this run has 2" "$work/one_on_two.log" ||
  { cat "$work/one_on_two.log"; fail "the resume on two ranks did not note the other world size"; }
cmp "$work/one/detections.json" "$work/one_on_two/detections.json" ||
  fail "the gathered detections differ from the single-process ones"
cmp "$work/one/metrics.json" "$work/one_on_two/metrics.json" || fail "the gathered evaluation's metrics differ"
echo "dist_train: gathered evaluation on 2 ranks = single process ($(grep -o image_id "$work/one/detections.json" | wc -l) detections, $(wc -c < "$work/one/detections.json") bytes)"

# 3. The two-rank run's checkpoint at iteration 3, resumed on one process to iteration 6 (--overwrite:
#    the run folder holds its checkpoint 6, which this branch replaces).
"$train" "${common[@]}" --batch 1 --lr 0.005 --resume "$work/two/checkpoints/model_0000003.safetensors" --overwrite \
  --out "$work/two" >"$work/two_resumed.log" 2>&1 || { cat "$work/two_resumed.log"; fail "resuming on one process failed"; }
grep -q "resumed from .*model_0000003.safetensors at iteration 3" "$work/two_resumed.log" ||
  { cat "$work/two_resumed.log"; fail "the one-process resume did not start at iteration 3"; }
echo "dist_train: passed"
