#!/usr/bin/env bash
# drcnn_train's settings (ctest engine_config_flags): --config, the flags on top of it, --set
# last; RUN/config.yaml holds the resolved values; bad keys are refused naming them; a run
# folder holding an earlier run is refused without --resume/--overwrite and left untouched;
# Pascal VOC folders train and evaluate (the VOC ground truth through eval::coco_ground_truth).
#
#   config_flags.sh DRCNN_TRAIN DRCNN_MAKE_SHAPES WORKDIR
set -euo pipefail
train=$1
make_shapes=$2
work=$3
images="$(cd "$(dirname "${BASH_SOURCE[0]}")/../data/datasets/images" && pwd)"
rm -rf "$work"
mkdir -p "$work"
fail() { echo "config_flags: $*" >&2; exit 1; }
"$make_shapes" --out "$work/data" --train 2 --val 1 --size 64 --max-objects 2 --seed 3 --threads 1 >/dev/null
cat > "$work/tiny.yaml" <<YAML
preset: tiny_cpu
solver:
  max_iters: 2
  warmup_iters: 1
  lr: 0.002
data:
  train:
    ann: $work/data/annotations/instances_train.json
    images: $work/data/train
  scale_long: 64
  scale_short: 64
  workers: 0
threads: 1
YAML

# 1. file, then flags, then --set: RUN/config.yaml shows each winner.
out=$("$train" --config "$work/tiny.yaml" --lr 0.001 --seed 4 --set solver.max_iters=3 --set seed=5 \
      --out "$work/run" 2>&1) || { echo "$out"; fail "--config run failed"; }
grep -q "iter: 3/3" <<<"$out" || { echo "$out"; fail "did not train 3 iterations (--set solver.max_iters=3)"; }
cfg="$work/run/config.yaml"
[[ -f $cfg ]] || fail "no $cfg"
grep -Eq "^  lr: 0\.001$" "$cfg" || { cat "$cfg"; fail "config.yaml: solver.lr is not the flag's 0.001"; }
grep -Eq "^  max_iters: 3$" "$cfg" || { cat "$cfg"; fail "config.yaml: solver.max_iters is not --set's 3"; }
grep -Eq "^seed: 5$" "$cfg" || { cat "$cfg"; fail "config.yaml: seed is not --set's 5 (--set comes after --seed)"; }
grep -Eq "^  warmup_iters: 1$" "$cfg" || { cat "$cfg"; fail "config.yaml: solver.warmup_iters is not the file's 1"; }
grep -Eq "^device: \"?cpu\"?$" "$cfg" || { cat "$cfg"; fail "config.yaml: device is not the one trained on"; }
grep -Eq "^  num_classes: [0-9]+$" "$cfg" || { cat "$cfg"; fail "config.yaml: no model.num_classes"; }

# 2. A bad key or value names it; nothing runs.
rc=0
out=$("$train" --config "$work/tiny.yaml" --set solver.lrr=1 --out "$work/bad" 2>&1) || rc=$?
[[ $rc != 0 ]] || fail "--set solver.lrr=1 was accepted"
grep -q "solver.lrr" <<<"$out" || { echo "$out"; fail "the unknown key is not named"; }
[[ ! -e $work/bad/checkpoints ]] || fail "a refused config still trained"
rc=0
out=$("$train" --config "$work/tiny.yaml" --set solver.lr=-1 --out "$work/bad" 2>&1) || rc=$?
[[ $rc != 0 ]] || fail "--set solver.lr=-1 was accepted"
grep -q "solver.lr" <<<"$out" || { echo "$out"; fail "the out-of-range key is not named"; }
rc=0
out=$("$train" --set solver.lr=0.01 --out "$work/bad" 2>&1) || rc=$?
[[ $rc != 0 ]] || fail "a run without a training set was accepted"
grep -q "no training set" <<<"$out" || { echo "$out"; fail "no clear message without a training set"; }

# 3. The run folder of an earlier run: refused (and untouched) without --resume or --overwrite.
before=$(cat "$work/run/last_checkpoint")
rc=0
out=$("$train" --config "$work/tiny.yaml" --out "$work/run" 2>&1) || rc=$?
[[ $rc != 0 ]] || fail "a fresh run in an earlier run's folder was accepted"
grep -q "holds an earlier run's checkpoints" <<<"$out" || { echo "$out"; fail "no clear message for the taken folder"; }
[[ $(cat "$work/run/last_checkpoint") == "$before" && -f "$work/run/$before" ]] || fail "the earlier run was touched"
grep -Eq "^  max_iters: 3$" "$cfg" || fail "the refused run rewrote the earlier run's config.yaml"
out=$("$train" --config "$work/tiny.yaml" --out "$work/run" --overwrite 2>&1) || { echo "$out"; fail "--overwrite failed"; }
grep -q "iter: 2/2" <<<"$out" || { echo "$out"; fail "--overwrite did not train the new run"; }

