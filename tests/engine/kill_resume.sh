#!/usr/bin/env bash
# Exact resume of the real drcnn_train (ctest engine_kill_resume): a run SIGKILLed at random
# iterations (three times, each at a random moment inside an iteration, so sometimes inside a
# checkpoint write) and resumed with --resume each time (with other --threads and --workers)
# must end with the same bytes as the same run left alone: the final weights
# (checkpoints/model_N and RUN/model.safetensors) and the final training state
# (checkpoints/state_N).
#
#   kill_resume.sh DRCNN_TRAIN DRCNN_MAKE_SHAPES WORKDIR
set -euo pipefail
train=$1
make_shapes=$2
work=$3
iters=60  # margin: the last kill comes before ~iteration 35 even on a fast machine
rm -rf "$work"
mkdir -p "$work"

"$make_shapes" --out "$work/data" --train 6 --val 1 --size 64 --max-objects 3 --seed 3 --threads 1 >/dev/null
common=(--train-ann "$work/data/annotations/instances_train.json" --train-images "$work/data/train"
        --preset tiny_cpu --scale 64,64 --batch 2 --iters "$iters" --warmup 4 --lr 0.01 --seed 5
        --log-every 1 --checkpoint-every 3 --keep 2 --device cpu)
# Compute threads and loader workers differ between the rounds: results depend on neither.
threads=(1 2 1 2 1)
workers=(1 0 2 1 1)

"$train" "${common[@]}" --threads 1 --workers 1 --out "$work/straight" >"$work/straight.log" 2>&1 ||
  { cat "$work/straight.log"; echo "kill_resume: the uninterrupted run failed" >&2; exit 1; }

# The newest iteration in RUN/metrics.jsonl (0 when none).
last_logged() {
  local f="$1/metrics.jsonl"
  [[ -f $f ]] || { echo 0; return; }
  local n
  n=$(grep -o '"iteration":[0-9]*' "$f" | tail -n 1 | cut -d: -f2)
  echo "${n:-0}"
}

run="$work/killed"
resumed_from=()
for round in 1 2 3; do
  flag=(--resume)
  [[ $round == 1 ]] && flag=()
  "$train" "${common[@]}" --threads "${threads[$round]}" --workers "${workers[$round]}" --out "$run" "${flag[@]}" \
    >"$work/round$round.log" 2>&1 &
  pid=$!
  # Wait until the run is 2..7 iterations past where it started, then a random 0..39 ms more
  # (an iteration of tiny_cpu on 64x64 images takes ~25 ms, a checkpoint write a few ms).
  start=$(last_logged "$run")
  if [[ $round == 1 ]]; then start=0; fi
  target=$(( start + 2 + RANDOM % 6 ))
  while (( $(last_logged "$run") < target )); do
    kill -0 "$pid" 2>/dev/null || { cat "$work/round$round.log"; echo "kill_resume: round $round ended before iteration $target" >&2; exit 1; }
    sleep 0.01
  done
  sleep "0.$(printf '%03d' $(( RANDOM % 40 )))"
  kill -9 "$pid" 2>/dev/null || { echo "kill_resume: round $round finished before the kill" >&2; exit 1; }
  status=0
  wait "$pid" || status=$?
  [[ $status == 137 ]] || { cat "$work/round$round.log"; echo "kill_resume: round $round exited with $status, expected 137 (SIGKILL)" >&2; exit 1; }
  echo "round $round (threads ${threads[$round]}, workers ${workers[$round]}): SIGKILL after iteration $(last_logged "$run") (target $target)"
  if [[ $round != 1 ]]; then
    resumed_from+=("$(grep -o 'resumed from .* at iteration [0-9]*' "$work/round$round.log" || echo 'no resume line')")
  fi
done
"$train" "${common[@]}" --threads 1 --workers 1 --out "$run" --resume >"$work/final.log" 2>&1 ||
  { cat "$work/final.log"; echo "kill_resume: the final resumed run failed" >&2; exit 1; }
resumed_from+=("$(grep -o 'resumed from .* at iteration [0-9]*' "$work/final.log" || echo 'no resume line')")
printf '  %s\n' "${resumed_from[@]}"
# At least one resume started from a checkpoint past iteration 0, or nothing was resumed.
printf '%s\n' "${resumed_from[@]}" | grep -q 'at iteration [1-9]' ||
  { echo "kill_resume: no round resumed from a checkpoint" >&2; exit 1; }

final=$(printf 'model_%07d.safetensors' "$iters")
state=$(printf 'state_%07d.safetensors' "$iters")
status=0
for f in "checkpoints/$final" "checkpoints/$state" model.safetensors; do
  if cmp "$work/straight/$f" "$run/$f"; then
    echo "identical: $f"
  else
    echo "kill_resume: $f differs between the uninterrupted and the killed-and-resumed run" >&2
    status=1
  fi
done
# The resumed run's metrics.jsonl has each iteration once, in order.
seq_expected=$(seq 1 "$iters" | tr '\n' ' ')
seq_found=$(grep -o '"iteration":[0-9]*' "$run/metrics.jsonl" | cut -d: -f2 | tr '\n' ' ')
[[ $seq_found == "$seq_expected" ]] ||
  { echo "kill_resume: metrics.jsonl iterations '$seq_found', expected '$seq_expected'" >&2; status=1; }
exit $status
