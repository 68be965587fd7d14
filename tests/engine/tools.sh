#!/usr/bin/env bash
# drcnn_test and drcnn_detect (ctest engine_tools, docs/tools.md): a tiny run with checkpoints
# at 2 and 4 is evaluated at its newest checkpoint (the same detections.json and metrics.json
# bytes as drcnn_train's own evaluation of the same weights; report.html checked) and at --iter 2, on its val split
# and on another one given by flag; runs without checkpoints, a missing --iter, a missing run,
# unknown keys and --device cuda where none is usable fail with a message saying what to do.
# drcnn_detect reads PNGs (RGB, grey), a grey JPEG and a folder, writes COCO results JSON, an
# image index and drawn PNGs of the input sizes; a checkpoint whose shapes do not fit the config
# is refused naming the tensors; a converted MMDetection checkpoint runs with its YAML and the
# class names of its metadata.
#
#   tools.sh DRCNN_TRAIN DRCNN_MAKE_SHAPES WORKDIR DRCNN_TEST DRCNN_DETECT
set -euo pipefail
train=$1
make_shapes=$2
work=$3
test_tool=$4
detect=$5
images="$(cd "$(dirname "${BASH_SOURCE[0]}")/../data/datasets/images" && pwd)"
rm -rf "$work"
mkdir -p "$work"
fail() { echo "tools: $*" >&2; exit 1; }
# expect_fail NAME PATTERN CMD...: CMD must exit non-zero and print PATTERN (grep -E, lines joined).
expect_fail() {
  local name=$1 pattern=$2 rc=0 out
  shift 2
  out=$("$@" 2>&1) || rc=$?
  [[ $rc != 0 ]] || { echo "$out"; fail "$name: succeeded"; }
  grep -Eq -- "$pattern" <<<"$(tr '\n' ' ' <<<"$out")" || { echo "$out"; fail "$name: no message matching '$pattern'"; }
  echo "refused ($name): $(head -n 1 <<<"$out")"
}
summary='Average Precision  \(AP\) @\[ IoU=0.50:0.95 \| area=   all \| maxDets=100 \] = [0-9.]+'
# png_size FILE: "WxH" from the IHDR chunk.
png_size() { od -An -tu1 -j16 -N8 "$1" | awk '{printf "%dx%d", $1*16777216+$2*65536+$3*256+$4, $5*16777216+$6*65536+$7*256+$8}'; }

"$make_shapes" --out "$work/data" --train 4 --val 2 --size 64 --max-objects 2 --seed 3 --threads 1 >/dev/null
run=$work/run
out=$("$train" --train-ann "$work/data/annotations/instances_train.json" --train-images "$work/data/train" \
      --val-ann "$work/data/annotations/instances_val.json" --val-images "$work/data/val" \
      --preset tiny_cpu --scale 64,64 --iters 4 --warmup 1 --checkpoint-every 2 --keep 5 --threads 1 --workers 0 \
      --draw 1 --eval-every 2 --out "$run" 2>&1) || { echo "$out"; fail "training failed"; }
[[ -f $run/checkpoints/model_0000002.safetensors && -f $run/checkpoints/model_0000004.safetensors ]] ||
  fail "the run has no checkpoints 2 and 4"
# --eval-every 2: one evaluation during training (at 2; 4 is the final one), its folder, the
# log line, model_best (the only evaluation is the best: the weights of checkpoint 2), and an
# evaluation record for it and for the final evaluation in metrics.jsonl.
grep -Eq "\[drcnn.eval\]: iteration 2:  AP: [0-9.]+  AP50: .*\(best AP so far: model_best.safetensors\)" <<<"$out" ||
  { echo "$out"; fail "no evaluation line at iteration 2"; }
[[ -s $run/eval/iter_0000002/metrics.json && -s $run/eval/iter_0000002/detections.json ]] ||
  fail "no evaluation at iteration 2 in $run/eval/iter_0000002"
grep -q '"iteration":2' "$run/model_best.json" || { cat "$run/model_best.json"; fail "model_best.json is not iteration 2"; }
cmp "$run/model_best.safetensors" "$run/checkpoints/model_0000002.safetensors" ||
  fail "model_best.safetensors differs from the weights of iteration 2"
