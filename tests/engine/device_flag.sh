#!/usr/bin/env bash
# drcnn_train --device (ctest engine_device_flag): the first line names the device; a
# malformed value and CUDA where none is usable fail with a message naming the flag.
#
#   device_flag.sh DRCNN_TRAIN DRCNN_MAKE_SHAPES WORKDIR
set -euo pipefail
train=$1
make_shapes=$2
work=$3
rm -rf "$work"
mkdir -p "$work"
"$make_shapes" --out "$work/data" --train 2 --val 1 --size 64 --max-objects 2 --seed 3 --threads 1 >/dev/null
common=(--train-ann "$work/data/annotations/instances_train.json" --train-images "$work/data/train"
        --preset tiny_cpu --scale 64,64 --batch 2 --iters 1 --warmup 1 --threads 1 --out "$work/run" --overwrite)
fail() { echo "device_flag: $*" >&2; exit 1; }

out=$("$train" "${common[@]}" --device cpu 2>&1) || { echo "$out"; fail "--device cpu failed"; }
[[ $(head -n 1 <<<"$out") == "device: cpu" ]] || { echo "$out"; fail "first line is not 'device: cpu'"; }

rc=0
out=$("$train" "${common[@]}" --device tpu 2>&1) || rc=$?
[[ $rc != 0 ]] || fail "--device tpu succeeded"
grep -q "\-\-device 'tpu': expected cpu, cuda or cuda:N" <<<"$out" || { echo "$out"; fail "no clear message for --device tpu"; }

rc=0
out=$("$train" "${common[@]}" --device cuda 2>&1) || rc=$?
if [[ $rc != 0 ]]; then
  # No usable GPU here (or a build without CUDA): say so, naming the flag.
  grep -Eq "\-\-device 'cuda': (no CUDA device is usable here|this build of drcnn has no CUDA)" <<<"$out" ||
    { echo "$out"; fail "--device cuda failed without the expected message"; }
  echo "--device cuda here: $(grep -o "\-\-device 'cuda'.*" <<<"$out" | head -n 1)"
else
  [[ $(head -n 1 <<<"$out") == "device: cuda:0" ]] || { echo "$out"; fail "first line is not 'device: cuda:0'"; }
fi
echo "device_flag: ok"