# 3b. Multi-scale training from the config (each image draws its short side from the list).
out=$("$train" --config "$work/tiny.yaml" --set 'data.multi_scale_short=[32,48]' --set data.multi_scale_long=64 \
      --out "$work/ms" 2>&1) || { echo "$out"; fail "multi-scale run failed"; }
grep -Eq "^  multi_scale_short: \[32, 48\]$" "$work/ms/config.yaml" || { cat "$work/ms/config.yaml"; fail "config.yaml: no multi_scale_short"; }
rc=0
out=$("$train" --config "$work/tiny.yaml" --out "$work/ms" --resume 2>&1) || rc=$?
[[ $rc != 0 ]] || fail "a single-scale resume of the multi-scale run was accepted"
grep -q "trained with scale 64,32;64,48, this run has scale 64,64" <<<"$out" || { echo "$out"; fail "the scales are not a recorded setting"; }
grep -Eq "^  multi_scale_short: \[32, 48\]$" "$work/ms/config.yaml" || fail "the refused resume rewrote config.yaml"

# 4. Pascal VOC folders (annotations/<id>.xml + images/<id>.jpg, as the raccoon set), train and val.
mkdir -p "$work/voc/annotations" "$work/voc/images"
for i in 1 2 3; do
  cp "$images/rgb_q100.jpg" "$work/voc/images/img$i.jpg"
  cat > "$work/voc/annotations/img$i.xml" <<XML
<annotation><filename>img$i.jpg</filename><size><width>16</width><height>12</height><depth>3</depth></size>
<object><name>thing</name><difficult>0</difficult><bndbox><xmin>2</xmin><ymin>1</ymin><xmax>$((9 + i))</xmax><ymax>10</ymax></bndbox></object>
</annotation>
XML
done
printf 'img1\nimg2\n' > "$work/voc/train.txt"
printf 'img3\n' > "$work/voc/val.txt"
out=$("$train" --train-format voc --train-ann "$work/voc/annotations" --train-images "$work/voc/images" \
      --train-list "$work/voc/train.txt" --val-format voc --val-ann "$work/voc/annotations" \
      --val-images "$work/voc/images" --val-list "$work/voc/val.txt" --preset tiny_cpu --scale 64,64 \
      --iters 2 --warmup 1 --threads 1 --workers 0 --out "$work/voc_run" 2>&1) || { echo "$out"; fail "VOC run failed"; }
grep -q "train: .*(VOC: 2 images kept of 2, 2 targets, 0 difficult), 1 classes" <<<"$out" || { echo "$out"; fail "VOC train split"; }
grep -q "val: .*(VOC: 1 images kept of 1, 1 targets, 0 difficult)" <<<"$out" || { echo "$out"; fail "VOC val split"; }
grep -q "Average Precision  (AP) @\[ IoU=0.50:0.95 | area=   all | maxDets=100 \]" <<<"$out" ||
  { echo "$out"; fail "no COCO summary for the VOC val split"; }
[[ -f $work/voc_run/metrics.json && -f $work/voc_run/detections.json ]] || fail "VOC run wrote no metrics/detections"

# Initial weights: --init-backbone takes a detector file's backbone.* (the rest counted outside),
# --load-from the whole detector; both logged. The same keys from a config file (init.*).
voc=(--train-format voc --train-ann "$work/voc/annotations" --train-images "$work/voc/images"
     --train-list "$work/voc/train.txt" --preset tiny_cpu --scale 64,64 --iters 1 --warmup 1 --threads 1 --workers 0)
out=$("$train" "${voc[@]}" --init-backbone "$work/voc_run/model.safetensors" --load-from "$work/voc_run/model.safetensors" \
      --out "$work/init_run" 2>&1) || { echo "$out"; fail "--init-backbone / --load-from run failed"; }
grep -Eq "^init.backbone $work/voc_run/model.safetensors: loaded [0-9]+ tensors \([0-9]+ tensors of the file lie outside" <<<"$out" ||
  { echo "$out"; fail "--init-backbone not logged"; }
grep -Eq "^init.detector $work/voc_run/model.safetensors: loaded [0-9]+ tensors$" <<<"$out" ||
  { echo "$out"; fail "--load-from not logged"; }
grep -q "backbone: \"$work/voc_run/model.safetensors\"" "$work/init_run/config.yaml" || fail "init.backbone not in RUN/config.yaml"
printf 'init:\n  detector: %s/absent.safetensors\n' "$work" > "$work/init.yaml"
out=$("$train" "${voc[@]}" --config "$work/init.yaml" --out "$work/init_run2" 2>&1) && fail "a missing init.detector file must fail"
grep -q "init.detector $work/absent.safetensors: cannot read the weights" <<<"$out" || { echo "$out"; fail "init.detector error"; }
echo "config_flags: ok"