[[ $(grep -c '"bbox/AP"' "$run/metrics.jsonl") == 2 ]] || { cat "$run/metrics.jsonl"; fail "not 2 evaluation records"; }
grep -q '{"iteration":4,"bbox/AP"' "$run/metrics.jsonl" || fail "no record of the final evaluation"

# 1. drcnn_test on the newest checkpoint: the summary, and drcnn_train's own evaluation repeated.
out=$("$test_tool" --run "$run" --threads 1 2>&1) || { echo "$out"; fail "drcnn_test --run failed"; }
grep -q "checkpoint: .*checkpoints/model_0000004.safetensors (iteration 4)" <<<"$out" ||
  { echo "$out"; fail "did not pick the newest checkpoint (4)"; }
grep -Eq "$summary" <<<"$out" || { echo "$out"; fail "no COCO summary line"; }
[[ $(grep -c "Average Recall" <<<"$out") == 6 ]] || { echo "$out"; fail "not pycocotools' 6 recall lines"; }
t4=$run/test_0000004
for f in detections.json metrics.json; do
  [[ -s $t4/$f ]] || fail "no $t4/$f"
  cmp "$t4/$f" "$run/$f" || fail "$f of drcnn_test differs from drcnn_train's evaluation of the same weights"
done
[[ $(head -c 1 "$t4/detections.json") == "[" ]] || fail "detections.json is not a COCO results array"
grep -q '"AP50"' "$t4/metrics.json" || { cat "$t4/metrics.json"; fail "metrics.json has no AP50"; }
ls "$t4"/vis/val_*.png >/dev/null 2>&1 || fail "no drawn validation image in $t4/vis"

# 1b. report.html of drcnn_train (RUN) and drcnn_test (test_0000004): self-contained, five SVG
# plots (the fifth: AP over the evaluations), the COCO tables, one base64 PNG per drawn image
# (decoding to a PNG).
for report in "$run/report.html" "$t4/report.html"; do
  [[ -s $report ]] || fail "no $report"
  [[ $(grep -o "<svg " "$report" | wc -l) == 5 ]] || fail "$report: not 5 SVG plots (losses, lr, IoU, beta, AP)"
  ! grep -Eq "(src|href)=\"(https?:|//|file:)" "$report" || fail "$report refers to an external asset"
  grep -q "<p>$(grep -c total_loss "$run/metrics.jsonl") log records, 2 evaluations.</p>" "$report" ||
    fail "$report: not every metrics.jsonl record"
  grep -q "<th>AP50</th>" "$report" && grep -q "<th>AP95</th>" "$report" && grep -q ">circle</td>" "$report" ||
    fail "$report: no COCO table with AP50..AP95 and per-class AP"
  [[ $(grep -o "data:image/png;base64," "$report" | wc -l) == $(ls "$(dirname "$report")"/vis/*.png | wc -l) ]] ||
    fail "$report: not one image per drawn validation image"
  grep -o 'data:image/png;base64,[^"]*' "$report" | sed -n 1p | cut -d, -f2 | base64 -d > "$work/first.png"
  magic=$(od -An -tx1 -N4 "$work/first.png" | tr -d ' ')
  [[ $magic == 89504e47 ]] || fail "$report: the first image does not decode to a PNG ($magic)"
done

# A run without a validation set: the plots, and the page says there is no evaluation.
out=$("$train" --train-ann "$work/data/annotations/instances_train.json" --train-images "$work/data/train" \
      --preset tiny_cpu --scale 64,64 --iters 1 --warmup 1 --threads 1 --workers 0 --out "$work/noval" 2>&1) ||
  { echo "$out"; fail "training without val failed"; }
grep -q "<p>no metrics.json (no validation set)</p>" "$work/noval/report.html" &&
  [[ $(grep -o "<svg " "$work/noval/report.html" | wc -l) == 4 ]] || fail "report.html of a run without val"

expect_fail "--eval-every without a validation set" "--eval-every 2: there is no validation set to evaluate" \
  "$train" --train-ann "$work/data/annotations/instances_train.json" --train-images "$work/data/train" \
  --preset tiny_cpu --scale 64,64 --iters 2 --eval-every 2 --threads 1 --out "$work/noval_eval"

# 2. --iter 2, its own output folder.
out=$("$test_tool" --run "$run" --iter 2 --threads 1 2>&1) || { echo "$out"; fail "drcnn_test --iter 2 failed"; }
grep -q "checkpoint: .*checkpoints/model_0000002.safetensors (iteration 2)" <<<"$out" ||
  { echo "$out"; fail "--iter 2 did not evaluate model_0000002"; }
grep -Eq "$summary" <<<"$out" || { echo "$out"; fail "--iter 2: no COCO summary line"; }
[[ -s $run/test_0000002/metrics.json && -s $run/test_0000002/detections.json ]] || fail "--iter 2 wrote no results"

# 3. Another validation split by flag, results into --out.
out=$("$test_tool" --run "$run" --val-ann "$work/data/annotations/instances_train.json" \
      --val-images "$work/data/train" --out "$work/on_train" --draw 0 2>&1) || { echo "$out"; fail "--val-ann failed"; }
grep -q "val: .*instances_train.json (COCO: 4 images kept of 4" <<<"$out" || { echo "$out"; fail "--val-ann not used"; }
[[ -s $work/on_train/metrics.json ]] || fail "--out: no metrics.json"
out=$("$test_tool" --run "$run" --set data.val.ann="$work/data/annotations/instances_train.json" \
      --set data.val.images="$work/data/train" --out "$work/on_train_set" --draw 0 2>&1) || { echo "$out"; fail "--set data.val.ann failed"; }
grep -q "val: .*instances_train.json" <<<"$out" || { echo "$out"; fail "--set data.val.ann not used"; }
cmp "$work/on_train/metrics.json" "$work/on_train_set/metrics.json" || fail "--val-ann and --set data.val.ann differ"

# 3b. Test-time augmentation (eval.tta_*, docs/tools.md): one view at the run's own test scale
# (64, 64) without flip gives drcnn_test's plain detections byte for byte; two scales with flip
# (--tta takes a config file's eval.tta_* keys) run and evaluate.
out=$("$test_tool" --run "$run" --set 'eval.tta_short=[64]' --set eval.tta_long=64 --out "$work/tta1" --draw 0 2>&1) ||
  { echo "$out"; fail "drcnn_test with one TTA view failed"; }
cmp "$work/tta1/detections.json" "$t4/detections.json" || fail "one TTA view without flip differs from the plain test"
printf 'eval:\n  tta_short: [48, 80]\n  tta_long: 96\n  tta_flip: true\n' >"$work/tta.yaml"
out=$("$test_tool" --run "$run" --tta "$work/tta.yaml" --out "$work/tta4" --draw 0 2>&1) ||
  { echo "$out"; fail "drcnn_test --tta failed"; }
grep -Eq "$summary" <<<"$out" || { echo "$out"; fail "--tta: no COCO summary line"; }
[[ -s $work/tta4/detections.json ]] || fail "--tta wrote no detections"
cmp -s "$work/tta4/detections.json" "$t4/detections.json" && fail "--tta (4 views) gave the plain detections"

# 4. Refusals.
mkdir -p "$work/fresh"
cp "$run/config.yaml" "$work/fresh/"
expect_fail "no checkpoints" "holds no checkpoint .*train it first" "$test_tool" --run "$work/fresh"
expect_fail "--iter 3" "--iter 3: .*model_0000003.safetensors does not exist; checkpoints in .*: 2, 4" \
  "$test_tool" --run "$run" --iter 3
expect_fail "missing run" "does not exist: --run names a drcnn_train --out folder" "$test_tool" --run "$work/nowhere"
expect_fail "not a run" "config.yaml not found: --run must name a folder drcnn_train has written" \
  "$test_tool" --run "$work/data"
expect_fail "unknown key" "solver.lrr" "$test_tool" --run "$run" --set solver.lrr=1
expect_fail "drcnn_test shapes" "does not fit the model .*shape or dtype mismatches" \
  "$test_tool" --run "$run" --set model.num_classes=9
rc=0
out=$("$test_tool" --run "$run" --device cuda --draw 0 --out "$work/cuda" 2>&1) || rc=$?
if [[ $rc != 0 ]]; then
  grep -Eq "\-\-device 'cuda': (no CUDA device is usable here|this build of drcnn has no CUDA)" <<<"$out" ||
    { echo "$out"; fail "drcnn_test --device cuda failed without the expected message"; }
  echo "refused (drcnn_test --device cuda): $(grep -o "\-\-device 'cuda'.*" <<<"$out" | head -n 1)"
else
  grep -Eq "$summary" <<<"$out" || { echo "$out"; fail "drcnn_test --device cuda: no summary"; }
fi

# 5. drcnn_detect: PNG (RGB, grey), a grey JPEG, a folder.
det=$work/det
out=$("$detect" --checkpoint "$run/model.safetensors" --config "$run/config.yaml" --score 0 --threads 1 \
      "$images/rgb8.png" "$images/grey8.png" "$images/grey_q100.jpg" "$work/data/val" --out "$det" 2>&1) ||
  { echo "$out"; fail "drcnn_detect failed"; }
echo "$out"
grep -q "classes: from the config's annotation set" <<<"$out" || { echo "$out"; fail "class names not from the config"; }
[[ $(head -c 1 "$det/detections.json") == "[" ]] || fail "detections.json is not a COCO results array"
nval=$(ls "$work/data/val" | wc -l)
[[ $(grep -c '"file_name"' "$det/images.json") == $((3 + nval)) ]] || { cat "$det/images.json"; fail "images.json does not list every image"; }
for name in rgb8 grey8 grey_q100; do
  png=$det/vis/$name.png
  [[ -s $png ]] || fail "no $png"
  size=$(grep -o "$name\.[a-z]*: [0-9]*x[0-9]*" <<<"$out" | head -n 1 | sed 's/.*: //')
  [[ -n $size && $(png_size "$png") == "$size" ]] || fail "$png is $(png_size "$png"), the input ${size:-?}"
done
[[ $(ls "$det"/vis/*.png | wc -l) == $((3 + nval)) ]] || fail "not one drawn PNG per input image"
# With --score 0 every detection the model keeps is written; each has image_id/category_id/bbox/score.
ndet=$(grep -o '"score"' "$det/detections.json" | wc -l)
[[ $(grep -o '"bbox"' "$det/detections.json" | wc -l) == "$ndet" ]] || fail "detections without a bbox"
grep -q "wrote $det/detections.json ($ndet detections)" <<<"$out" || fail "the count printed is not the file's"

# 5b. drcnn_detect with test-time augmentation: one view at the config's scale is the plain
# detections byte for byte; --tta with the 4-view file runs.
out=$("$detect" --checkpoint "$run/model.safetensors" --config "$run/config.yaml" --score 0 --threads 1 \
      --set 'eval.tta_short=[64]' --set eval.tta_long=64 "$images/rgb8.png" "$images/grey8.png" \
      "$images/grey_q100.jpg" "$work/data/val" --out "$work/det_tta1" 2>&1) || { echo "$out"; fail "drcnn_detect TTA failed"; }
cmp "$work/det_tta1/detections.json" "$det/detections.json" || fail "drcnn_detect: one TTA view differs from the plain path"
out=$("$detect" --checkpoint "$run/model.safetensors" --config "$run/config.yaml" --score 0 --threads 1 \
      --tta "$work/tta.yaml" "$images/rgb8.png" --out "$work/det_tta4" 2>&1) || { echo "$out"; fail "drcnn_detect --tta failed"; }
[[ -s $work/det_tta4/detections.json ]] || fail "drcnn_detect --tta wrote no detections"

# 6. drcnn_detect: class names and refusals.
out=$("$detect" --checkpoint "$run/model.safetensors" --config "$run/config.yaml" --set data.train.ann="$work/none.json" \
      "$images/rgb8.png" --out "$work/det2" 2>&1) || { echo "$out"; fail "drcnn_detect without a readable set failed"; }
grep -q "classes: class_0..class_.* (its annotation set cannot be read" <<<"$out" || { echo "$out"; fail "no class_N fallback"; }
ncls=$(grep -Eo "^  num_classes: [0-9]+" "$run/config.yaml" | grep -Eo "[0-9]+")
names=$(seq -s, -f "c%g" 1 "$ncls")
out=$("$detect" --checkpoint "$run/model.safetensors" --config "$run/config.yaml" --classes "$names" \
      "$images/rgb8.png" --out "$work/det3" 2>&1) || { echo "$out"; fail "drcnn_detect --classes failed"; }
grep -q '"name": "c1"' "$work/det3/images.json" || { cat "$work/det3/images.json"; fail "--classes not used"; }
expect_fail "--classes count" "--classes names 2 classes but the model has $ncls" \
  "$detect" --checkpoint "$run/model.safetensors" --config "$run/config.yaml" --classes a,b "$images/rgb8.png" --out "$work/x"
expect_fail "detect shapes" "does not fit the model .*shape or dtype mismatches" \
  "$detect" --checkpoint "$run/model.safetensors" --config "$run/config.yaml" --set model.num_classes=$((ncls + 3)) \
  "$images/rgb8.png" --out "$work/x"
expect_fail "other depth" "does not fit the model .*(missing keys|shape or dtype mismatches)" \
  "$detect" --checkpoint "$run/model.safetensors" --config "$run/config.yaml" --set model.backbone.depth=34 \
  "$images/rgb8.png" --out "$work/x"
expect_fail "missing checkpoint" "checkpoint .*nope.safetensors does not exist" \
  "$detect" --checkpoint "$run/nope.safetensors" --config "$run/config.yaml" "$images/rgb8.png" --out "$work/x"
expect_fail "missing config" "--config .* does not exist" \
  "$detect" --checkpoint "$run/model.safetensors" --config "$run/nope.yaml" "$images/rgb8.png" --out "$work/x"
expect_fail "missing image" "nope.png does not exist \(give image files or folders of images\)" \
  "$detect" --checkpoint "$run/model.safetensors" --config "$run/config.yaml" "$images/nope.png" --out "$work/x"
expect_fail "not an image" "tiny.gif.*GIF" \
  "$detect" --checkpoint "$run/model.safetensors" --config "$run/config.yaml" "$images/tiny.gif" --out "$work/x"
expect_fail "unknown preset key" "model.nope" \
  "$detect" --checkpoint "$run/model.safetensors" --config "$run/config.yaml" --set model.nope=1 "$images/rgb8.png" --out "$work/x"
rc=0
out=$("$detect" --checkpoint "$run/model.safetensors" --config "$run/config.yaml" --device cuda "$images/rgb8.png" \
      --out "$work/det_cuda" 2>&1) || rc=$?
if [[ $rc != 0 ]]; then
  grep -Eq "\-\-device 'cuda': (no CUDA device is usable here|this build of drcnn has no CUDA)" <<<"$out" ||
    { echo "$out"; fail "drcnn_detect --device cuda failed without the expected message"; }
  echo "refused (drcnn_detect --device cuda): $(grep -o "\-\-device 'cuda'.*" <<<"$out" | head -n 1)"
else
  [[ -s $work/det_cuda/vis/rgb8.png ]] || { echo "$out"; fail "drcnn_detect --device cuda drew nothing"; }
fi
{ echo "preset: nope"; grep -v "^preset:" "$run/config.yaml"; } > "$work/bad_preset.yaml"
expect_fail "unknown preset" "preset: expected one of small_cpu.*got 'nope'" \
  "$detect" --checkpoint "$run/model.safetensors" --config "$work/bad_preset.yaml" "$images/rgb8.png" --out "$work/x"
# 7. drcnn_detect on a converted MMDetection checkpoint (tests/data/checkpoints, docs/checkpoints.md):
# the converter's YAML is the config, the class names come from the checkpoint's metadata.
ckpt="$(cd "$(dirname "${BASH_SOURCE[0]}")/../data/checkpoints" && pwd)"
out=$("$detect" --checkpoint "$ckpt/mmdet_tiny.safetensors" --config "$ckpt/mmdet_tiny.yaml" "$images/rgb8.png" \
      --out "$work/det_conv" 2>&1) || { echo "$out"; fail "drcnn_detect on the converted checkpoint failed"; }
grep -q "classes: from the checkpoint's metadata" <<<"$out" || { echo "$out"; fail "checkpoint class names not used"; }
grep -q '"name": "raccoon"' "$work/det_conv/images.json" || { cat "$work/det_conv/images.json"; fail "no class raccoon"; }
echo "tools: ok"
